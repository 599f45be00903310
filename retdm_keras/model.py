"""``RETDM``: the Keras model — embedders, heads, and the three-term training step.

Data flow of one training step (stage ``"joint"``)::

    images x ──f──► u ──classification head──► logits ──► L_cls (BCE)          ─┐
    labels y ──g──► v ──reconstruction head──► ŷ      ──► L_rec (MSE)          ─┼─► L
    index  i ──LabelNeighbors──► y_k ──g──► g(y_k) ┐                            │
                └─ a member x_jk of each y_k ──memory bank──► u_jk ┴─► L_metric ─┘

``predict`` only runs ``f`` and the classification head: the label branch is a training-time
regulariser. See ``retdm_keras.losses`` for the equations and ``retdm_keras.training`` for
the three-stage schedule.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from retdm_keras.embedders import ImageEmbedder, LabelEmbedder
from retdm_keras.heads import ClassificationHead, ReconstructionHead
from retdm_keras.label_set_scores import label_set_scores
from retdm_keras.losses import (
    DISTANCES,
    HINGE_REDUCTIONS,
    classification_loss,
    reconstruction_loss,
    two_way_metric_loss,
)
from retdm_keras.training_set import TrainingSet, as_dataset, declared_batch_size

STAGES = ("classifier", "metric", "joint")
# Keys of an input dict that hold what f embeds: raw images, feature vectors ("mlp"), or
# pooled backbone features (frozen-backbone training, see retdm_keras.frozen_features).
INPUT_KEYS = ("images", "features", "backbone_features")
BACKBONE_FEATURES = "backbone_features"
NEIGHBOR_IMAGES = ("memory_bank", "exact")
TIE_BREAKS = ("random", "set_order")
MAX_RETRIEVAL_SETS = 4096
"""Most distinct training label sets for which ``label_set_weight`` applies."""


class _RedrawTies(keras.callbacks.Callback):
    """Before every epoch, a new random order for neighbour-distance ties."""

    def __init__(self, training_set: TrainingSet):
        super().__init__()
        self.training_set = training_set

    def on_epoch_begin(self, epoch, logs=None):
        # drawn from numpy's global generator, so keras.utils.set_random_seed fixes it
        self.training_set.redraw_ties(np.random.randint(2**31))


@keras.saving.register_keras_serializable(package="retdm_keras")
class RETDM(keras.Model):
    """Reconstruction-regularized two-way deep metric learning for multi-label images.

    Args:
        num_labels: number of labels ``C``.
        backbone: image backbone name, see ``ImageEmbedder.BACKBONES``.
        image_size: input image size (int or ``(h, w)``); ignored for ``"mlp"``.
        embed_dim: size of the shared embedding space (the paper: 512).
        num_neighbors: ``K``, neighbour label sets per sample.
        lam: weight ``λ`` of the metric loss.
        mu: weight ``μ`` of the reconstruction loss.
        alpha: weight of the second (label → image) way; 0 is the one-way ablation.
        margin: hinge margin of the metric loss, in unit-sphere distance units when
            ``embedding_norm`` is set (see ``metric_margin``).
        hinge_reduction: ``"mean"`` (default) or ``"sum"`` of the hinge over the neighbours.
        tie_break: which of several equally near label sets become neighbours:
            ``"random"`` (default; redrawn every epoch, so negatives spread over all of
            them) or ``"set_order"`` (always the lexicographically first ones).
        label_set_weight: ``w`` in ``[0, 1]``: predictions mix the classifier's sigmoid
            (``1 - w``) with label-set retrieval in the metric space (``w``, see
            ``probabilities_from_embedding``). Default 0.5 (ours, chosen on validation
            data, see ``docs/method.md``); 0 is the paper's classifier alone. Applies once
            the model has seen its training set (``prepare_training``) and when it has at
            most ``MAX_RETRIEVAL_SETS`` distinct label sets.
        label_set_temperature: the retrieval softmax's temperature ``T`` (default 1).
        label_sets: the distinct training label sets (label indices each), recorded by
            ``prepare_training`` and saved with the model; used when ``label_set_weight > 0``.
        distance: ``"sqeuclidean"`` or ``"euclidean"``.
        embedding_norm: the metric loss sees ``embedding_norm · u/‖u‖`` and
            ``embedding_norm · v/‖v‖`` (distances bounded by ``4·embedding_norm²``, default 2).
            ``None`` uses the raw embeddings; their distances are unbounded and joint
            training with a pretrained backbone diverged to NaN in our runs.
        neighbor_images: where ``u_jk`` comes from: ``"memory_bank"`` (default, cheap) or
            ``"exact"`` (forward the neighbour images through ``f`` every step).
        decouple_label_rate: the label side (``g``, reconstruction head) descends
            ``L_metric + (μ/λ)·L_rec`` at the optimiser's full rate instead of
            ``λ·L_metric + μ·L_rec`` (default True; False is the paper's single objective,
            where a small λ also slows ``g`` down by λ). ``f`` always gets ``λ·L_metric``.
        weights: backbone weights, ``"imagenet"``, ``None`` or a file path.
        backbone_width: MobileNet width multiplier (``alpha`` in ``keras.applications``).
        input_dim: feature size for the ``"mlp"`` backbone.
        label_hidden_units: hidden units of the label embedder (the paper: 512).
        label_activation: the label embedder's hidden activation (default ``"tanh"``, see
            ``LabelEmbedder``).
        dropout: dropout before the image projection.
        freeze_batchnorm: keep the backbone's BatchNormalization statistics frozen (default:
            True with pretrained ``weights``, False from scratch).
        standardize: ``"mlp"`` only: standardise the input features inside the model with a
            ``keras.layers.Normalization`` layer adapted on the training features
            (``fit_stages`` calls :meth:`adapt`; default True). The statistics are saved
            with the model, so ``predict`` takes raw features.
        label_names: optional names of the ``C`` labels, used by ``predict_labels``.
        thresholds: optional decision threshold, a float or ``C`` floats (default 0.5).
        top_k: predict the ``top_k`` highest labels per image instead of thresholding (used by
            ``predict_labels`` when no ``threshold`` is passed); ``None`` (default) thresholds.

    Inputs are raw images, float pixels in ``[0, 255]`` of shape ``(B, H, W, 3)`` (feature
    vectors ``(B, F)`` for ``"mlp"``), or a dict ``{"images" | "features": ..., "index": ...}``
    as produced by ``retdm_keras.data``; the output is label probabilities ``(B, C)``. A dict
    with ``"backbone_features"`` ``(B, D)`` (pooled backbone outputs, see
    ``ImageEmbedder.backbone_features``) skips the backbone: frozen-backbone training
    (``fit_stages(..., freeze_backbone=True)``) learns from such batches.

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
        hinge_reduction: str = "mean",
        tie_break: str = "random",
        label_set_weight: float = 0.5,
        label_set_temperature: float = 1.0,
        label_sets: list[list[int]] | None = None,
        weights: str | None = None,
        backbone_width: float | None = None,
        input_dim: int | None = None,
        label_hidden_units: int = 512,
        label_activation: str = "tanh",
        dropout: float = 0.0,
        freeze_batchnorm: bool | None = None,
        standardize: bool = True,
        label_names: list[str] | None = None,
        thresholds: float | list[float] | None = None,
        top_k: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if neighbor_images not in NEIGHBOR_IMAGES:
            raise ValueError(
                f"neighbor_images must be one of {NEIGHBOR_IMAGES}, got {neighbor_images!r}"
            )
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(
                f"label_names has {len(label_names)} names but num_labels is {num_labels}"
            )
        # === config ===
        self.num_labels = int(num_labels)
        self.embed_dim = int(embed_dim)
        self.num_neighbors = int(num_neighbors)
        self.lam = float(lam)
        self.mu = float(mu)
        self.alpha = float(alpha)
        self.margin = float(margin)
        self.distance = distance
        self.embedding_norm = None if embedding_norm is None else float(embedding_norm)
        self.neighbor_images = neighbor_images
        self.decouple_label_rate = bool(decouple_label_rate)
        if hinge_reduction not in HINGE_REDUCTIONS:
            raise ValueError(
                f"hinge_reduction must be one of {HINGE_REDUCTIONS}, got {hinge_reduction!r}"
            )
        self.hinge_reduction = hinge_reduction
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
        self.tie_break = tie_break
        if not 0.0 <= float(label_set_weight) <= 1.0:
            raise ValueError(f"label_set_weight must be in [0, 1], got {label_set_weight}")
        if float(label_set_temperature) <= 0.0:
            raise ValueError(f"label_set_temperature must be > 0, got {label_set_temperature}")
        self.label_set_weight = float(label_set_weight)
        self.label_set_temperature = float(label_set_temperature)
        self.label_sets = label_sets
        self.label_hidden_units = int(label_hidden_units)
        self.label_names = list(label_names) if label_names is not None else None
        self.thresholds = self._check_thresholds(thresholds)
        self._check_top_k(top_k)
        self.top_k = None if top_k is None else int(top_k)

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

        # === training state (not part of the saved model) ===
        self.cls_loss_tracker = keras.metrics.Mean(name="cls_loss")
        self.metric_loss_tracker = keras.metrics.Mean(name="metric_loss")
        self.rec_loss_tracker = keras.metrics.Mean(name="rec_loss")
        self._training_set: TrainingSet | None = None
        self._training_input_kind = "images"
        self._freeze_backbone = False
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
        self.built = True

    def _check_thresholds(self, thresholds):
        if thresholds is None:
            return None
        values = np.atleast_1d(np.asarray(thresholds, dtype="float32"))
        if values.size not in (1, self.num_labels) or values.ndim != 1:
            raise ValueError(
                f"thresholds must be one value or {self.num_labels} values, got shape "
                f"{np.shape(thresholds)}"
            )
        if values.size == 1:
            return float(values[0])
        return [float(t) for t in values]

    def _check_top_k(self, top_k):
        if top_k is None:
            return
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
            raise ValueError(f"top_k must be an integer or None, got {top_k!r}")
        if not 1 <= top_k <= self.num_labels:
            raise ValueError(f"top_k must be in 1..{self.num_labels} (num_labels), got {top_k}")

    @staticmethod
    def _split_inputs(x):
        """``(kind, tensor, index or None)`` of a batch; ``kind`` is one of ``INPUT_KEYS``."""
        if isinstance(x, dict):
            for key in INPUT_KEYS:
                if key in x:
                    return key, x[key], x.get("index")
            raise ValueError(
                "an input dict needs an 'images', 'features' or 'backbone_features' entry, "
                f"got keys {sorted(x)}"
            )
        return "images", x, None

    @classmethod
    def _inputs_of(cls, x):
        """The image/feature tensor and the sample index (or None) of a batch."""
        _, tensor, index = cls._split_inputs(x)
        return tensor, index

    def _embed(self, kind: str, tensor, training):
        """``u = f(x)``; pooled backbone features (``kind="backbone_features"``) skip the
        backbone."""
        if kind == BACKBONE_FEATURES:
            return self.image_embedder.embed_backbone_features(tensor, training=training)
        return self.image_embedder(tensor, training=training)

    # ------------------------------------------------------------------ forward pass
    def call(self, inputs, training=None):
        kind, x, _ = self._split_inputs(inputs)
        return self.probabilities_from_embedding(self._embed(kind, x, training))

    def probabilities_from_embedding(self, u):
        """Label probabilities ``(B, C)`` (float32) from image embeddings ``u = f(x)``.

        The classification head's sigmoid, mixed — when ``label_set_weight = w > 0``, the
        metric is trained (λ > 0) and the training label sets are known — with retrieval
        scores in the metric space
        (``retdm_keras.label_set_scores``): ``(1 - w) · sigmoid(head(u)) + w · q(u)``.
        """
        # float32 probabilities also under a mixed-precision policy
        probabilities = ops.cast(self.classification_head(u), "float32")
        if self.label_set_weight == 0.0 or self.lam == 0.0 or not self.label_sets:
            return probabilities  # λ = 0: the metric space was never trained
        sets = ops.convert_to_tensor(self._label_set_matrix)
        set_embeddings = self._metric_space(ops.cast(self.label_embedder(sets), "float32"))
        scores = label_set_scores(
            self._metric_space(ops.cast(u, "float32")),
            set_embeddings,
            sets,
            temperature=self.label_set_temperature,
            distance=self.distance,
        )
        w = self.label_set_weight
        return (1.0 - w) * probabilities + w * scores

    def embed_images(self, inputs, training: bool = False):
        """``u = f(x)`` for a batch (array, tensor, or input dict)."""
        kind, x, _ = self._split_inputs(inputs)
        return self._embed(kind, x, training)

    @property
    def label_sets(self) -> list[list[int]] | None:
        """The distinct training label sets (label indices each), or None; saved in the
        config, used by ``probabilities_from_embedding``."""
        return self._label_sets

    @label_sets.setter
    def label_sets(self, value) -> None:
        if value is None:
            self._label_sets, self._label_set_matrix = None, None
            return
        self._label_sets = [sorted(map(int, s)) for s in value]
        matrix = np.zeros((len(self._label_sets), self.num_labels), np.float32)
        for row, labels in enumerate(self._label_sets):
            matrix[row, labels] = 1.0
        self._label_set_matrix = matrix  # multi-hot, built once, not at every prediction

    def backbone_features(self, images, training: bool = False):
        """Pooled backbone features ``(B, D)`` of raw images (or an input dict): ``f`` up to,
        but excluding, its dropout and projection (``ImageEmbedder.backbone_features``)."""
        x, _ = self._inputs_of(images)
        return self.image_embedder.backbone_features(x, training=training)

    def embed_labels(self, labels):
        """``v = g(y)`` for multi-hot labels ``(B, C)``."""
        return self.label_embedder(labels)

    @property
    def decision_threshold(self) -> float | list[float]:
        """The stored ``thresholds`` (one value or one per label), else 0.5."""
        return 0.5 if self.thresholds is None else self.thresholds

    def predict_labels(self, x, threshold=None, **predict_kwargs) -> list[list[str]]:
        """Names (or indices, without ``label_names``) of the predicted labels of each image.

        A label is predicted when its probability is ``>= threshold``. Without ``threshold``,
        a model with ``top_k`` predicts the ``top_k`` most probable labels of each image (ties
        go to the lower label index); otherwise the stored ``thresholds`` apply, else 0.5.
        Each image's labels are listed in label order.
        """
        probabilities = self.predict(x, **{"verbose": 0, **predict_kwargs})
        if threshold is None and self.top_k:
            order = np.argsort(-probabilities, axis=1, kind="stable")[:, : self.top_k]
            chosen = np.zeros(probabilities.shape, dtype=bool)
            np.put_along_axis(chosen, order, True, axis=1)
        else:
            if threshold is None:
                threshold = self.decision_threshold
            chosen = probabilities >= np.asarray(threshold, dtype=probabilities.dtype)
        names = self.label_names or list(range(self.num_labels))
        return [[names[j] for j in np.flatnonzero(row)] for row in chosen]

    # ------------------------------------------------------------------ stages
    def set_stage(self, stage: str) -> None:
        """Freeze/unfreeze parts for a training stage; call ``compile`` afterwards.

        * ``"classifier"``: f + classification head train on BCE; g and the reconstruction
          head are frozen.
        * ``"metric"``: f and the classification head are frozen; g and the reconstruction head
          train on ``lam·L_metric + mu·L_rec``.
        * ``"joint"``: everything trains on the full loss.
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        image_side = stage != "metric"
        label_side = stage != "classifier"
        self.image_embedder.trainable = image_side
        # Explicitly: assigning an unchanged `trainable` is a no-op in Keras' TF backend, so
        # image_embedder.trainable = True would not undo an earlier frozen backbone.
        self.image_embedder.set_backbone_trainable(image_side and not self._freeze_backbone)
        self.classification_head.trainable = image_side
        # A label-side part whose loss terms have weight 0 has nothing to learn (BCE: λ = μ = 0).
        self.label_embedder.trainable = label_side and (self.lam > 0 or self.mu > 0)
        self.reconstruction_head.trainable = label_side and self.mu > 0
        self.train_function = self.test_function = None

    @property
    def freeze_backbone(self) -> bool:
        """Frozen-backbone mode: :meth:`set_stage` keeps the backbone non-trainable in every
        stage (the projection, the heads and the label side still train as usual).

        ``fit_stages(..., freeze_backbone=True)`` sets it for its run and restores it after.
        Setting it re-applies the current stage. Not saved with the model: it is a way of
        training, not part of the network.
        """
        return self._freeze_backbone

    @freeze_backbone.setter
    def freeze_backbone(self, value: bool) -> None:
        value = bool(value)
        if value and self.backbone == "mlp":
            raise ValueError(
                "freeze_backbone needs an image backbone: the 'mlp' layers are the only part "
                "of f that learns from feature vectors"
            )
        self._freeze_backbone = value
        self.set_stage(self.stage)

    def stage_trains(self, stage: str) -> bool:
        """Whether ``stage`` has anything to train: the ``"metric"`` stage needs λ or μ > 0."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        return stage != "metric" or self.lam > 0 or self.mu > 0

    @property
    def label_gradient_scale(self) -> float:
        """Factor on the label side's gradients (``g`` and the reconstruction head).

        With ``decouple_label_rate`` (the default) the label side descends
        ``L_metric + (μ/λ)·L_rec`` — λ sets how hard the metric pulls on ``f``, not how fast
        ``g`` learns (a small λ would otherwise shrink ``g``'s learning rate by λ). Without
        it, or with λ = 0, the factor is 1 (the paper's single objective).
        """
        if self.decouple_label_rate and self.lam > 0:
            return 1.0 / self.lam
        return 1.0

    def compile(self, optimizer="rmsprop", *, jit_compile=False, **kwargs):
        """``keras.Model.compile``; the losses are built in, so ``loss`` is not accepted.

        ``jit_compile`` defaults to False (XLA compilation of large backbones is slow on CPU).
        """
        if kwargs.get("loss") is not None:
            raise ValueError("RETDM computes its own losses; do not pass loss= to compile()")
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """Re-compile a loaded model from its saved compile config."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**{k: v for k, v in config.items() if k != "loss"})
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

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
            "label_activation": "relu",
            "label_set_weight": 0.0,
            **config,
        }
        return cls(**config)

    # ------------------------------------------------------------------ feature statistics
    @property
    def needs_adaptation(self) -> bool:
        """True when the ``"mlp"`` feature standardisation has not been adapted yet."""
        return self.image_embedder.needs_adaptation

    def adapt(self, data) -> None:
        """Set the feature standardisation (``"mlp"`` backbone) from the training features.

        ``data``: a ``tf.data.Dataset`` of ``(x, y)`` batches as used for training, a dict
        with ``"features"``, or an ``(N, F)`` array. Does nothing for image backbones.
        """
        if not self.image_embedder.standardize:
            return
        if isinstance(data, tf.data.Dataset):
            features = data.map(lambda x, *rest: self._inputs_of(x)[0])
        else:
            features = self._inputs_of(data)[0]
        self.image_embedder.adapt(features)

    # ------------------------------------------------------------------ training set
    @property
    def training_set(self) -> TrainingSet | None:
        """The attached training-set state (neighbour index, memory bank), or None."""
        return self._training_set

    def prepare_training(self, data, labels=None, batch_size: int = 64, verbose: int = 0):
        """Attach a training set: build the label-neighbour index and fill the memory bank.

        One pass over ``data``: a ``tf.data.Dataset`` of ``(x, y)`` with ``x["index"]``, or a
        dict of arrays with ``labels``. Called by ``fit`` when needed and by ``fit_stages`` at
        the start of the ``metric`` and ``joint`` stages.

        Degenerate training sets still train; each of these gives one ``UserWarning`` per
        call: a single distinct label set (no neighbour sets exist, so the metric loss is
        masked to 0), labels that are never positive (named in the message; the classifier
        only learns to predict 0 for them), and a dataset batched with a batch size larger
        than the training set (every step sees the whole set; with ``drop_remainder`` no
        batch is left, which is the "training data is empty" error). All-zero label rows
        are a valid label set.

        Raises:
            ValueError: no batches, no sample index, indices that are not ``0..N-1``, or
                labels whose width differs from ``num_labels``.
        """
        dataset = as_dataset(data, labels, batch_size)
        indices, ys, embeddings, inputs = [], [], [], []
        keep_inputs = self.neighbor_images == "exact"
        kinds = set()
        for batch in dataset:
            x, y = batch[0], batch[1]
            kind, features, index = self._split_inputs(x)
            kinds.add(kind)
            if index is None:
                raise ValueError(
                    "training data must carry a sample index: batches of "
                    "({'images' or 'features': ..., 'index': row numbers}, labels), as made by "
                    "retdm_keras.data; or pass x={'images': X, 'index': np.arange(len(X))}"
                )
            indices.append(np.asarray(index))
            ys.append(np.asarray(y))
            u = tf.cast(self._embed(kind, features, training=False), tf.float32)
            embeddings.append(self._metric_space(u))
            if keep_inputs:
                inputs.append(np.asarray(features))
        if len(kinds) > 1:
            raise ValueError(f"the training data mixes input kinds {sorted(kinds)}")
        self._training_input_kind = kinds.pop() if kinds else "images"
        self._training_set = TrainingSet.from_pass(
            indices,
            ys,
            embeddings,
            inputs if keep_inputs else None,
            num_labels=self.num_labels,
            num_neighbors=self.num_neighbors,
            embed_dim=self.embed_dim,
            label_names=self.label_names,
            declared_batch=declared_batch_size(data),
            tie_break=np.random.randint(2**31) if self.tie_break == "random" else None,
        )
        self.train_function = self.test_function = self.predict_function = None
        neighbors = self._training_set.neighbors
        # the distinct training label sets, kept (and saved) for label-set retrieval scores;
        # past MAX_RETRIEVAL_SETS their embedding at every prediction step costs too much
        if neighbors.num_sets <= MAX_RETRIEVAL_SETS:
            self.label_sets = [np.flatnonzero(row).tolist() for row in neighbors.unique_sets]
        else:
            self.label_sets = None
            if self.label_set_weight > 0:
                warnings.warn(
                    f"{neighbors.num_sets} distinct training label sets (more than "
                    f"{MAX_RETRIEVAL_SETS}): predictions use the classifier alone, without "
                    "label-set retrieval scores",
                    stacklevel=2,
                )
        if verbose:
            print(f"prepared {neighbors!r}; memory bank {neighbors.num_samples}×{self.embed_dim}")
        return neighbors

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        """``keras.Model.fit``; attaches the training set first if the stage needs it."""
        if self.stage != "classifier" and self._training_set is None:
            self.prepare_training(x, y, batch_size=batch_size or 32)
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a dataset shuffles itself
        if self.stage != "classifier" and self.tie_break == "random" and self.lam > 0:
            callbacks = list(kwargs.get("callbacks") or [])
            kwargs["callbacks"] = [_RedrawTies(self._training_set), *callbacks]
        return super().fit(x, y, batch_size=batch_size, **kwargs)

    # ------------------------------------------------------------------ the losses
    def _neighbour_images(self, set_ids, training):
        """Embeddings ``u_jk`` of one random training image carrying each neighbour set."""
        ts = self._training_set
        members = ts.draw_members(set_ids)
        if self.neighbor_images == "memory_bank":
            return ts.bank.gather(members)
        images = tf.gather(ts.inputs, tf.reshape(members, (-1,)))
        u = self._embed(self._training_input_kind, images, training)
        u = self._metric_space(tf.cast(u, tf.float32))
        return tf.reshape(u, (tf.shape(set_ids)[0], tf.shape(set_ids)[1], self.embed_dim))

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

    def _metric_space(self, embeddings):
        """Embeddings as the metric loss sees them: raw, or L2-normalised × ``embedding_norm``."""
        if self.embedding_norm is None:
            return embeddings
        return self.embedding_norm * ops.normalize(embeddings, axis=-1, order=2)

    def _compute_losses(self, x, y, training):
        """Forward pass and the loss terms.

        Returns ``(probabilities, u in metric space, index, L_cls, L_metric, L_rec)``.
        The losses are computed in float32 whatever the layers' compute dtype (mixed
        precision runs the layers in float16/bfloat16).
        """
        kind, features, index = self._split_inputs(x)
        y = tf.cast(y, tf.float32)

        def f32(t):
            return tf.cast(t, tf.float32)

        u = self._embed(kind, features, training)
        logits = f32(self.classification_head.logits(u))
        cls_loss = ops.mean(classification_loss(y, logits))
        zero = tf.zeros((), dtype=cls_loss.dtype)
        metric_loss = rec_loss = zero
        u_metric = self._metric_space(f32(u))
        if self.stage != "classifier" and (self.lam > 0 or self.mu > 0):
            v = self.label_embedder(y)
            if self.mu > 0:
                rec_loss = ops.mean(reconstruction_loss(y, f32(self.reconstruction_head(v))))
            if self.lam > 0 and self._training_set is not None:
                set_ids, mask = self._training_set.neighbours(
                    y, index if training else None, self.num_neighbors
                )
                nbr_labels = tf.gather(self._training_set.unique_sets, set_ids)
                nbr_label_emb = self._metric_space(f32(self.label_embedder(nbr_labels)))
                nbr_image_emb = self._neighbour_images(set_ids, training)
                metric_loss = ops.mean(
                    two_way_metric_loss(
                        u_metric,
                        self._metric_space(f32(v)),
                        nbr_label_emb,
                        f32(nbr_image_emb),
                        f32(mask),
                        margin=self.metric_margin,
                        alpha=self.alpha,
                        distance=self.distance,
                        # bank images carry no gradient: way 2 then trains the label side only
                        image_gradient_in_second_way=self.neighbor_images == "exact",
                        hinge_reduction=self.hinge_reduction,
                    )
                )
        return ops.sigmoid(logits), u_metric, index, cls_loss, metric_loss, rec_loss

    def _total(self, cls_loss, metric_loss, rec_loss):
        """``L = L_cls + lam·L_metric + mu·L_rec``, restricted to the stage's terms."""
        if self.stage == "classifier":
            return cls_loss
        regulariser = self.lam * metric_loss + self.mu * rec_loss
        if self.stage == "metric":
            return regulariser
        return cls_loss + regulariser

    def _record(self, x, y, probabilities, total, cls_loss, metric_loss, rec_loss):
        self._loss_tracker.update_state(total)
        self.cls_loss_tracker.update_state(cls_loss)
        self.metric_loss_tracker.update_state(metric_loss)
        self.rec_loss_tracker.update_state(rec_loss)
        if self._compile_metrics is not None:
            self._compile_metrics.update_state(y, probabilities)
        return self.stage_logs()

    def stage_logs(self) -> dict:
        """The current metric values, without the loss terms this stage does not train.

        ``metric_loss`` is left out in the classifier stage and when λ = 0, ``rec_loss`` in
        the classifier stage and when μ = 0 (a BCE run logs neither).
        """
        logs = self.get_metrics_result()
        if self.stage == "classifier" or self.lam == 0:
            logs.pop("metric_loss", None)
        if self.stage == "classifier" or self.mu == 0:
            logs.pop("rec_loss", None)
        return logs

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if self.stage != "classifier" and self._training_set is None:
            raise ValueError(
                f"stage {self.stage!r} needs the training set: call "
                "model.prepare_training(train_data) or use retdm_keras.fit_stages"
            )
        with tf.GradientTape() as tape:
            probabilities, u, index, cls_loss, metric_loss, rec_loss = self._compute_losses(
                x, y, training=True
            )
            total = self._total(cls_loss, metric_loss, rec_loss)
            # Each replica holds the mean over its share of the global batch, and the
            # optimizer sums gradients over replicas: divide by the replica count.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = total / tf.cast(replicas, total.dtype)
            scaled = self.optimizer.scale_loss(scaled)
        weights = self.trainable_weights
        gradients = tape.gradient(scaled, weights)
        scale = self.label_gradient_scale
        if self.stage != "classifier" and scale != 1.0:
            label_side = {
                id(w)
                for part in (self.label_embedder, self.reconstruction_head)
                for w in part.trainable_weights
            }
            gradients = [
                g * scale if g is not None and id(w) in label_side else g
                for g, w in zip(gradients, weights, strict=True)
            ]
        self.optimizer.apply_gradients(zip(gradients, weights, strict=True))
        # f is frozen in the metric stage: the bank's clean fill stays exact (an update
        # would overwrite it with augmented, training-mode embeddings).
        if self.stage == "joint" and index is not None and self.lam > 0:
            self._training_set.bank.update(index, u)
        return self._record(x, y, probabilities, total, cls_loss, metric_loss, rec_loss)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        probabilities, _, _, cls_loss, metric_loss, rec_loss = self._compute_losses(
            x, y, training=False
        )
        total = self._total(cls_loss, metric_loss, rec_loss)
        return self._record(x, y, probabilities, total, cls_loss, metric_loss, rec_loss)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

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
            "hinge_reduction": self.hinge_reduction,
            "tie_break": self.tie_break,
            "label_set_weight": self.label_set_weight,
            "label_set_temperature": self.label_set_temperature,
            "label_sets": self.label_sets,
            "weights": None,  # the saved file carries the weights
            "backbone_width": embedder.width,
            "input_dim": embedder.input_dim,
            "label_hidden_units": self.label_hidden_units,
            "label_activation": self.label_embedder.hidden_activation,
            "dropout": embedder.dropout_rate,
            "freeze_batchnorm": embedder.freeze_batchnorm,
            "standardize": embedder.standardize,
            "label_names": self.label_names,
            "thresholds": self.thresholds,
            "top_k": self.top_k,
        }
