"""MULAN / MEKA multi-label ARFF files: a small parser into a :class:`FeatureSet`.

ARFF (Weka's format) is a header of attribute declarations followed by data::

    % a comment
    @relation MultiLabelData
    @attribute Att1 numeric
    @attribute 'my feature' real
    @attribute Beach {0,1}
    @attribute Sunset {0,1}
    @data
    0.64,0.12,1,0                 <- a dense row: one value per attribute
    {0 0.64, 2 1}                 <- a sparse row: "index value" pairs, others 0

A multi-label ARFF does not say by itself which attributes are labels:

* **MULAN** ships an XML file (``scene.xml``) naming the label attributes::

      <labels xmlns="http://mulan.sourceforge.net/labels">
        <label name="Beach"></label> ...

  Pass it as ``labels_xml``; nested (hierarchical) labels are all taken.
* otherwise pass ``num_labels``: the last ``num_labels`` attributes are labels
  (MULAN's usual layout);
* MEKA files encode it in the relation name, ``@relation 'scene: -C 6'``
  (``-C n``: the *first* n attributes; ``-C -n``: the last n), which is used
  when neither argument is given.

Every remaining attribute is a feature. Numeric attributes (``numeric``,
``real``, ``integer``) are parsed as floats; a nominal feature whose declared
values are all finite numbers keeps its number, any other nominal feature is
encoded as the position of its value in the declaration. Label values must be 0 or 1.
String/date attributes and missing values (``?``) are rejected. Every error is a
``ValueError`` naming the file and the 1-based line.

This parser needs neither scipy nor liac-arff. The labels XML is read by
:mod:`~retdm_keras.data.mulan`; :class:`FeatureSet` and :func:`feature_dataset` live in
:mod:`~retdm_keras.data.features` (all importable from here too).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from retdm_keras.data.features import FeatureSet, feature_dataset
from retdm_keras.data.mulan import read_labels_xml

__all__ = ["FeatureSet", "load_arff", "read_labels_xml", "feature_dataset"]

_NUMERIC_TYPES = {"numeric", "real", "integer"}
_MEKA_C = re.compile(r"-C\s+(-?\d+)")


@dataclass
class _Attribute:
    name: str
    kind: str  # "numeric" or "nominal"
    values: tuple[str, ...] = ()
    codes: dict[str, float] = field(default_factory=dict)  # nominal value -> float

    def __post_init__(self) -> None:
        if self.kind != "nominal":
            return
        try:  # all-numeric declarations ({0,1}, {1,2,3}) keep their numbers
            numbers = [float(v) for v in self.values]
            if not all(math.isfinite(n) for n in numbers):
                raise ValueError("nan/inf are not kept as numbers")
        except ValueError:  # otherwise ({a,b}, {nan,1}): position in the declaration
            numbers = [float(i) for i in range(len(self.values))]
        self.codes = dict(zip(self.values, numbers, strict=True))


def _unquote(token: str) -> str:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        inner = token[1:-1]
        return inner.replace("\\" + token[0], token[0]).replace("\\\\", "\\")
    return token


def _split_values(text: str, where: str) -> list[str]:
    """Split on commas outside quotes; quotes are removed from the tokens."""
    if "'" not in text and '"' not in text:
        return [t.strip() for t in text.split(",")]
    tokens: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            tokens.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if quote:
        raise ValueError(f"{where}: unterminated quote")
    tokens.append("".join(current).strip())
    return tokens


def _parse_attribute(rest: str, where: str) -> _Attribute:
    rest = rest.strip()
    if not rest:
        raise ValueError(f"{where}: @attribute without a name")
    if rest[0] in "'\"":
        end = rest.find(rest[0], 1)
        while end != -1 and rest[end - 1] == "\\":
            end = rest.find(rest[0], end + 1)
        if end == -1:
            raise ValueError(f"{where}: unterminated quoted attribute name")
        name, type_text = _unquote(rest[: end + 1]), rest[end + 1 :].strip()
    else:
        parts = rest.split(None, 1)
        name, type_text = parts[0], (parts[1].strip() if len(parts) > 1 else "")
    if not type_text:
        raise ValueError(f"{where}: attribute {name!r} has no type")
    if type_text.startswith("{"):
        if not type_text.endswith("}"):
            raise ValueError(f"{where}: unterminated nominal value list for {name!r}")
        values = tuple(v for v in _split_values(type_text[1:-1], where))
        return _Attribute(name, "nominal", values)
    kind = type_text.split()[0].lower()
    if kind in _NUMERIC_TYPES:
        return _Attribute(name, "numeric")
    raise ValueError(f"{where}: attribute {name!r} has unsupported type {type_text!r}")


def _to_float(token: str, where: str, name: str) -> float:
    if token == "?":
        raise ValueError(f"{where}: missing value '?' for {name!r} is not supported")
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{where}: non-numeric value {token!r} for {name!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: non-finite value {token!r} for {name!r}")
    return value


def load_arff(
    path: str | os.PathLike[str],
    *,
    labels_xml: str | os.PathLike[str] | None = None,
    num_labels: int | None = None,
) -> FeatureSet:
    """Parse a multi-label ARFF file into a :class:`FeatureSet`.

    Args:
        path: the ``.arff`` file (dense and/or sparse rows).
        labels_xml: MULAN labels XML; its names are the label attributes and
            set the label column order.
        num_labels: without XML, the last ``num_labels`` attributes are labels
            (with XML, it is checked against the XML's count).

    Raises:
        ValueError: malformed header or rows (file and line in the message),
            label attributes not found, no way to tell labels from features.
    """
    path = os.fspath(path)
    attributes: list[_Attribute] = []
    relation = ""
    rows: list[list[float]] = []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for line_no, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("%"):
                continue
            where = f"{path}, line {line_no}"
            if not in_data:
                keyword = line.split(None, 1)[0].lower()
                rest = line[len(keyword) :].strip()
                if keyword == "@relation":
                    relation = _unquote(rest)
                elif keyword == "@attribute":
                    attributes.append(_parse_attribute(rest, where))
                elif keyword == "@data":
                    if not attributes:
                        raise ValueError(f"{where}: @data before any @attribute")
                    in_data = True
                    label_cols, feature_cols = _label_columns(
                        path, attributes, relation, labels_xml, num_labels
                    )
                    is_label = np.zeros(len(attributes), bool)
                    is_label[label_cols] = True
                else:
                    raise ValueError(f"{where}: unexpected header line {line[:40]!r}")
                continue
            rows.append(_parse_row(line, where, attributes, is_label))
    if not in_data:
        raise ValueError(f"{path}: no @data section")
    table = np.asarray(rows, np.float32).reshape(len(rows), len(attributes))
    return FeatureSet(
        features=table[:, feature_cols],
        labels=table[:, label_cols],
        feature_names=[attributes[i].name for i in feature_cols],
        label_names=[attributes[i].name for i in label_cols],
    )


def _label_columns(
    path: str,
    attributes: list[_Attribute],
    relation: str,
    labels_xml: str | os.PathLike[str] | None,
    num_labels: int | None,
) -> tuple[list[int], list[int]]:
    n = len(attributes)
    if labels_xml is not None:
        names = read_labels_xml(labels_xml)
        position = {a.name: i for i, a in enumerate(attributes)}
        missing = [name for name in names if name not in position]
        if missing:
            raise ValueError(
                f"{path}: label(s) {missing[:5]} from {os.fspath(labels_xml)} are not attributes"
            )
        if num_labels is not None and num_labels != len(names):
            raise ValueError(f"num_labels={num_labels} but {labels_xml} names {len(names)}")
        label_cols = [position[name] for name in names]
    elif num_labels is not None:
        if not 0 < num_labels < n:
            raise ValueError(f"{path}: num_labels={num_labels} but the file has {n} attributes")
        label_cols = list(range(n - num_labels, n))
    else:
        match = _MEKA_C.search(relation)
        if match is None:
            raise ValueError(
                f"{path}: cannot tell labels from features; pass labels_xml or num_labels"
            )
        c = int(match.group(1))
        if c == 0 or abs(c) >= n:
            raise ValueError(f"{path}: MEKA relation '-C {c}' does not fit {n} attributes")
        label_cols = list(range(c)) if c > 0 else list(range(n + c, n))
    chosen = set(label_cols)
    for i in label_cols:
        attr = attributes[i]
        if attr.kind == "nominal" and not set(attr.values) <= {"0", "1"}:
            raise ValueError(f"{path}: label attribute {attr.name!r} is not binary {{0,1}}")
    feature_cols = [i for i in range(n) if i not in chosen]
    return label_cols, feature_cols


def _parse_row(
    line: str, where: str, attributes: list[_Attribute], is_label: np.ndarray
) -> list[float]:
    n = len(attributes)
    if line.startswith("{"):
        if not line.endswith("}"):
            raise ValueError(f"{where}: sparse row without closing '}}'")
        row = [0.0] * n
        body = line[1:-1].strip()
        seen: set[int] = set()
        for pair in _split_sparse(body, where):
            head, _, value = pair.partition(" ")
            try:
                index = int(head)
            except ValueError:
                raise ValueError(f"{where}: bad sparse entry {pair!r}") from None
            if not 0 <= index < n:
                raise ValueError(f"{where}: sparse index {index} out of range 0..{n - 1}")
            if index in seen:
                raise ValueError(f"{where}: sparse index {index} given twice")
            seen.add(index)
            row[index] = _value(_unquote(value.strip()), where, attributes[index], is_label[index])
        for index in range(n):
            attr = attributes[index]
            if index not in seen and attr.kind == "nominal" and attr.values:
                # An omitted sparse value is "0": for a nominal, its first value.
                row[index] = attr.codes[attr.values[0]]
        return row
    tokens = _split_values(line, where)
    if len(tokens) != n:
        raise ValueError(f"{where}: expected {n} values, got {len(tokens)}")
    return [
        _value(t, where, a, lab) for t, a, lab in zip(tokens, attributes, is_label, strict=True)
    ]


def _split_sparse(body: str, where: str) -> list[str]:
    if not body:
        return []
    return [t for t in (p.strip() for p in _split_values_keep_quotes(body, where)) if t]


def _split_values_keep_quotes(text: str, where: str) -> list[str]:
    # Sparse entries are "index value" with an optionally quoted value; split on
    # commas outside quotes but keep the quotes for _unquote.
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quote:
        raise ValueError(f"{where}: unterminated quote")
    parts.append("".join(current))
    return parts


def _value(token: str, where: str, attr: _Attribute, is_label: bool) -> float:
    if is_label:
        if token not in ("0", "1"):
            try:
                number = float(token)
            except ValueError:
                number = math.nan
            if number not in (0.0, 1.0):
                raise ValueError(f"{where}: label {attr.name!r} must be 0 or 1, got {token!r}")
            return number
        return float(token)
    if attr.kind == "numeric":
        return _to_float(token, where, attr.name)
    code = attr.codes.get(token)
    if code is None:
        if token == "?":
            raise ValueError(f"{where}: missing value '?' for {attr.name!r} is not supported")
        raise ValueError(f"{where}: value {token!r} not declared for nominal {attr.name!r}")
    return code
