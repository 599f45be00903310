"""The plain-text metrics table: :func:`format_table` renders :func:`evaluate` results."""

from __future__ import annotations

import math
from collections.abc import Mapping

from retdm_keras.metric_names import METRIC_NAMES
from retdm_keras.metrics.evaluation import LOWER_IS_BETTER


def format_table(
    results: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    *,
    digits: int = 4,
    mark_best: bool = True,
) -> str:
    """Render metric results as a plain-text table, one row per metric.

    Args:
        results: either one result dict from :func:`evaluate` (printed as a
            single column named ``value``), or a mapping ``model name -> result
            dict``, e.g. ``format_table({"RETDM": r1, "BCE": r2})``, printed as
            one column per model.  Metrics missing from a model show ``-``.
        digits: decimals printed for each value.
        mark_best: with several models, append ``*`` to the best finite value
            of each metric (taking :data:`LOWER_IS_BETTER` into account).

    Each metric name is suffixed with ``↑`` (higher is better) or ``↓`` (lower
    is better); a legend line is appended at the bottom.
    """
    if not results:
        raise ValueError("results must not be empty")
    nested = [isinstance(v, Mapping) for v in results.values()]
    if all(nested):
        columns = {str(k): v for k, v in results.items()}
    elif not any(nested):
        columns = {"value": results}
        mark_best = False
    else:
        raise ValueError("results must be one result dict or a mapping name -> result dict")
    if len(columns) < 2:
        mark_best = False

    names = list(columns)
    header = ["metric", *names]
    rows: list[list[str]] = []
    for metric in METRIC_NAMES:
        lower = metric in LOWER_IS_BETTER
        vals = [columns[m].get(metric) for m in names]
        finite = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        best = (min(finite) if lower else max(finite)) if finite and mark_best else None
        cells = []
        for v in vals:
            if v is None:
                cells.append("- " if mark_best else "-")
                continue
            text = f"{float(v):.{digits}f}"
            if mark_best:  # keep the digits aligned whether or not a '*' follows
                text += "*" if best is not None and float(v) == best else " "
            cells.append(text)
        rows.append([f"{metric} {'↓' if lower else '↑'}", *cells])

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    sep = "  ".join("-" * w for w in widths)
    legend = "↑ higher is better, ↓ lower is better"
    if mark_best:
        legend += ", * best per metric"
    return "\n".join([line(header), sep, *(line(r) for r in rows), sep, legend])
