"""Input pipelines for RETDM: annotation files, augmentation, tf.data datasets.

* :mod:`~retdm_keras.data.labels` -- read/validate annotation CSVs and split
  files into :class:`LabeledFiles` (no TensorFlow).
* :mod:`~retdm_keras.data.augment` -- the paper's multi-scale five-crop + flip
  training transform and the resize-only evaluation transform.
* :mod:`~retdm_keras.data.folder_csv` -- image folder + CSV to a batched
  ``({"images", "index"}, labels)`` ``tf.data.Dataset``.
* :mod:`~retdm_keras.data.arff` -- MULAN/MEKA ARFF feature sets and a
  ``({"features", "index"}, labels)`` dataset.

In every dataset ``index`` is the sample's row in the split's label matrix, so
``y == labels[index]`` holds however the data is shuffled.
"""

from retdm_keras.data.arff import FeatureSet, feature_dataset, load_arff, read_labels_xml
from retdm_keras.data.augment import eval_transform, train_transform
from retdm_keras.data.folder_csv import from_folder, image_dataset
from retdm_keras.data.labels import LabeledFiles, check_files_exist, load_split, read_labels_csv

__all__ = [
    "FeatureSet",
    "LabeledFiles",
    "check_files_exist",
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
