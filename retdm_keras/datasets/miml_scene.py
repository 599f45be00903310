"""``miml_scene``: the MIML natural-scene images (Zhang & Zhou), 2,000 photos, 5 labels.

Manual folder (what ``$RETDM_DATA_DIR/miml_scene`` holds)::

    <manual_dir>/images/<n>.jpg
    <manual_dir>/labels.csv      Filenames,desert,mountains,sea,sunset,trees (one-hot rows)
    <manual_dir>/split.json      optional: {"train": [...], "val": [...], "test": [...]}

With ``split.json`` every split it names becomes a tfds split (the canonical one is
1,400 train / 200 val / 400 test); without it all rows form ``train``.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow_datasets as tfds

from retdm_keras.data.labels import load_split, read_labels_csv
from retdm_keras.datasets.builder import MultiLabelImageBuilder, SplitFiles

MIML_SCENE_LABELS: tuple[str, ...] = ("desert", "mountains", "sea", "sunset", "trees")


class MimlScene(MultiLabelImageBuilder):
    """tfds builder for the MIML natural-scene image set (read from ``manual_dir``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images, 5 scene labels, splits from split.json."}
    LABEL_NAMES = MIML_SCENE_LABELS
    DESCRIPTION = (
        "MIML natural scene images: 2,000 landscape photos with 5 labels (desert, mountains, "
        "sea, sunset, trees), 1.24 labels per image."
    )
    HOMEPAGE = "http://www.lamda.nju.edu.cn/data_MIMLimage.ashx"
    CITATION = (
        "@inproceedings{zhou2007miml, title={Multi-instance multi-label learning with "
        "application to scene classification}, author={Zhou, Zhi-Hua and Zhang, Min-Ling}, "
        "booktitle={NIPS}, year={2007}}"
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download the MIML "natural scene" image set from the LAMDA group
    (http://www.lamda.nju.edu.cn/data_MIMLimage.ashx) and lay it out as
      <manual_dir>/images/1.jpg ... 2000.jpg
      <manual_dir>/labels.csv   (Filenames,desert,mountains,sea,sunset,trees; 0/1 cells)
      <manual_dir>/split.json   (optional: {"train": [...], "val": [...], "test": [...]})
    then pass download_config=tfds.download.DownloadConfig(manual_dir=<manual_dir>).
    """

    def _read_manual(self, manual_dir: Path) -> SplitFiles:
        files = read_labels_csv(manual_dir / "labels.csv", label_names=MIML_SCENE_LABELS)
        images = manual_dir / "images"
        split_json = manual_dir / "split.json"
        if not split_json.is_file():
            return {"train": (images, files)}
        return {name: (images, files.subset(rows)) for name, rows in load_split(split_json).items()}
