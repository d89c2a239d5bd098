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

__all__ = ["describe_evaluation", "format_table"]


def _cell(value: Any, col: str) -> str:
    """One right-aligned table cell: ``-`` for None, counts as ints, metrics to 4 decimals."""
    if value is None:
        return f"{'-':>12}"
    return f"{value:>12}" if col == "n" else f"{value:>12.4f}"


def _rows(by_part: dict[str, dict[str, Any]], cols: Sequence[str]) -> list[str]:
    """Header and one line per part of a table with columns ``n`` and ``cols``."""
    cols = ("n", *cols)
    lines = ["part   " + "".join(f"{c:>12}" for c in cols)]
    for part, m in by_part.items():
        lines.append(f"{part:<7}" + "".join(_cell(m[c], c) for c in cols))
    return lines


def _matrix_lines(part: str, m: dict[str, Any]) -> list[str]:
    """The confusion matrix of one part: one line if binary, a header plus k rows if not."""
    if "class_names" not in m:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        return [f"{part} confusion matrix (rows = true 0/1): [[{tn} {fp}] [{fn} {tp}]]"]
    names = m["class_names"]
    rows = zip(names, m["confusion_matrix"], strict=True)
    head = f"{part} confusion matrix (rows = true {'/'.join(names)}):"
    return [head, *(f"  {name:>12}: {row}" for name, row in rows)]


def format_table(by_part: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per part (train/val/test), one column per metric.

    Binary parts show :data:`~ct3d.evaluate.METRIC_KEYS`, multi-class parts (from
    :func:`~ct3d.evaluate.multiclass_metrics`) show :data:`~ct3d.evaluate.MULTICLASS_KEYS`;
    the confusion matrices follow.

    >>> from ct3d.evaluate import binary_metrics
    >>> print(format_table({"test": binary_metrics([0, 1], [0.2, 0.9])}).splitlines()[-1])
    test confusion matrix (rows = true 0/1): [[1 0] [0 1]]
    """
    binary = {k: m for k, m in by_part.items() if "class_names" not in m}
    multi = {k: m for k, m in by_part.items() if "class_names" in m}
    lines = (_rows(binary, METRIC_KEYS) if binary else []) + (
        _rows(multi, MULTICLASS_KEYS) if multi else [])
    for part, m in {**binary, **multi}.items():
        lines += _matrix_lines(part, m)
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
