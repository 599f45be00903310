"""The training stages: what trains in each, frozen-backbone mode, ``compile``."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import keras

STAGES = ("classifier", "metric", "joint")


class StagesMixin:
    """``RETDM``'s stage switching, backbone freezing, label-gradient scale and compile."""

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
        self.image_embedder.trainable = image_side
        # Explicitly: assigning an unchanged `trainable` is a no-op in Keras' TF backend, so
        # image_embedder.trainable = True would not undo an earlier frozen backbone.
        self.image_embedder.set_backbone_trainable(image_side and not self._freeze_backbone)
        self.classification_head.trainable = image_side
        # A label-side part whose loss terms have weight 0 has nothing to learn (BCE: λ = μ = 0).
        self.label_embedder.trainable = self.loss_config.label_side_trains_in(stage)
        self.reconstruction_head.trainable = self.loss_config.reconstruction_trains_in(stage)
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
        """Whether ``stage`` has anything to train: the ``"metric"`` stage needs λ or μ > 0
        (``LossConfig.stage_trains``)."""
        return self.loss_config.stage_trains(stage)

    @property
    def label_gradient_scale(self) -> float:
        """Factor on the label side's gradients (``g`` and the reconstruction head).

        With ``decouple_label_rate`` (the default) the label side descends
        ``L_metric + (μ/λ)·L_rec`` — λ sets how hard the metric pulls on ``f``, not how fast
        ``g`` learns (a small λ would otherwise shrink ``g``'s learning rate by λ). Without
        it, or with λ = 0, the factor is 1 (the paper's single objective).
        """
        if self.decouple_label_rate and self.loss_config.metric_trains:
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

    def load_weights(self, filepath, skip_mismatch: bool = False, **kwargs) -> None:
        """``keras.Model.load_weights``, with the optimizer state loaded when it fits.

        A ``.weights.h5`` file keeps the optimizer state of the model that saved it: one slot
        per trainable variable of the stage it was in. An optimizer that has not stepped yet
        (just compiled) has no slots, so Keras would skip that state with a warning. Here it
        is built for this model's trainable variables first: a file saved in the same stage
        resumes its optimizer state. A file from another stage holds other slots, e.g. a
        KerasTuner checkpoint of the joint stage loaded into a freshly built model
        (``get_best_models``); its optimizer state is left out with a log line instead of a
        warning (``fit_stages`` starts a fresh optimizer in every stage anyway).

        The training label sets that ``predict`` mixes in (``label_set_weight``) are
        configuration, not weights: a model given weights without them predicts with the
        classification head alone, and its first prediction warns so (not for a model made
        from a config, which records its label sets, none included). Load the ``.keras``
        file, or set ``label_sets`` (``prepare_training`` records them) before predicting.
        """
        optimizer = getattr(self, "optimizer", None)
        path = str(filepath)
        if (
            optimizer is not None
            and not optimizer.built
            and self.built
            and path.endswith(".weights.h5")
            and "objects_to_skip" not in kwargs
        ):
            optimizer.build(self.trainable_variables)
            expected = [tuple(v.shape) for v in optimizer.variables]
            if _saved_optimizer_shapes(path) not in (None, expected):
                logging.getLogger(__name__).info(
                    "%s: optimizer state not loaded (saved for other trainable variables "
                    "than those of stage %r)",
                    Path(path).name,
                    self.stage,
                )
                kwargs["objects_to_skip"] = [optimizer]
        super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
        # config-made models record their label sets (none included): nothing is missing
        self.weights_loaded_without_label_sets = (
            not self.label_sets and not self.label_sets_from_config
        )

    def compile_from_config(self, config):
        """Re-compile a loaded model from its saved compile config."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**{k: v for k, v in config.items() if k != "loss"})
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)


def _saved_optimizer_shapes(path: str) -> list[tuple[int, ...]] | None:
    """Shapes of the optimizer variables a ``.weights.h5`` file holds, in order (None: none)."""
    with h5py.File(path, "r") as file:
        saved = file.get("optimizer/vars")
        if saved is None:
            return None
        return [tuple(saved[str(i)].shape) for i in range(len(saved))]
