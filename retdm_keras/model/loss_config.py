"""``LossConfig``: the settings of RETDM's loss, and what they say about what trains.

``RETDM`` minimizes ``L = L_cls + λ·L_metric + μ·L_rec`` (see ``retdm_keras.losses``). The
weights of the terms and the settings that shape ``L_metric`` are one ``LossConfig``, held by
the model as ``loss_config``; whether the metric loss, the reconstruction loss or the label
side as a whole have anything to learn — in general and in each training stage — is asked of
it, so that each answer is written once.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import keras

from retdm_keras.losses import DISTANCES, HINGE_REDUCTIONS
from retdm_keras.model.arguments import one_of
from retdm_keras.model.stages import STAGES

LOSS_FIELDS = ("lam", "mu", "alpha", "margin", "distance", "embedding_norm", "hinge_reduction")
"""The fields of ``LossConfig``: also ``RETDM``'s keyword arguments and flat config keys."""


@keras.saving.register_keras_serializable(package="retdm_keras")
@dataclasses.dataclass(frozen=True, kw_only=True)
class LossConfig:
    """The loss of a ``RETDM``: ``L = L_cls + lam·L_metric + mu·L_rec``, and its metric term.

    The weights and the settings of the two-way metric loss (``retdm_keras.losses``), with
    the predicates the model asks when it decides what trains: ``metric_trains`` (λ > 0),
    ``reconstruction_trains`` (μ > 0), ``label_side_trains`` (either: ``g`` has something to
    learn) and, per training stage, ``stage_trains`` and the ``..._in(stage)`` forms. The
    defaults are ``RETDM``'s. Frozen: :meth:`replace` makes a changed copy. Keras-serializable
    (``get_config`` / ``from_config``); a ``RETDM`` config still holds the fields as flat keys.

    Args:
        lam: weight ``λ`` of the metric loss (default 1); 0 leaves it out.
        mu: weight ``μ`` of the reconstruction loss (default 1); 0 leaves it out. With
            ``λ = μ = 0`` the loss is BCE alone and the label side does not train.
        alpha: weight of the second (label → image) way of the metric loss (default 1); 0
            is the one-way ablation.
        margin: hinge margin of the metric loss (default 0), in unit-sphere distance units
            when ``embedding_norm`` is set (see ``metric_margin``).
        distance: ``"sqeuclidean"`` (default) or ``"euclidean"``.
        embedding_norm: the metric loss sees ``embedding_norm · u/‖u‖`` and
            ``embedding_norm · v/‖v‖``, so its distances are bounded by
            ``4·embedding_norm²`` (default 2). ``None`` uses the raw embeddings, whose
            distances are unbounded (see ``docs/method.md``, "Embeddings on a sphere").
        hinge_reduction: ``"mean"`` (default) or ``"sum"`` of the hinge over the neighbors.

    Raises:
        ValueError: ``lam``, ``mu``, ``alpha`` or ``margin`` not a finite number ``>= 0``;
            ``embedding_norm`` neither ``None`` nor a finite number ``> 0``; an unknown
            ``distance`` or ``hinge_reduction``. The message names the field.

    Example:

    >>> config = LossConfig(lam=0.1, mu=0.0)
    >>> config.metric_trains, config.reconstruction_trains, config.label_side_trains
    (True, False, True)
    >>> LossConfig(lam=0.0, mu=0.0).stage_trains("metric")  # BCE alone: nothing to train
    False
    >>> LossConfig.from_config(config.get_config()) == config
    True
    >>> from retdm_keras import RETDM
    >>> model = RETDM(3, backbone="mlp", input_dim=4, embed_dim=8, loss_config=config)
    >>> model.lam, model.mu, model.get_config()["lam"]
    (0.1, 0.0, 0.1)
    """

    lam: float = 1.0
    mu: float = 1.0
    alpha: float = 1.0
    margin: float = 0.0
    distance: str = "sqeuclidean"
    embedding_norm: float | None = 2.0
    hinge_reduction: str = "mean"

    def __post_init__(self) -> None:
        for name in ("lam", "mu", "alpha", "margin"):
            value = _finite_number(name, getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        one_of("distance", self.distance, DISTANCES)
        one_of("hinge_reduction", self.hinge_reduction, HINGE_REDUCTIONS)
        if self.embedding_norm is not None:
            norm = _finite_number("embedding_norm", self.embedding_norm)
            if norm <= 0:
                raise ValueError(f"embedding_norm must be > 0 or None, got {self.embedding_norm!r}")
            object.__setattr__(self, "embedding_norm", norm)

    # ------------------------------------------------------------------ what trains
    @property
    def metric_trains(self) -> bool:
        """The metric loss is part of ``L`` (λ > 0)."""
        return self.lam > 0

    @property
    def reconstruction_trains(self) -> bool:
        """The reconstruction loss is part of ``L`` (μ > 0)."""
        return self.mu > 0

    @property
    def label_side_trains(self) -> bool:
        """The label embedder ``g`` has a loss term to learn from (λ > 0 or μ > 0)."""
        return self.metric_trains or self.reconstruction_trains

    def stage_trains(self, stage: str) -> bool:
        """Whether ``stage`` has anything to train: the ``"metric"`` stage trains the label
        side alone, so it needs ``label_side_trains``; the others always train ``f``."""
        return _checked_stage(stage) != "metric" or self.label_side_trains

    def metric_trains_in(self, stage: str) -> bool:
        """The metric loss trains in ``stage`` (not in ``"classifier"``, and λ > 0)."""
        return _checked_stage(stage) != "classifier" and self.metric_trains

    def reconstruction_trains_in(self, stage: str) -> bool:
        """The reconstruction loss (and its head) trains in ``stage`` (not in
        ``"classifier"``, and μ > 0)."""
        return _checked_stage(stage) != "classifier" and self.reconstruction_trains

    def label_side_trains_in(self, stage: str) -> bool:
        """The label embedder ``g`` trains in ``stage`` (not in ``"classifier"``, and λ > 0 or
        μ > 0)."""
        return _checked_stage(stage) != "classifier" and self.label_side_trains

    # ------------------------------------------------------------------ derived values
    @property
    def metric_margin(self) -> float:
        """The hinge margin in the metric loss's distance units.

        With ``embedding_norm = r`` the margin is given for the unit sphere, so it is scaled
        by ``r²`` (squared Euclidean) or ``r`` (Euclidean); raw embeddings use it as is.
        """
        if self.embedding_norm is None:
            return self.margin
        r = self.embedding_norm
        return self.margin * (r * r if self.distance == "sqeuclidean" else r)

    def replace(self, **changes: Any) -> LossConfig:
        """A copy with ``changes`` (field names as keywords), validated like a new one."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The fields as a JSON-serializable dict; :meth:`from_config` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LossConfig:
        """A ``LossConfig`` from :meth:`get_config`'s dict (a missing field: its default)."""
        return cls(**config)


def _finite_number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _checked_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return stage


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(LossConfig)}


def written_loss_keywords(
    init: Callable[..., Any], args: tuple, kwargs: Mapping[str, Any]
) -> frozenset[str]:
    """The loss keywords (``LOSS_FIELDS``) a call ``init(self, *args, **kwargs)`` writes out,
    by name or by position: what a default value alone cannot tell."""
    try:
        written = inspect.signature(init).bind_partial(None, *args, **kwargs).arguments
    except TypeError:  # the call itself will say what is wrong with it
        written = kwargs
    return frozenset(LOSS_FIELDS).intersection(written)


def loss_config_from_arguments(
    loss_config: LossConfig | Mapping[str, Any] | None,
    keywords: Mapping[str, Any],
    written: Collection[str] = (),
) -> LossConfig:
    """The model's ``LossConfig``: ``loss_config`` (a ``LossConfig``, its ``get_config`` dict
    or its Keras serialization), else one made of the loss ``keywords``.

    A keyword that was ``written`` out, or that differs from its default, must agree with a
    given ``loss_config``.

    Raises:
        ValueError: a keyword that conflicts with ``loss_config`` (named in the message), or
            ``loss_config`` of another type.
    """
    if loss_config is None:
        return LossConfig(**keywords)
    if isinstance(loss_config, Mapping):
        if "class_name" in loss_config:  # keras.saving.serialize_keras_object's form
            loss_config = keras.saving.deserialize_keras_object(dict(loss_config))
        else:
            loss_config = LossConfig.from_config(loss_config)
    if not isinstance(loss_config, LossConfig):
        raise ValueError(
            f"loss_config must be a LossConfig or its config dict, got {type(loss_config)}"
        )
    given = {
        name: value
        for name, value in keywords.items()
        if name in written or value != _DEFAULTS[name]
    }
    asked = loss_config.replace(**given)  # the keywords, validated and converted
    conflicts = [name for name in given if getattr(asked, name) != getattr(loss_config, name)]
    if conflicts:
        shown = ", ".join(f"{name}={keywords[name]!r}" for name in conflicts)
        raise ValueError(
            f"{shown} conflicts with loss_config={loss_config!r}: pass the loss settings "
            "either as keywords or as loss_config"
        )
    return loss_config


def _loss_field(name: str) -> property:
    """A model attribute that reads ``loss_config.<name>``; setting it replaces
    ``loss_config`` with a validated copy."""

    def read(model):
        return getattr(model.loss_config, name)

    def write(model, value) -> None:
        model.loss_config = model.loss_config.replace(**{name: value})

    return property(read, write, doc=f"``loss_config.{name}`` (setting it replaces the config).")


class LossConfigMixin:
    """``RETDM``'s loss settings: ``loss_config`` (a :class:`LossConfig`, set by the
    constructor) and its fields as attributes (``model.lam``, ``model.mu``, ...)."""

    loss_config: LossConfig

    def __new__(cls, *args, **kwargs):
        # Which loss keywords the caller wrote out, which their values cannot tell when they
        # equal the defaults: next to a loss_config, those must agree with it. Recorded here,
        # where the call's own arguments are still known, and read by _init_loss_config.
        # (Here and not in RETDM itself: a class's own __new__ would hide its __init__ from
        # inspect.signature.)
        model = super().__new__(cls, *args, **kwargs)
        written = written_loss_keywords(cls.__init__, args, kwargs)
        object.__setattr__(model, "_written_loss_keywords", written)
        return model

    def _init_loss_config(
        self, loss_config: LossConfig | Mapping[str, Any] | None, keywords: Mapping[str, Any]
    ) -> None:
        """Set ``loss_config`` from the constructor's ``loss_config`` and loss keywords."""
        written = self.__dict__.pop("_written_loss_keywords", ())
        self.loss_config = loss_config_from_arguments(loss_config, keywords, written)

    lam = _loss_field("lam")
    mu = _loss_field("mu")
    alpha = _loss_field("alpha")
    margin = _loss_field("margin")
    distance = _loss_field("distance")
    embedding_norm = _loss_field("embedding_norm")
    hinge_reduction = _loss_field("hinge_reduction")

    @property
    def metric_margin(self) -> float:
        """The hinge margin in the metric loss's distance units (``LossConfig.metric_margin``)."""
        return self.loss_config.metric_margin
