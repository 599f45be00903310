"""Multi-label image sets as tensorflow-datasets builders, and RETDM pipelines over them.

tfds separates *preparing* a dataset (once: read the raw files, write TFRecords under
``data_dir``) from *reading* it (``builder.as_dataset(split=...)``). The RETDM paper's sets
cannot be downloaded by a script, so their builders read a folder you unpacked yourself, the
``manual_dir``; without it tfds stops and prints the builder's ``MANUAL_DOWNLOAD_INSTRUCTIONS``.

* ``miml_scene`` (:class:`MimlScene`): ``images/``, ``labels.csv``, ``split.json``; 5 labels.
* ``mirflickr25k`` (:class:`Mirflickr25k`): ``mirflickr/im*.jpg`` and the concept files
  ``annotations/*.txt``; 24 labels.
* ``nus_wide`` (:class:`NusWide`): the image lists, ``Groundtruth/AllLabels`` and the
  ``Flickr/`` images; 81 labels.
* ``coco/2014`` and ``voc/2007``: tfds's own builders (tfds downloads them);
  :func:`coco_2014` (80 labels) and :func:`voc_2007` (20 labels) turn their objects into
  multi-hot labels.

Each example of the three builders here is ``{"image", "image/filename", "labels"
(Sequence(ClassLabel)), "multi_hot" (float32 (C,))}``. Prepare and read one directly::

    import tensorflow_datasets as tfds
    from retdm_keras.datasets import MimlScene
    builder = MimlScene(data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="~/data/miml_scene"))
    ds = builder.as_dataset(split="train")

or get RETDM batches ``({"images", "index"}, labels)``, the element structure of
``retdm_keras.data.image_dataset``, in one call with :func:`load` /
:func:`coco_2014` / :func:`voc_2007`. Folder-based sources that need no tfds preparation
(COCO instances JSON, YOLO label folders) are in ``retdm_keras.data.coco`` and
``retdm_keras.data.yolo``.
"""

from retdm_keras.datasets.builder import MultiLabelImageBuilder
from retdm_keras.datasets.miml_scene import MIML_SCENE_LABELS, MimlScene
from retdm_keras.datasets.mirflickr25k import MIRFLICKR25K_LABELS, Mirflickr25k, read_mirflickr25k
from retdm_keras.datasets.nus_wide import NUS_WIDE_LABELS, NusWide, read_nus_wide
from retdm_keras.datasets.pipelines import TfdsData, coco_2014, from_tfds, load, prepare, voc_2007

__all__ = [
    "MIML_SCENE_LABELS",
    "MIRFLICKR25K_LABELS",
    "NUS_WIDE_LABELS",
    "MimlScene",
    "Mirflickr25k",
    "MultiLabelImageBuilder",
    "NusWide",
    "TfdsData",
    "coco_2014",
    "from_tfds",
    "load",
    "prepare",
    "read_mirflickr25k",
    "read_nus_wide",
    "voc_2007",
]
