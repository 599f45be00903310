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
