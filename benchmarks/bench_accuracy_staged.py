"""The fine-tuned methods: stage-1 checkpoints per seed and the BCE / RETDM runs that continue
from them, the λ × μ grid on val, and the loss terms per epoch for the convergence plot."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np
from bench_accuracy_scores import SELECT_BY, score, selection_score
from bench_common import history_lists, log

from retdm_keras import RETDM, fit_stages


def convergence_history(runs, seed: int, lam: float, mu: float) -> dict:
    """Loss terms per epoch of one RETDM run across its three stages (for the plot)."""
    history = {**runs.stage1(seed)["history"], **runs.retdm(seed, lam, mu, 1.0)["history"]}
    return {"seed": seed, "lam": lam, "mu": mu, "stages": history}


class StagedRuns:
    """Stage-1 checkpoints per seed and the runs that continue from them (cached)."""

    def __init__(
        self,
        build: Callable[[float, float, float, bool], RETDM],
        train_data: Callable[[int], object],
        bank_data,
        val_data,
        test_data,
        y_val: np.ndarray,
        y_test: np.ndarray,
        epochs: tuple[int, int, int],
        learning_rates: tuple[float, float, float],
        optimizer=None,
    ):
        self.build = build
        self.optimizer = optimizer  # fit_stages' optimizer factory (None: the default)
        self.train_data = train_data
        self.bank_data = bank_data
        self.val_data = val_data
        self.test_data = test_data
        self.y_val = y_val
        self.y_test = y_test
        self.epochs = tuple(epochs)
        self.learning_rates = tuple(learning_rates)
        self._stage1: dict[int, dict] = {}
        self._runs: dict[tuple, dict] = {}

    def stage1(self, seed: int) -> dict:
        if seed not in self._stage1:
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = self.build(0.0, 0.0, 1.0, True)
            keras.utils.set_random_seed(seed)
            histories = fit_stages(
                model,
                self.train_data(seed),
                self.val_data,
                baseline=False,  # the method's own scores (bench_defaults measures the mix)
                epochs=(self.epochs[0], 0, 0),
                learning_rates=self.learning_rates,
                optimizer=self.optimizer,
                bank_data=self.bank_data,
                freeze_backbone=False,  # this section fine-tunes (the frozen one is apart)
                verbose=0,
            )
            self._stage1[seed] = {
                "weights": model.get_weights(),
                "history": history_lists(histories),
                "seconds": time.time() - started,
            }
            log(f"  stage 1, seed {seed}: {self._stage1[seed]['seconds']:.0f} s")
        return self._stage1[seed]

    def _finish(self, model: RETDM, started: float, histories) -> dict:
        p_val = model.predict(self.val_data, verbose=0)
        p_test = model.predict(self.test_data, verbose=0)
        return {
            **score(self.y_val, p_val, self.y_test, p_test),
            "history": history_lists(histories),
            "seconds": time.time() - started,
        }

    def bce(self, seed: int) -> dict:
        key = ("bce", seed)
        if key not in self._runs:
            start = self.stage1(seed)
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = self.build(0.0, 0.0, 1.0, False)
            model.set_weights(start["weights"])
            keras.utils.set_random_seed(seed)
            lr1, lr2, lr3 = self.learning_rates
            histories = fit_stages(
                model,
                self.train_data(seed),
                self.val_data,
                baseline=False,  # the method's own scores (bench_defaults measures the mix)
                epochs=(self.epochs[2], 0, 0),  # stage-3 epochs, BCE only, stage-3 lr
                learning_rates=(lr3, lr2, lr3),
                optimizer=self.optimizer,
                bank_data=self.bank_data,
                freeze_backbone=False,  # this section fine-tunes (the frozen one is apart)
                verbose=0,
            )
            self._runs[key] = self._finish(model, started, histories)
            self._log("bce", seed, self._runs[key])
        return self._runs[key]

    def retdm(self, seed: int, lam: float, mu: float, alpha: float) -> dict:
        key = ("retdm", seed, float(lam), float(mu), float(alpha))
        if key not in self._runs:
            start = self.stage1(seed)
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = self.build(lam, mu, alpha, False)
            model.set_weights(start["weights"])
            keras.utils.set_random_seed(seed)
            histories = fit_stages(
                model,
                self.train_data(seed),
                self.val_data,
                baseline=False,  # the method's own scores (bench_defaults measures the mix)
                epochs=(0, self.epochs[1], self.epochs[2]),
                learning_rates=self.learning_rates,
                optimizer=self.optimizer,
                bank_data=self.bank_data,
                freeze_backbone=False,  # this section fine-tunes (the frozen one is apart)
                verbose=0,
            )
            self._runs[key] = self._finish(model, started, histories)
            self._log(f"retdm lam={lam} mu={mu} alpha={alpha}", seed, self._runs[key])
        return self._runs[key]

    @staticmethod
    def _log(name: str, seed: int, run: dict) -> None:
        log(
            f"  {name}, seed {seed}: {run['seconds']:.0f} s, val AP "
            f"{run['val']['average_precision']:.4f}, test AP {run['test']['average_precision']:.4f}"
        )


def choose_lam_mu(runs: StagedRuns, seed: int, lams, mus) -> tuple[dict, tuple[float, float]]:
    """Run the lam x mu grid on val (seed ``seed``); pick the best with mu > 0."""
    grid = []
    for lam in lams:
        for mu in mus:
            run = runs.retdm(seed, lam, mu, 1.0)
            grid.append({"lam": lam, "mu": mu, "val": run["val"]})
    candidates = [g for g in grid if g["mu"] > 0] or grid
    best = max(candidates, key=lambda g: selection_score(g["val"]))
    return {"seed": seed, "criterion": list(SELECT_BY), "points": grid}, (best["lam"], best["mu"])


def fine_tuned_methods(runs: StagedRuns, seeds, lam: float, mu: float) -> dict[str, dict]:
    """bce, retdm_one_way, retdm, retdm_no_rec over the seeds."""
    plan = {
        "bce": lambda s: runs.bce(s),
        "retdm": lambda s: runs.retdm(s, lam, mu, 1.0),
        "retdm_one_way": lambda s: runs.retdm(s, lam, mu, 0.0),
        "retdm_no_rec": lambda s: runs.retdm(s, lam, 0.0, 1.0),
    }
    collected: dict[str, dict] = {
        name: {"runs": [], "runs_calibrated": [], "val": [], "seconds": []} for name in plan
    }
    for seed in seeds:
        for name, run_of in plan.items():
            run = run_of(seed)
            collected[name]["runs"].append(run["test"])
            collected[name]["runs_calibrated"].append(run["test_calibrated"])
            collected[name]["val"].append(run["val"])
            collected[name]["seconds"].append(run["seconds"] + runs.stage1(seed)["seconds"])
    params = {
        "bce": {"lam": 0.0, "mu": 0.0},
        "retdm": {"lam": lam, "mu": mu, "alpha": 1.0},
        "retdm_one_way": {"lam": lam, "mu": mu, "alpha": 0.0},
        "retdm_no_rec": {"lam": lam, "mu": 0.0, "alpha": 1.0},
    }
    for name, entry in collected.items():
        entry["params"] = params[name]
    return collected
