"""Input pipelines for RETDM: annotation files, augmentation, tf.data datasets.

* :mod:`~retdm_keras.data.labeled_files` -- :class:`LabeledFiles` (filenames + multi-hot
  labels) and the check that the files exist (no TensorFlow).
* :mod:`~retdm_keras.data.labels` -- read/validate annotation CSVs into
  :class:`LabeledFiles` (no TensorFlow).
* :mod:`~retdm_keras.data.splits` -- split files (split name -> filenames).
* :mod:`~retdm_keras.data.augment` -- the paper's multi-scale five-crop + flip
  training transform and the resize-only evaluation transform.
* :mod:`~retdm_keras.data.image_decode` -- one image file to uint8 RGB pixels (16-bit PNGs
  scaled, not truncated).
* :mod:`~retdm_keras.data.image_check` -- check every image file once before a pipeline
  is built (corrupt, truncated, unsupported, tiny, huge); error or skip-and-report.
* :mod:`~retdm_keras.data.folder_csv` -- image folder + CSV to a batched
  ``({"images", "index"}, labels)`` ``tf.data.Dataset``.
* :mod:`~retdm_keras.data.arff` -- MULAN/MEKA ARFF files into a :class:`FeatureSet`.
* :mod:`~retdm_keras.data.mulan` -- MULAN labels XML (which attributes are labels).
* :mod:`~retdm_keras.data.features` -- :class:`FeatureSet` and a
  ``({"features", "index"}, labels)`` dataset over feature arrays.
* :mod:`~retdm_keras.data.coco` -- COCO-format instances JSON to multi-hot labels.
* :mod:`~retdm_keras.data.yolo` -- YOLO label folders (class id first on each line).
* :mod:`~retdm_keras.data.voc` -- Pascal VOC objects to multi-hot, "difficult" ignorable.

In every dataset ``index`` is the sample's row in the split's label matrix, so
``y == labels[index]`` holds however the data is shuffled.
"""

from retdm_keras.data.arff import load_arff
from retdm_keras.data.augment import eval_transform, train_transform
from retdm_keras.data.coco import COCO_CLASSES, coco_multi_hot, read_coco_instances
from retdm_keras.data.features import FeatureSet, check_multi_hot, feature_dataset
from retdm_keras.data.folder_csv import from_folder, image_dataset
from retdm_keras.data.image_check import (
    BadImage,
    BadImageError,
    BadImageWarning,
    check_images,
    find_bad_images,
)
from retdm_keras.data.image_decode import decode_image_file
from retdm_keras.data.labeled_files import LabeledFiles, check_files_exist
from retdm_keras.data.labels import NoLabelsWarning, read_labels_csv
from retdm_keras.data.mulan import read_labels_xml
from retdm_keras.data.splits import load_split
from retdm_keras.data.voc import VOC_CLASSES, voc_multi_hot
from retdm_keras.data.yolo import read_class_names, read_yolo_labels, scan_yolo_labels

__all__ = [
    "BadImage",
    "BadImageError",
    "BadImageWarning",
    "check_images",
    "find_bad_images",
    "COCO_CLASSES",
    "VOC_CLASSES",
    "coco_multi_hot",
    "decode_image_file",
    "read_class_names",
    "read_coco_instances",
    "read_yolo_labels",
    "scan_yolo_labels",
    "voc_multi_hot",
    "FeatureSet",
    "LabeledFiles",
    "NoLabelsWarning",
    "check_files_exist",
    "check_multi_hot",
    "eval_transform",
    "feature_dataset",
    "from_folder",
    "image_dataset",
    "load_arff",
    "load_split",
    "read_labels_csv",
    "read_labels_xml",
    "train_transform",
]
