"""MULAN's labels XML: the file that names which ARFF attributes are the labels.

::

    <labels xmlns="http://mulan.sourceforge.net/labels">
      <label name="Beach"></label> ...

Nested (hierarchical) labels are all taken, in document order.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

__all__ = ["read_labels_xml"]


def read_labels_xml(path: str | os.PathLike[str]) -> list[str]:
    """Label names from a MULAN labels XML file, in document order."""
    path = os.fspath(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: invalid XML ({err})") from err
    names = [
        el.attrib["name"]
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "label" and "name" in el.attrib
    ]
    if not names:
        raise ValueError(f"{path}: no <label name=...> elements")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: repeated label names")
    return names
