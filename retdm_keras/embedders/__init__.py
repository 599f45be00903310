"""The two embedders of RETDM: ``f`` for images and ``g`` for label sets.

``ImageEmbedder`` (f) takes raw images (float pixels in [0, 255]) — or, with the ``"mlp"``
backbone, pre-extracted feature vectors — applies the backbone's own preprocessing, runs a
``keras.applications`` backbone, pools, and projects to ``embed_dim`` (512 in the paper).
``LabelEmbedder`` (g) maps a multi-hot label vector to the same space with two Dense layers.

Backbones (``ImageEmbedder.BACKBONES``):

=================== ==========================================================================
``vgg16``           the paper's network: VGG-16 with its last FC layer dropped and the second
                    FC replaced by ``embed_dim`` units. At 224 px with ImageNet weights the
                    pretrained ``fc1`` (4096) is kept; otherwise ``fc1`` is a new 4096 layer on
                    average-pooled conv features.
``resnet50``        ResNet-50, average-pooled.
``mobilenet``       MobileNet v1 (``width`` = alpha, default 0.25), average-pooled.
``mobilenet_v2``    MobileNetV2 (``width`` = alpha, default 1.0), average-pooled.
``efficientnetv2b0`` EfficientNetV2-B0 (preprocessing built in), average-pooled.
``mlp``             feature vectors of size ``input_dim`` → ``hidden_units`` ReLU layers
                    (with ``linear_skip``, followed by the input features themselves).
``tiny_cnn``        three small conv blocks, for tests and quick experiments.
=================== ==========================================================================

``weights`` is ``"imagenet"``, ``None`` (random) or a path to a weights file, as in
``keras.applications``. It is used only when the layer is first created: ``get_config`` stores
``None`` because a saved model carries its own weights.

The package holds one module per part:

* ``backbones``: the backbone registry (``IMAGE_BACKBONES``) — builders, preprocessing and
  ImageNet weight loading;
* ``image``: ``ImageEmbedder`` (f);
* ``label``: ``LabelEmbedder`` (g).
"""

from retdm_keras.embedders.image import ImageEmbedder
from retdm_keras.embedders.label import BIAS_STDDEV, LabelEmbedder

__all__ = ["BIAS_STDDEV", "ImageEmbedder", "LabelEmbedder"]
