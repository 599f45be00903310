"""The stage loop every training path shares (``retdm_keras.training.stage_loop``):
``fit_stages`` (Keras ``model.fit``, one device or mirrored) and ``fit_stages_multiworker``
(its own distributed epochs) both take their stages from ``stages_to_run``."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from retdm_keras import RETDM, fit_stages
from retdm_keras.training import stage_loop
from retdm_keras.training.distributed import fit_stages_multiworker
from retdm_keras.training.stage_loop import StageRun, stages_to_run

SKIPPED = "RETDM stage 'metric': skipped (λ = μ = 0, nothing to train)"


class FakeModel:
    """What ``stages_to_run`` asks of a model, recorded."""

    def __init__(self, trains=("classifier", "metric", "joint"), needs_adaptation=True):
        self.trains = set(trains)
        self.needs_adaptation = needs_adaptation
        self.adapted = []

    def adapt(self, data):
        self.adapted.append(data)

    def stage_trains(self, stage):
        return stage in self.trains


@pytest.fixture
def begun(monkeypatch):
    """The ``begin_stage`` calls of the shared loop, recorded (and still made)."""
    calls = []
    real = stage_loop.begin_stage

    def recording(model, stage, learning_rate, **kwargs):
        calls.append((stage, learning_rate, kwargs))
        if not isinstance(model, FakeModel):
            real(model, stage, learning_rate, **kwargs)

    monkeypatch.setattr(stage_loop, "begin_stage", recording)
    return calls


def test_the_loop_adapts_skips_and_begins_each_stage(begun, capsys):
    model = FakeModel(trains=("classifier", "joint"))
    metrics = object()
    runs = stages_to_run(
        model,
        "train",
        (2, 3, 4),
        (0.1, 0.2, 0.3),
        metrics=metrics,
        bank_data="bank",
        finished=("classifier",),
        verbose=1,
    )
    assert model.adapted == [] and begun == []  # nothing happens before the first stage
    # the finished stage's epochs count; the stage that trains nothing is skipped, uncounted
    assert list(runs) == [StageRun("joint", 4, 0.3, initial_epoch=2)]
    assert model.adapted == ["bank"]  # standardization from the bank data, once
    assert begun == [("joint", 0.3, dict(optimizer=None, metrics=metrics, bank_data="bank"))]
    assert capsys.readouterr().out.strip() == SKIPPED


def test_the_loop_begins_a_stage_only_when_the_last_one_ran(begun, capsys):
    model = FakeModel(needs_adaptation=False)
    runs = stages_to_run(model, "train", (1, 0, 2), (0.1, 0.2, 0.3))
    first = next(runs)
    assert first == StageRun("classifier", 1, 0.1, initial_epoch=0)
    assert [stage for stage, _, _ in begun] == ["classifier"]
    assert next(runs) == StageRun("joint", 2, 0.3, initial_epoch=1)  # 0 epochs: no stage
    assert begun[-1][2]["bank_data"] == "train"  # the bank defaults to the training data
    assert model.adapted == [] and capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="one value per stage"):
        list(stages_to_run(model, "train", (1, 1), (0.1, 0.2)))


def _data(n=16, size=16, labels=3):
    rng = np.random.default_rng(0)
    y = (rng.random((n, labels)) < 0.4).astype("float32")
    y[np.arange(n), np.arange(n) % labels] = 1.0
    images = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    x = {"images": images, "index": np.arange(n)}
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def _bce_only_model():
    keras.utils.set_random_seed(0)
    return RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8, lam=0.0, mu=0.0)


def test_both_training_paths_take_their_stages_from_the_shared_loop(begun, capsys):
    """λ = μ = 0: the metric stage trains nothing. Both paths skip it with the same line
    and begin the other stages through the shared loop's ``begin_stage``."""
    train = _data()
    fit_stages(_bce_only_model(), train, epochs=(1, 1, 1), verbose=2)
    single = capsys.readouterr().out
    assert [stage for stage, _, _ in begun] == ["classifier", "joint"]
    begun.clear()
    fit_stages_multiworker(_bce_only_model(), train, epochs=(1, 1, 1), verbose=1)
    multiworker = capsys.readouterr().out
    assert [stage for stage, _, _ in begun] == ["classifier", "joint"]
    assert SKIPPED in single.splitlines() and SKIPPED in multiworker.splitlines()


def test_the_old_distributed_module_is_the_new_one():
    import retdm_keras.distributed as old
    import retdm_keras.training.distributed as new

    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name
