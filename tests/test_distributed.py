"""MirroredStrategy over 2 logical CPUs gives the same step as one device."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "mirrored_equals_single.py"


@pytest.mark.parametrize("embedding_norm", ["2.0"])
def test_mirrored_strategy_matches_single_device(embedding_norm):
    # A fresh process: logical devices must be set before TensorFlow initialises.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), embedding_norm],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    for stage in ("classifier", "metric", "joint"):
        single, mirrored = result["single"][stage], result["mirrored"][stage]
        assert single.keys() == mirrored.keys()
        for name in single:
            assert mirrored[name] == pytest.approx(single[name], abs=1e-5), (stage, name)
    # same updated weights, and every replica's memory bank equals the single-device bank
    assert result["max_weight_diff"] < 1e-5
    assert result["bank_replicas"] == 2
    assert result["max_bank_diff"] < 1e-5


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_on_loopback_match_a_single_process(tmp_path):
    import os

    import numpy as np

    script = Path(__file__).parent / "scripts" / "multiworker_train.py"
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(tmp_path / f"w{index}.npz"),
                    str(tmp_path / f"ckpt{index}"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    single_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single.npz")],
        env=single_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    for worker in workers:
        try:
            _, err = worker.communicate(timeout=300)
        finally:
            worker.kill()
        assert worker.returncode == 0, err[-3000:]

    w0, w1, one = (np.load(tmp_path / name) for name in ("w0.npz", "w1.npz", "single.npz"))
    assert list(w0) == list(one)
    for key in w0:
        np.testing.assert_array_equal(w0[key], w1[key])  # workers agree exactly
        np.testing.assert_allclose(w0[key], one[key], atol=1e-5)  # and equal one process
    logs = json.loads((tmp_path / "w0.npz.json").read_text())
    reference = json.loads((tmp_path / "single.npz.json").read_text())
    assert list(logs) == ["classifier", "metric", "joint"]
    for stage in logs:
        for name, value in reference[stage][-1].items():
            assert logs[stage][-1][name] == pytest.approx(value, abs=1e-5), (stage, name)
    # checkpoints come from the chief only
    assert (tmp_path / "ckpt0" / "joint-epoch1.weights.h5").exists()
    assert not (tmp_path / "ckpt1").exists()
