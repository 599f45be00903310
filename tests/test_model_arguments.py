"""``RETDM``'s constructor checks (``retdm_keras.model.arguments``): each bad argument is a
``ValueError`` naming it, with the messages the constructor gave before the checks moved;
good ones are stored as before."""

from __future__ import annotations

import numpy as np
import pytest

from retdm_keras import RETDM


def mlp(**kwargs) -> RETDM:
    return RETDM(3, backbone="mlp", input_dim=4, embed_dim=4, label_hidden_units=4, **kwargs)


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"neighbor_images": "nearest"}, r"neighbor_images must be one of \('memory_bank', "),
        ({"tie_break": "first"}, r"tie_break must be one of \('random', 'set_order'\), got 'f"),
        ({"backbone_metric_weight": 1.5}, r"backbone_metric_weight must be in \[0, 1\], got 1.5"),
        ({"label_set_weight": -0.1}, r"label_set_weight must be in \[0, 1\], got -0.1"),
        ({"baseline_weight": 2}, r"baseline_weight must be in \[0, 1\], got 2"),
        ({"label_set_temperature": 0}, r"label_set_temperature must be > 0, got 0"),
        ({"label_names": ["a", "b"]}, r"label_names has 2 names but num_labels is 3"),
        ({"thresholds": [0.5, 0.5]}, r"thresholds must be one value or 3 values, got shape"),
        ({"top_k": 4}, r"top_k must be in 1\.\.3 \(num_labels\), got 4"),
        ({"top_k": True}, r"top_k must be an integer or None, got True"),
        ({"top_k": 1.0}, r"top_k must be an integer or None, got 1.0"),
        ({"distance": "cosine"}, r"distance must be one of \('sqeuclidean', 'euclidean'\)"),
        ({"hinge_reduction": "max"}, r"hinge_reduction must be one of \('mean', 'sum'\)"),
    ],
)
def test_a_bad_argument_is_a_value_error_naming_it(keywords, message):
    with pytest.raises(ValueError, match=message):
        mlp(**keywords)


def test_good_arguments_are_stored_as_before():
    model = mlp(
        backbone_metric_weight=1,
        label_set_weight=np.float32(0.25),
        label_set_temperature=2,
        baseline_weight=0,
        label_names=("a", "b", "c"),
        thresholds=[0.1, 0.2, 0.3],
        top_k=np.int64(2),
        tie_break="set_order",
        neighbor_images="exact",
    )
    assert (model.backbone_metric_weight, model.label_set_weight) == (1.0, 0.25)
    assert (model.label_set_temperature, model.baseline_weight) == (2.0, 0.0)
    assert model.label_names == ["a", "b", "c"]
    assert model.thresholds == pytest.approx([0.1, 0.2, 0.3])
    assert model.top_k == 2 and type(model.top_k) is int
    assert (model.tie_break, model.neighbor_images) == ("set_order", "exact")
    assert mlp(thresholds=[0.4]).thresholds == pytest.approx(0.4)
    assert mlp().thresholds is None and mlp().top_k is None and mlp().label_names is None


def test_set_baseline_checks_its_weight():
    with pytest.raises(ValueError, match=r"baseline weight must be in \[0, 1\], got 1.5"):
        mlp().set_baseline(1.5)
