"""Whether a run trains the backbone frozen is decided by ``retdm_keras.training.policy``:
the same rule for ``fit_stages``, ``retdm-keras train`` (several machines included) and
the command line's option checks made before the model exists."""

import argparse

import keras
import numpy as np
import pytest
import tensorflow as tf

from retdm_keras import RETDM
from retdm_keras.cli.common import CLIError
from retdm_keras.cli.options import check_frozen_options
from retdm_keras.frozen_features import memory
from retdm_keras.training import policy
from retdm_keras.training.policy import (
    default_freeze_backbone,
    frozen_by_default,
    resolve_freeze_backbone,
)


def _model(pretrained: bool) -> RETDM:
    keras.utils.set_random_seed(0)
    return RETDM(3, backbone="tiny_cnn", image_size=16, embed_dim=8, pretrained_backbone=pretrained)


def _train() -> tf.data.Dataset:
    x = {"images": np.zeros((8, 16, 16, 3), "float32"), "index": np.arange(8)}
    return tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[np.arange(8) % 3]))


@pytest.mark.parametrize(
    ("pretrained", "multiworker", "frozen"),
    [(True, False, True), (False, False, False), (True, True, False), (False, True, False)],
)
def test_the_rule(pretrained, multiworker, frozen):
    assert frozen_by_default(pretrained, multiworker=multiworker) is frozen
    assert default_freeze_backbone(_model(pretrained), multiworker=multiworker) is frozen


def test_several_machines_fine_tune_without_asking_the_memory(monkeypatch):
    model, train = _model(pretrained=True), _train().batch(4)
    monkeypatch.setattr(memory, "physical_memory", lambda: pytest.fail("memory asked"))
    assert resolve_freeze_backbone(model, train, None, 4, multiworker=True) is False
    assert resolve_freeze_backbone(model, train, True, 4, multiworker=True) is True  # as asked
    assert resolve_freeze_backbone(_model(pretrained=False), train, None, 4) is False
    monkeypatch.setattr(memory, "physical_memory", lambda: None)  # the platform does not say
    assert resolve_freeze_backbone(model, train, None, 4) is True


def _frozen_args(weights, strategy):
    return argparse.Namespace(
        arff_train=None,
        freeze_backbone=None,
        feature_views=2,
        feature_cache=None,
        weights=weights,
        strategy=strategy,
    )


def test_the_command_line_checks_ask_the_same_rule(monkeypatch):
    """``--feature-views`` without ``--freeze-backbone`` needs a frozen default: the option
    check asks the policy's rule with what ``--weights`` and ``--strategy`` say."""
    asked = []

    def recording(pretrained, *, multiworker=False):
        asked.append((pretrained, multiworker))
        return frozen_by_default(pretrained, multiworker=multiworker)

    monkeypatch.setattr(policy, "frozen_by_default", recording)
    for weights, strategy in (("none", "default"), (None, "multiworker")):
        with pytest.raises(CLIError, match="only apply with a frozen backbone"):
            check_frozen_options(_frozen_args(weights, strategy))
    args = _frozen_args("imagenet", "mirrored")
    check_frozen_options(args)
    assert args.feature_views == 2 and args.freeze_backbone is None  # decided with the model
    assert asked == [(False, False), (True, True), (True, False)]
