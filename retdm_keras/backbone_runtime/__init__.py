"""A fast runtime for a fixed image backbone: ONNX Runtime on CPUs.

With the backbone frozen (frozen-backbone training) or trained already (prediction), its
pooled features are a fixed function of each image, and that function is the expensive part
of both feature extraction and inference. Keras runs it through TensorFlow; on a CPU, the same
graph converted to ONNX (tf2onnx) and run by ONNX Runtime is faster (see ``docs/method.md``,
"A fast backbone runtime", for the measurements), with features equal to the Keras ones within
``PARITY_TOLERANCE`` of their scale.

* :func:`backbone_function` gives ``images (B, H, W, 3) -> features (B, D)`` as numpy, through
  ONNX Runtime where it applies and through a compiled Keras function otherwise. The frozen
  feature extraction (:mod:`retdm_keras.frozen_features`) and ``RETDM.predict`` /
  ``evaluate`` / ``predict_labels`` on raw images of a pretrained model use it.
* The backbone (preprocessing and pooling included) is converted once per backbone and weights:
  the ``.onnx`` file is stored under ``<cache>/backbones/<key>.onnx`` with a ``<key>.json``
  manifest (:class:`ConvertedBackboneStore`), where the key is a sha256 of the backbone's name,
  width, image size, weights and the converter's versions. Files are written atomically; a
  corrupt or stale file is rebuilt with a :class:`BackboneRuntimeWarning`; a cache folder that
  cannot be written keeps the converted model in memory for the process.
* Each conversion is checked on a probe batch against Keras; a backbone that cannot be
  converted, or whose converted graph does not match, falls back to Keras with one warning.

Which runtime (:func:`resolve_backbone_runtime`): ``"auto"`` (the default) uses ONNX Runtime
for an image backbone computing in float32 on a machine without a visible GPU, outside a
``tf.distribute`` strategy, with ``onnxruntime`` and ``tf2onnx`` installed; otherwise Keras.
``"keras"`` always uses Keras; ``"onnx"`` asks for ONNX Runtime and warns where it cannot be
used. Set it per model (``model.backbone_runtime = "keras"``), per process
(``RETDM_BACKBONE_RUNTIME=keras``) or per CLI command (``--backbone-runtime keras``).

Example:

>>> import numpy as np
>>> from retdm_keras.embedders import ImageEmbedder
>>> f = ImageEmbedder("tiny_cnn", image_size=32, embed_dim=8)
>>> function = backbone_function(f, "keras")
>>> function.runtime, function(np.zeros((2, 32, 32, 3), "float32")).shape
('keras', (2, 32))
"""

from retdm_keras.backbone_runtime.function import (
    BackboneFunction,
    backbone_function,
    clear_backbone_functions,
)
from retdm_keras.backbone_runtime.onnx_backbone import (
    PARITY_TOLERANCE,
    BackboneRuntimeWarning,
    OnnxBackbone,
    convert_backbone,
    relative_difference,
)
from retdm_keras.backbone_runtime.policy import (
    ENVIRONMENT_VARIABLE,
    RUNTIMES,
    check_runtime,
    default_backbone_runtime,
    resolve_backbone_runtime,
)
from retdm_keras.backbone_runtime.store import (
    ConvertedBackboneStore,
    backbone_weights_sha256,
    default_store_dir,
)

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "PARITY_TOLERANCE",
    "RUNTIMES",
    "BackboneFunction",
    "BackboneRuntimeWarning",
    "ConvertedBackboneStore",
    "OnnxBackbone",
    "backbone_function",
    "backbone_weights_sha256",
    "check_runtime",
    "clear_backbone_functions",
    "convert_backbone",
    "default_backbone_runtime",
    "default_store_dir",
    "relative_difference",
    "resolve_backbone_runtime",
]
