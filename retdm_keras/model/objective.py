"""The training objective: the loss terms and the train/test/predict steps.

See ``retdm_keras.model`` for the data flow of one step and ``retdm_keras.losses`` for the
equations.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from retdm_keras.losses import classification_loss, reconstruction_loss, two_way_metric_loss


class ObjectiveMixin:
    """``RETDM``'s losses, steps and per-stage logs."""

    # ------------------------------------------------------------------ the losses
    def _neighbour_images(self, set_ids, training):
        """Embeddings ``u_jk`` of one random training image carrying each neighbour set."""
        ts = self._training_set
        members = ts.draw_members(set_ids)
        if self.neighbor_images == "memory_bank":
            return ts.bank.gather(members)
        images = tf.gather(ts.inputs, tf.reshape(members, (-1,)))
        u = self._embed_for_metric(self._training_input_kind, images, training)
        u = self._metric_space(tf.cast(u, tf.float32))
        return tf.reshape(u, (tf.shape(set_ids)[0], tf.shape(set_ids)[1], self.embed_dim))

    def _metric_space(self, embeddings):
        """Embeddings as the metric loss sees them: raw, or L2-normalised × ``embedding_norm``."""
        if self.embedding_norm is None:
            return embeddings
        return self.embedding_norm * ops.normalize(embeddings, axis=-1, order=2)

    def _compute_losses(self, x, y, training):
        """Forward pass and the loss terms.

        Returns ``(probabilities, u in metric space, index, L_cls, L_metric, L_rec)``.
        ``probabilities`` are the classifier's sigmoid while training and, in evaluation,
        what ``predict`` returns (mixed with label-set retrieval), so validation metrics —
        and a tuner's objective — score the model's actual predictions.
        The losses are computed in float32 whatever the layers' compute dtype (mixed
        precision runs the layers in float16/bfloat16).
        """
        kind, features, index = self._split_inputs(x)
        baseline_x = None
        if not training:  # evaluation scores what predict returns, the baseline mixed in
            kind, features, baseline_x = self._with_baseline_input(kind, features, training)
        y = tf.cast(y, tf.float32)

        def f32(t):
            return tf.cast(t, tf.float32)

        u, u_for_metric = self._embed_for_losses(kind, features, training)
        logits = f32(self.classification_head.logits(u))
        cls_loss = ops.mean(classification_loss(y, logits))
        zero = tf.zeros((), dtype=cls_loss.dtype)
        metric_loss = rec_loss = zero
        u_metric = self._metric_space(f32(u_for_metric))
        loss_config = self.loss_config
        if loss_config.label_side_trains_in(self.stage):
            v = self.label_embedder(y)
            if loss_config.reconstruction_trains:
                rec_loss = ops.mean(reconstruction_loss(y, f32(self.reconstruction_head(v))))
            if loss_config.metric_trains and self._training_set is not None:
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
                        margin=loss_config.metric_margin,
                        alpha=loss_config.alpha,
                        distance=loss_config.distance,
                        # bank images carry no gradient: way 2 then trains the label side only
                        image_gradient_in_second_way=self.neighbor_images == "exact",
                        hinge_reduction=loss_config.hinge_reduction,
                    )
                )
        probabilities = ops.sigmoid(logits)
        if not training:  # the head's logits above serve predictions too: one head pass
            probabilities = self.mixed_with_label_sets(probabilities, u)
            probabilities = self.blended_with_baseline(probabilities, baseline_x)
        return probabilities, u_metric, index, cls_loss, metric_loss, rec_loss

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
        if not self.loss_config.metric_trains_in(self.stage):
            logs.pop("metric_loss", None)
        if not self.loss_config.reconstruction_trains_in(self.stage):
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
        if self.stage == "joint" and index is not None and self.loss_config.metric_trains:
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
