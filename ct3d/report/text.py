"""Plain-text summaries of a run: the metrics table the CLI prints, what was evaluated, and
the paired comparison of two runs that ``ct3d compare`` prints.

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

__all__ = ["AUC_NOTE", "describe_evaluation", "format_comparison", "format_table", "verdict"]


AUC_NOTE = "auc: exact ROC-AUC of the predicted probabilities (the epoch log shows an estimate)"
"""The line under a binary table saying which AUC it shows."""


def _cell(value: Any, col: str) -> str:
    """One right-aligned table cell, 12 characters or the column name's length + 1: ``-`` for
    None, counts as ints, metrics to 4 decimals."""
    width = max(12, len(col) + 1)
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>{width}}" if col == "n" else f"{value:>{width}.4f}"


def _rows(by_part: dict[str, dict[str, Any]], cols: Sequence[str]) -> list[str]:
    """Header and one line per part of a table with columns ``n`` and ``cols``."""
    cols = ("n", *cols)
    width = max(7, *(len(part) + 1 for part in by_part))
    lines = [f"{'part':<{width}}" + "".join(f"{c:>{max(12, len(c) + 1)}}" for c in cols)]
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
    repeats = len(metrics.get("repeats") or [])
    mean = (f"; mean of {repeats} repeats (nested values such as the confusion matrix: "
            f"repeat 0)") if repeats > 1 else ""
    return (f"evaluated on: {metrics['evaluated_on']} (n = {metrics['n']}), "
            f"decision threshold {metrics.get('threshold', 0.5):.3f}, {models} model(s){mean}")


_PARTS = {"test": "held-out test scans", "out-of-fold": "scans predicted out of fold",
          "val": "validation scans (no test part)", "train": "training scans (no held-out part)"}


def verdict(metrics: Mapping[str, Any], synthetic: bool = False) -> str:
    """One line on what a run's evaluation says: AUC (binary) or accuracy (multi-class) with
    its 95% interval when there is one, on how many scans of which part, and whether the
    interval rules chance out (for accuracy: always answering the most common class);
    ``synthetic``: the scans were ct3d's synthetic cohort.

    Example:
        >>> m = {"evaluated_on": "test", "n": 40, "auc": 0.971, "ci": {"auc": [0.94, 0.993]}}
        >>> verdict(m)
        'AUC 0.97 [0.94–0.99] on 40 held-out test scans: better than chance.'
        >>> print(verdict({**m, "auc": 0.44, "ci": {"auc": [0.26, 0.62]}}, synthetic=True))
        AUC 0.44 [0.26–0.62] on 40 held-out test scans of synthetic data (not MosMedData):
        not distinguishable from chance.
    """
    binary = metrics.get("auc") is not None
    name, key = ("AUC", "auc") if binary else ("accuracy", "accuracy")
    value = metrics.get(key)
    interval = (metrics.get("ci") or {}).get(key)
    where = _PARTS.get(metrics["evaluated_on"], f"{metrics['evaluated_on']} scans")
    data = " of synthetic data (not MosMedData)" if synthetic else ""
    if value is None:
        return f"{name} undefined on {metrics['n']} {where}{data}."
    text = f"{name} {value:.2f}"
    if not interval:
        return f"{text} on {metrics['n']} {where}{data} (no interval: too few scans)."
    low, high = interval
    chance, against = 0.5, "chance"
    if not binary:  # accuracy: against always answering the most common class
        chance = max(sum(row) for row in metrics["confusion_matrix"]) / metrics["n"]
        against = f"always answering the most common class ({chance:.2f})"
    said = (f"better than {against}" if low > chance else f"worse than {against}"
            if high < chance else f"not distinguishable from {against}")
    return f"{text} [{low:.2f}–{high:.2f}] on {metrics['n']} {where}{data}: {said}."


def format_comparison(comparison: Mapping[str, Any]) -> str:
    """The paired comparison of two runs (:func:`ct3d.paired.compare_runs`) as plain text:
    who A and B are, then AUC and accuracy of each, B - A, its 95% interval and p-value.

    Example:
        >>> c = {"runs": {"a": {"scenario": "s", "folder": "base"},
        ...               "b": {"scenario": "s", "folder": "crop"}},
        ...      "n": 40, "repeats": 1, "n_boot": 2000, "auc_a": 0.71, "auc_b": 0.78,
        ...      "difference": 0.07, "ci": [0.01, 0.13], "p_value": 0.03,
        ...      "accuracy": {"a": 0.65, "b": 0.7, "difference": 0.05, "ci": [-0.05, 0.15],
        ...                   "p_value": 0.41}}
        >>> print(format_comparison(c))
        A: base (scenario s)
        B: crop (scenario s)
        paired on 40 scans, 1 repeat(s), 2000 bootstrap resamples of the scans
        metric           A         B     B - A  95% CI of B - A           p
        auc         0.7100    0.7800   +0.0700  [+0.0100, +0.1300]   0.0300
        accuracy    0.6500    0.7000   +0.0500  [-0.0500, +0.1500]   0.4100
    """
    runs = comparison["runs"]
    lines = [f"{side.upper()}: {runs[side]['folder']} (scenario {runs[side]['scenario']})"
             for side in ("a", "b")]
    lines.append(f"paired on {comparison['n']} scans, {comparison['repeats']} repeat(s), "
                 f"{comparison['n_boot']} bootstrap resamples of the scans")
    lines.append(f"{'metric':<10}{'A':>8}{'B':>10}{'B - A':>10}  {'95% CI of B - A':<20}"
                 f"{'p':>7}")
    acc = comparison["accuracy"]
    for name, a, b, d, (low, high), pv in (
        ("auc", comparison["auc_a"], comparison["auc_b"], comparison["difference"],
         comparison["ci"], comparison["p_value"]),
        ("accuracy", acc["a"], acc["b"], acc["difference"], acc["ci"], acc["p_value"]),
    ):
        interval = f"[{low:+.4f}, {high:+.4f}]"
        lines.append(f"{name:<10}{a:>8.4f}{b:>10.4f}{d:>+10.4f}  {interval:<20}{pv:>7.4f}")
    return "\n".join(lines)
