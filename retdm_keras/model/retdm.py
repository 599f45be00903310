"""``RETDM``: the constructor, the layers it is built from, its config and presets.

The rest of the class is mixed in from the other modules of ``retdm_keras.model``.
"""

from __future__ import annotations

import keras

from retdm_keras.embedders import ImageEmbedder, LabelEmbedder
from retdm_keras.heads import BaselineHead, ClassificationHead, ReconstructionHead
from retdm_keras.model.arguments import (
    label_names_for,
    one_of,
    positive,
    thresholds_for,
    top_k_for,
    unit_interval,
)
from retdm_keras.model.baseline import BaselineMixin
from retdm_keras.model.fast_inference import FastInferenceMixin
from retdm_keras.model.forward import ForwardPassMixin
from retdm_keras.model.loss_config import LossConfig, LossConfigMixin
from retdm_keras.model.objective import ObjectiveMixin
from retdm_keras.model.stages import StagesMixin
from retdm_keras.model.training_data import TrainingDataMixin
from retdm_keras.training_set import TrainingSet

NEIGHBOR_IMAGES = ("memory_bank", "exact")
TIE_BREAKS = ("random", "set_order")


@keras.saving.register_keras_serializable(package="retdm_keras")
class RETDM(
    FastInferenceMixin,
    ForwardPassMixin,
    BaselineMixin,
    StagesMixin,
    TrainingDataMixin,
    ObjectiveMixin,
    LossConfigMixin,
    keras.Model,
):
    """Reconstruction-regularized two-way deep metric learning for multi-label images.

    Args:
        num_labels: number of labels ``C``.
        backbone: image backbone name, see ``ImageEmbedder.BACKBONES`` (default
            ``"mobilenet_v2"``; ``"mlp"`` for feature vectors).
        image_size: input image size, an int or ``(h, w)`` (default 224); ignored for
            ``"mlp"``.
        embed_dim: size of the shared embedding space (default 512, the paper's).
        num_neighbors: ``K``, neighbour label sets per sample (default 10).
        lam: weight ``λ`` of the metric loss (default 1).
        mu: weight ``μ`` of the reconstruction loss (default 1).
        alpha: weight of the second (label → image) way (default 1); 0 is the one-way
            ablation.
        margin: hinge margin of the metric loss (default 0), in unit-sphere distance units
            when ``embedding_norm`` is set (see ``metric_margin``).
        distance: ``"sqeuclidean"`` (default) or ``"euclidean"``.
        embedding_norm: the metric loss sees ``embedding_norm · u/‖u‖`` and
            ``embedding_norm · v/‖v‖``, so its distances are bounded by
            ``4·embedding_norm²`` (default 2, ours). ``None`` uses the raw embeddings, whose
            distances are unbounded (see ``docs/method.md``, "Embeddings on a sphere").
        neighbor_images: where ``u_jk`` comes from: ``"memory_bank"`` (default, cheap) or
            ``"exact"`` (forward the neighbour images through ``f`` every step).
        decouple_label_rate: the label side (``g``, reconstruction head) descends
            ``L_metric + (μ/λ)·L_rec`` at the optimiser's full rate instead of
            ``λ·L_metric + μ·L_rec`` (default True; False is the paper's single objective,
            where a small λ also slows ``g`` down by λ). ``f`` always gets ``λ·L_metric``
            (its backbone ``backbone_metric_weight`` of it).
        backbone_metric_weight: the share of the metric gradient that reaches the trainable
            backbone (everything of ``f`` below the projection): the projection descends
            ``λ·L_metric`` and the backbone ``backbone_metric_weight·λ·L_metric`` (BCE
            reaches both in full). Default 0.1 (ours): at full weight the metric term pulls
            a fine-tuned pretrained backbone away from the features the classifier reads
            (see ``docs/method.md``, "The backbone's share of the metric gradient"). 1 is
            the paper's joint gradient; frozen-backbone training is unaffected.
        hinge_reduction: ``"mean"`` (default) or ``"sum"`` of the hinge over the neighbours.
        tie_break: which of several equally near label sets become neighbours:
            ``"random"`` (default; redrawn every epoch, so negatives spread over all of
            them) or ``"set_order"`` (always the lexicographically first ones).
        label_set_weight: ``w`` in ``[0, 1]``: predictions mix the classifier's sigmoid
            (``1 - w``) with label-set retrieval in the metric space (``w``, see
            ``probabilities_from_embedding``). Default 0.5 (ours; see ``docs/method.md``,
            "Predictions that use the metric"); 0 is the paper's classifier alone. Applies
            once the model has seen its training set (``prepare_training``) and when it has
            at most ``MAX_RETRIEVAL_SETS`` distinct label sets.
        label_set_temperature: the retrieval softmax's temperature ``T`` (default 1).
        label_sets: the distinct training label sets (label indices each), recorded by
            ``prepare_training`` and saved with the model; used when ``label_set_weight > 0``.
        weights: backbone weights, ``"imagenet"``, ``None`` (default: random) or a file path.
        pretrained_backbone: the image backbone starts from trained weights rather than a
            random initialisation (default: True when ``weights`` is given; saved with the
            model). ``fit_stages`` trains a pretrained backbone frozen unless told otherwise
            (``freeze_backbone=False`` fine-tunes it).
        backbone_width: MobileNet width multiplier (``alpha`` in ``keras.applications``;
            default: the backbone's own).
        input_dim: feature size for the ``"mlp"`` backbone (required there).
        label_hidden_units: hidden units of the label embedder (default 512, the paper's).
        label_activation: the label embedder's hidden activation (default ``"tanh"``, see
            ``LabelEmbedder``).
        dropout: dropout before the image projection (default 0).
        freeze_batchnorm: keep the backbone's BatchNormalization statistics frozen (default:
            True with pretrained ``weights``, False from scratch).
        standardize: ``"mlp"`` only: standardise the input features inside the model with a
            ``keras.layers.Normalization`` layer adapted on the training features
            (``fit_stages`` calls :meth:`adapt`; default True). The statistics are saved
            with the model, so ``predict`` takes raw features.
        linear_skip: ``"mlp"`` only: the projection reads the standardised input features
            next to the hidden layer, a linear path from features to embedding beside the
            nonlinear one. Default True (ours; see ``docs/method.md``, "A linear path for
            feature vectors"); False is the plain MLP.
        baseline_weight: ``β`` in ``[0, 1]``: predictions are
            ``(1 - β) · p_RETDM + β · p_baseline``, where ``p_baseline`` is the tuned
            per-label logistic regression held in ``baseline_head`` (on the pooled backbone
            features, the input features for ``"mlp"``). Default 0 (no baseline head).
            ``fit_stages`` fits the baseline and chooses ``β`` on the validation data
            (ours; see ``retdm_keras.baseline_blend`` and ``docs/method.md``, "The tuned
            baseline inside the model"); set it with :meth:`set_baseline`.
        baseline_head: build ``baseline_head`` (default: when ``baseline_weight > 0``); a
            model that had a baseline and then got ``β = 0`` keeps its (unused) head.
        label_names: optional names of the ``C`` labels, used by ``predict_labels``.
        thresholds: optional decision threshold, a float or ``C`` floats (default 0.5).
        top_k: predict the ``top_k`` highest labels per image instead of thresholding (used by
            ``predict_labels`` when no ``threshold`` is passed); ``None`` (default) thresholds.
        loss_config: ``lam``, ``mu``, ``alpha``, ``margin``, ``distance``, ``embedding_norm``
            and ``hinge_reduction`` as one :class:`LossConfig`; a keyword given with it must
            agree with it. Either way the model holds ``loss_config`` (``model.lam`` etc. read it).

    Raises:
        ValueError: an unknown ``backbone``, ``neighbor_images`` or ``tie_break``; a loss
            setting that ``LossConfig`` rejects, or one that conflicts with ``loss_config``;
            ``label_set_weight``, ``backbone_metric_weight`` or ``baseline_weight`` outside
            ``[0, 1]``; a ``label_set_temperature`` that is not positive; ``label_names``,
            ``thresholds`` or ``top_k`` that do not fit ``num_labels``; ``"mlp"`` without
            ``input_dim``.

    Inputs are raw images, float pixels in ``[0, 255]`` of shape ``(B, H, W, 3)`` (feature
    vectors ``(B, F)`` for ``"mlp"``), or a dict ``{"images" | "features": ..., "index": ...}``
    as produced by ``retdm_keras.data``; the output is label probabilities ``(B, C)``. A dict
    with ``"backbone_features"`` ``(B, D)`` (pooled backbone outputs, see
    ``ImageEmbedder.backbone_features``) skips the backbone: frozen-backbone training
    (``fit_stages(..., freeze_backbone=True)``) learns from such batches.

    ``model.save("m.keras")`` keeps the training stage (:meth:`set_stage`) with the rest of
    the configuration: a loaded model trains the parts it trained when it was saved, and its
    optimizer's state loads in full.

    Examples:

    Predict:

    >>> import numpy as np
    >>> model = RETDM(num_labels=5, backbone="tiny_cnn", image_size=32, embed_dim=16)
    >>> model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape
    (2, 5)

    Fit the joint stage on one batch (samples carry their row index for the memory bank):

    >>> x = {"images": np.random.rand(8, 32, 32, 3).astype("float32") * 255,
    ...      "index": np.arange(8)}
    >>> y = np.eye(5, dtype="float32")[np.arange(8) % 5]
    >>> model.compile(optimizer="sgd")
    >>> history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['cls_loss', 'loss', 'metric_loss', 'rec_loss']

    A custom configuration — feature vectors, one-way loss, exact neighbour images:

    >>> model = RETDM(6, backbone="mlp", input_dim=294, embed_dim=64, alpha=0.0,
    ...               num_neighbors=5, neighbor_images="exact")
    """

    # the public path, as before the package split: saved files name it ("module")
    __module__ = "retdm_keras.model"

    def __init__(
        self,
        num_labels: int,
        backbone: str = "mobilenet_v2",
        image_size: int | tuple[int, int] = 224,
        embed_dim: int = 512,
        num_neighbors: int = 10,
        lam: float = 1.0,
        mu: float = 1.0,
        alpha: float = 1.0,
        margin: float = 0.0,
        distance: str = "sqeuclidean",
        embedding_norm: float | None = 2.0,
        neighbor_images: str = "memory_bank",
        decouple_label_rate: bool = True,
        backbone_metric_weight: float = 0.1,
        hinge_reduction: str = "mean",
        tie_break: str = "random",
        label_set_weight: float = 0.5,
        label_set_temperature: float = 1.0,
        label_sets: list[list[int]] | None = None,
        weights: str | None = None,
        pretrained_backbone: bool | None = None,
        backbone_width: float | None = None,
        input_dim: int | None = None,
        label_hidden_units: int = 512,
        label_activation: str = "tanh",
        dropout: float = 0.0,
        freeze_batchnorm: bool | None = None,
        standardize: bool = True,
        linear_skip: bool = True,
        baseline_weight: float = 0.0,
        baseline_head: bool | None = None,
        label_names: list[str] | None = None,
        thresholds: float | list[float] | None = None,
        top_k: int | None = None,
        loss_config: LossConfig | dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === config ===
        self.num_labels = int(num_labels)
        self.embed_dim = int(embed_dim)
        self.num_neighbors = int(num_neighbors)
        self._init_loss_config(
            loss_config,
            dict(
                lam=lam,
                mu=mu,
                alpha=alpha,
                margin=margin,
                distance=distance,
                embedding_norm=embedding_norm,
                hinge_reduction=hinge_reduction,
            ),
        )
        self.neighbor_images = one_of("neighbor_images", neighbor_images, NEIGHBOR_IMAGES)
        self.decouple_label_rate = bool(decouple_label_rate)
        self.backbone_metric_weight = unit_interval(
            "backbone_metric_weight", backbone_metric_weight
        )
        self.tie_break = one_of("tie_break", tie_break, TIE_BREAKS)
        self.label_set_weight = unit_interval("label_set_weight", label_set_weight)
        self.label_set_temperature = positive("label_set_temperature", label_set_temperature)
        self.label_sets = label_sets
        self.label_hidden_units = int(label_hidden_units)
        self.baseline_weight = unit_interval("baseline_weight", baseline_weight)
        self.label_names = label_names_for(label_names, self.num_labels)
        self.thresholds = thresholds_for(thresholds, self.num_labels)
        self.top_k = top_k_for(top_k, self.num_labels)

        # === layers ===
        self.image_embedder = ImageEmbedder(
            backbone,
            image_size=image_size,
            embed_dim=embed_dim,
            weights=weights,
            width=backbone_width,
            input_dim=input_dim,
            dropout=dropout,
            freeze_batchnorm=freeze_batchnorm,
            standardize=standardize,
            linear_skip=linear_skip,
            pretrained=pretrained_backbone,
            name="image_embedder",
        )
        self.label_embedder = LabelEmbedder(
            embed_dim=embed_dim,
            hidden_units=label_hidden_units,
            hidden_activation=label_activation,
            name="label_embedder",
        )
        self.classification_head = ClassificationHead(num_labels, name="classification_head")
        self.reconstruction_head = ReconstructionHead(num_labels, name="reconstruction_head")
        self.baseline_head: BaselineHead | None = None
        if baseline_head or (baseline_head is None and self.baseline_weight > 0):
            self.baseline_head = BaselineHead(num_labels, name="baseline_head")

        # === training state (not part of the saved model) ===
        self.cls_loss_tracker = keras.metrics.Mean(name="cls_loss")
        self.metric_loss_tracker = keras.metrics.Mean(name="metric_loss")
        self.rec_loss_tracker = keras.metrics.Mean(name="rec_loss")
        self._training_set: TrainingSet | None = None
        self._training_input_kind = "images"
        self._freeze_backbone = False
        #: what ``fit_stages`` chose for the baseline (a ``BaselineBlend``), or None
        self.baseline_choice = None
        self.stage = "joint"
        self.build(self.input_shape_without_batch)

    # ------------------------------------------------------------------ structure
    @property
    def backbone(self) -> str:
        """Name of the image backbone."""
        return self.image_embedder.backbone_name

    @property
    def input_shape_without_batch(self) -> tuple[int, ...]:
        """``(H, W, 3)`` for images, ``(F,)`` for feature vectors."""
        if self.backbone == "mlp":
            return (int(self.image_embedder.input_dim),)
        return (*self.image_embedder.image_size, 3)

    def build(self, input_shape=None):
        if self.built:
            return
        self.image_embedder.build((None, *self.input_shape_without_batch))
        self.classification_head.build((None, self.embed_dim))
        self.label_embedder.build((None, self.num_labels))
        self.reconstruction_head.build((None, self.embed_dim))
        if self.baseline_head is not None:
            self.baseline_head.build((None, self.baseline_input_dim))
        self.built = True

    # ------------------------------------------------------------------ config
    def get_config(self):
        embedder = self.image_embedder
        return {
            "name": self.name,
            "num_labels": self.num_labels,
            "backbone": embedder.backbone_name,
            "image_size": list(embedder.image_size),
            "embed_dim": self.embed_dim,
            "num_neighbors": self.num_neighbors,
            "lam": self.lam,
            "mu": self.mu,
            "alpha": self.alpha,
            "margin": self.margin,
            "distance": self.distance,
            "embedding_norm": self.embedding_norm,
            "neighbor_images": self.neighbor_images,
            "decouple_label_rate": self.decouple_label_rate,
            "backbone_metric_weight": self.backbone_metric_weight,
            "hinge_reduction": self.hinge_reduction,
            "tie_break": self.tie_break,
            "label_set_weight": self.label_set_weight,
            "label_set_temperature": self.label_set_temperature,
            "label_sets": self.label_sets,
            "weights": None,  # the saved file carries the weights
            "pretrained_backbone": embedder.pretrained,
            "backbone_width": embedder.width,
            "input_dim": embedder.input_dim,
            "label_hidden_units": self.label_hidden_units,
            "label_activation": self.label_embedder.hidden_activation,
            "dropout": embedder.dropout_rate,
            "freeze_batchnorm": embedder.freeze_batchnorm,
            "standardize": embedder.standardize,
            "linear_skip": embedder.linear_skip,
            "baseline_weight": self.baseline_weight,
            "baseline_head": self.baseline_head is not None,
            "label_names": self.label_names,
            "thresholds": self.thresholds,
            "top_k": self.top_k,
            "stage": self.stage,
        }

    @classmethod
    def from_preset(cls, preset: str, **kwargs) -> RETDM:
        """A trained ``RETDM`` from the model zoo, in keras-hub's manner.

        Args:
            preset: a zoo name (``"scene"``, ``"scene-features"``, ``"scene@1"`` for a
                version) or a zoo entry folder.
            **kwargs: passed to :func:`retdm_keras.zoo.load` (``cache_dir``, ``offline``,
                ``registry``).

        Raises:
            retdm_keras.zoo.NoCheckpointError: the name only has a recipe (the message gives
                the commands that train and publish it).
            retdm_keras.zoo.ZooError: an unknown name, a missing or corrupted file.

        Example:

        >>> model = RETDM.from_preset("scene")                   # doctest: +SKIP
        >>> model.predict_labels(images)                         # doctest: +SKIP
        """
        from retdm_keras.zoo import load  # at call time: the zoo builds models, not vice versa

        model = load(preset, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(f"preset {preset!r} is a {type(model).__name__}, not a {cls.__name__}")
        return model

    @classmethod
    def from_config(cls, config):
        # Files saved before these options existed: no Normalization weights, ReLU in g,
        # the classifier alone.
        config = {
            "standardize": False,
            "linear_skip": False,
            "label_activation": "relu",
            "label_set_weight": 0.0,
            **config,
        }
        # The stage decides what is trainable, so it is set before Keras compiles the loaded
        # model and builds its optimizer: the saved optimizer's variables then match.
        stage = config.pop("stage", "joint")
        model = cls(**config)
        model.set_stage(stage)
        model.label_sets_from_config = True  # its config says which label sets it has
        return model
