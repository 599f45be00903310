"""Label semantics: word-vector files and an optional sentence-embedding adapter."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def normalize_rows(vectors, what: str = "vectors", dtype=np.float32) -> np.ndarray:
    """Validated ``(L, d)`` copy of ``vectors`` with unit L2-norm rows (float32 by default)."""
    w = np.asarray(vectors, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array (L, d), got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{what} must be finite")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(f"{what} row {int(zero[0])} is all zeros")
    return (w / norms).astype(dtype)


@dataclass(frozen=True)
class LabelVectors:
    """Names and unit word vectors of ``L`` labels, with an optional zero-shot split.

    Attributes:
        names: the ``L`` label names.
        vectors: ``(L, d)`` float32, unit rows.
        seen, unseen: class indices of the zero-shot split (``None`` if the file has none).
    """

    names: list[str]
    vectors: np.ndarray
    seen: np.ndarray | None = field(default=None)
    unseen: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        if len(self.names) != self.vectors.shape[0]:
            raise ValueError(
                f"{len(self.names)} names for {self.vectors.shape[0]} vectors: they must match"
            )
        for what in ("seen", "unseen"):
            part = getattr(self, what)
            if part is not None and (part.min(initial=0) < 0 or part.max(initial=0) >= len(self)):
                raise ValueError(f"{what} indices must lie in [0, {len(self)})")
        if self.seen is not None and self.unseen is not None:
            if np.intersect1d(self.seen, self.unseen).size:
                raise ValueError("seen and unseen classes overlap")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        """The word-vector dimension ``d``."""
        return int(self.vectors.shape[1])

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelVectors:
        """The labels at ``indices`` (in that order), without a split."""
        idx = np.asarray(indices, dtype=np.int64)
        return LabelVectors([self.names[i] for i in idx], self.vectors[idx])


def _read_names(names, vectors_path: Path) -> list[str]:
    if names is None:
        names = vectors_path.with_suffix(".txt")
        if not names.exists():
            raise ValueError(
                f"no label names for {vectors_path}: pass names= (a list or a text file with one "
                f"name a line) or put them in {names}"
            )
    if isinstance(names, str | os.PathLike):
        lines = Path(names).read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    return [str(n) for n in names]


def _split_indices(split, key: str) -> np.ndarray | None:
    if split is None or key not in split:
        return None
    return np.asarray(split[key], dtype=np.int64).reshape(-1)


def load_label_vectors(
    path: str | os.PathLike[str], names: str | os.PathLike[str] | Sequence[str] | None = None
) -> LabelVectors:
    """Read label word vectors and L2-normalise them.

    Formats:

    * ``.json``: ``{"names": [...], "vectors": [[...], ...]}`` and optionally
      ``"zero_shot_split": {"seen": [...], "unseen": [...]}`` (class indices), as in
      ``coco80_glove300.json``.
    * ``.npy``: an ``(L, d)`` array; ``names`` is a list, or a text file with one name a line
      (default: the same path with ``.txt``).

    Raises:
        ValueError: on a malformed file, names that do not match the vectors, zero or
            non-finite vectors, or a split with out-of-range or overlapping indices.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        missing = {"names", "vectors"} - set(data)
        if missing:
            raise ValueError(f"{path} lacks the keys {sorted(missing)}")
        split = data.get("zero_shot_split")
        if names is not None:
            raise ValueError("names= is only for .npy files: a JSON file carries its names")
        return LabelVectors(
            [str(n) for n in data["names"]],
            normalize_rows(data["vectors"], f"vectors of {path}"),
            _split_indices(split, "seen"),
            _split_indices(split, "unseen"),
        )
    if path.suffix.lower() == ".npy":
        vectors = normalize_rows(np.load(path, allow_pickle=False), f"vectors of {path}")
        return LabelVectors(_read_names(names, path), vectors)
    raise ValueError(f"unsupported label-vector file {path}: use .json or .npy")


def embed_label_names(
    names: Sequence[str], model_name: str = DEFAULT_TEXT_MODEL, batch_size: int = 64
) -> np.ndarray:
    """Unit text embeddings ``(L, d)`` of label names from a ``sentence_transformers`` model.

    An alternative to fixed word vectors (phrases such as "hair drier" get one vector). The
    package is imported only here; the model is fetched by ``sentence_transformers`` (network
    or its cache) the first time.

    Raises:
        ImportError: if ``sentence-transformers`` is not installed.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ImportError(
            "embed_label_names needs the 'sentence-transformers' package "
            "(pip install sentence-transformers); or load fixed word vectors with "
            "load_label_vectors"
        ) from err
    encoder = SentenceTransformer(model_name)
    vectors = encoder.encode(list(names), batch_size=batch_size, convert_to_numpy=True)
    return normalize_rows(vectors, "text embeddings")
