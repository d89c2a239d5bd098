"""Plain-text summaries of a run: the metrics table the CLI prints, and what was evaluated.

Example:
    >>> from ct3d.evaluate import binary_metrics
    >>> m = binary_metrics([0, 1], [0.2, 0.9])
    >>> describe_evaluation({**m, "evaluated_on": "test"})
    'evaluated on: test (n = 2), decision threshold 0.500, 1 model(s)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ct3d.evaluate import METRIC_KEYS, MULTICLASS_KEYS

__all__ = ["AUC_NOTE", "describe_evaluation", "format_table"]


AUC_NOTE = "auc: exact ROC-AUC of the predicted probabilities (the epoch log shows an estimate)"
"""The line under a binary table saying which AUC it shows."""


def _cell(value: Any, col: str) -> str:
    """One right-aligned table cell: ``-`` for None, counts as ints, metrics to 4 decimals."""
    if value is None:
        return f"{'-':>12}"
    return f"{value:>12}" if col == "n" else f"{value:>12.4f}"


def _rows(by_part: dict[str, dict[str, Any]], cols: Sequence[str]) -> list[str]:
    """Header and one line per part of a table with columns ``n`` and ``cols``."""
    cols = ("n", *cols)
    width = max(7, *(len(part) + 1 for part in by_part))
    lines = [f"{'part':<{width}}" + "".join(f"{c:>12}" for c in cols)]
    for part, m in by_part.items():
        lines.append(f"{part:<{width}}" + "".join(_cell(m[c], c) for c in cols))
    return lines


def _matrix_lines(part: str, matrix: Sequence[Sequence[int]], names: Sequence[str]) -> list[str]:
    """The confusion matrix of one part as a grid labelled with the class names."""
    width = max(8, *(len(n) + 2 for n in names))
    head = f"{part} confusion matrix (rows: true class, columns: predicted)"
    lines = [head, " " * (width + 2) + "".join(f"{n:>{width}}" for n in names)]
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"  {name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return lines


def format_table(by_part: dict[str, dict[str, Any]], classes: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per part (train/val/test), one column per metric.

    Binary parts show :data:`~ct3d.evaluate.METRIC_KEYS` (and a line saying which AUC it
    is), multi-class parts (from :func:`~ct3d.evaluate.multiclass_metrics`) show
    :data:`~ct3d.evaluate.MULTICLASS_KEYS`; then each part's confusion matrix with the class
    names (``classes``; a multi-class part's own names; else ``0``, ``1``, ...). A metric
    that is undefined (None) shows as ``-``.

    >>> from ct3d.evaluate import binary_metrics
    >>> print("\\n".join(format_table({"test": binary_metrics([0, 1], [0.2, 0.9])},
    ...                               ["normal", "abnormal"]).splitlines()[-3:]))
                    normal  abnormal
      normal             1         0
      abnormal           0         1
    """
    binary = {k: m for k, m in by_part.items() if "class_names" not in m}
    multi = {k: m for k, m in by_part.items() if "class_names" in m}
    lines = (_rows(binary, METRIC_KEYS) + [AUC_NOTE] if binary else []) + (
        _rows(multi, MULTICLASS_KEYS) if multi else [])
    for part, m in {**binary, **multi}.items():
        matrix = m["confusion_matrix"]
        names = m.get("class_names") or classes or [str(i) for i in range(len(matrix))]
        lines += _matrix_lines(part, matrix, names)
    return "\n".join(lines)


def describe_evaluation(metrics: Mapping[str, Any]) -> str:
    """One line: the evaluated part and its size, the decision threshold, how many models.

    Example:
        >>> describe_evaluation({"evaluated_on": "out-of-fold", "n": 60, "folds": [{}] * 5})
        'evaluated on: out-of-fold (n = 60), decision threshold 0.500, 5 model(s)'
    """
    models = len(metrics.get("folds", [])) or 1
    return (f"evaluated on: {metrics['evaluated_on']} (n = {metrics['n']}), "
            f"decision threshold {metrics.get('threshold', 0.5):.3f}, {models} model(s)")
