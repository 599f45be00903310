"""Mixed precision: RETDM trains under mixed_float16 / mixed_bfloat16 like under float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from retdm_keras import RETDM, default_optimizer, fit_stages


def train(policy: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        rng = np.random.default_rng(0)
        y = (rng.random((16, 3)) < 0.4).astype("float32")
        y[np.arange(16), np.arange(16) % 3] = 1
        images = rng.uniform(0, 80, (16, 16, 16, 3)) + 150 * y[:, None, None, :]
        images = images.astype("float32")
        data = tf.data.Dataset.from_tensor_slices(
            ({"images": images, "index": np.arange(16)}, y)
        ).batch(8)
        keras.utils.set_random_seed(0)
        model = RETDM(
            3,
            backbone="tiny_cnn",
            image_size=16,
            embed_dim=8,
            label_hidden_units=16,
            lam=0.1,
            mu=0.1,
        )
        optimizer = None
        if policy == "mixed_float16":
            # Keras would wrap the optimiser itself, starting the dynamic loss scale at 2**15;
            # its first steps would then be skipped for overflow. Start lower so the few
            # steps of this test all count.
            def optimizer(stage, lr):
                return keras.optimizers.LossScaleOptimizer(
                    default_optimizer(lr), initial_scale=2.0**8
                )

        histories = fit_stages(
            model,
            data,
            epochs=(2, 1, 2),
            learning_rates=(0.01, 0.01, 0.01),
            optimizer=optimizer,
            verbose=0,
        )
        return model, histories, model.predict(images, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def float32_run():
    return train("float32")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_trains_under_mixed_precision_like_float32(policy, float32_run):
    model, histories, probabilities = train(policy)
    _, reference, reference_probabilities = float32_run
    assert model.image_embedder.compute_dtype != "float32"
    assert model.image_embedder.variable_dtype == "float32"
    if policy == "mixed_float16":  # dynamic loss scaling
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    for stage, history in histories.items():
        for name, values in history.history.items():
            if not name.endswith("loss"):
                continue
            assert np.all(np.isfinite(values)), (stage, name, values)
            # the same trajectory as float32, up to half-precision rounding
            np.testing.assert_allclose(values, reference[stage].history[name], rtol=0.05)
    joint = histories["joint"].history["loss"]
    assert joint[-1] < joint[0]
    assert probabilities.dtype == np.float32  # predictions come back in float32
    np.testing.assert_allclose(probabilities, reference_probabilities, atol=0.05)
