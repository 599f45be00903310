"""What a model takes from its training data before fitting, and ``fit``.

The ``"mlp"`` feature statistics (``adapt``) and the training set (``prepare_training``: the
label-neighbour index, the memory bank and the label sets kept for retrieval).
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

from retdm_keras.training_set import TrainingSet, as_dataset, declared_batch_size

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


class TrainingDataMixin:
    """``RETDM``'s feature statistics, training set and ``fit``."""

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
        if self.tie_break == "random" and self.loss_config.metric_trains_in(self.stage):
            callbacks = list(kwargs.get("callbacks") or [])
            kwargs["callbacks"] = [_RedrawTies(self._training_set), *callbacks]
        return super().fit(x, y, batch_size=batch_size, **kwargs)
