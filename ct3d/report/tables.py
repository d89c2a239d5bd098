"""Tables of one run as pandas DataFrames, and the report's HTML for any DataFrame.

Cells hold numbers (None or NaN where a value is undefined) and, in the 95% CI columns,
``(low, high)`` intervals; :func:`to_html` formats them (metrics to 4 decimals, counts as
integers, intervals as ``[low, high]``, a dash for undefined) into a plain HTML table.

Example:
    >>> table = confusion_table([[3, 1], [0, 4]], ["normal", "abnormal"], normalize=True)
    >>> table.loc["normal", "abnormal"]
    np.float64(0.25)
    >>> "<td>0.2500</td>" in to_html(table)
    True
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ct3d.evaluate import METRIC_KEYS, MULTICLASS_KEYS

__all__ = ["PARTS", "ci_interval", "confusion_matrices", "confusion_table", "fold_spread_table",
           "format_cell", "metrics_table", "paired_table", "row_normalized", "split_counts",
           "to_html"]

PARTS = ("train", "val", "test")
"""The parts of a split, in the order tables list them."""

_CI_NAMES = {"recall": "sensitivity"}
"""Metrics whose bootstrap interval is stored under another name."""


def format_cell(value: Any, spec: str | None = None) -> str:
    """One cell as HTML text: a dash if undefined, ints as is, floats and intervals by ``spec``.

    ``spec``: a format spec for floats (default ``.4f``); strings are HTML-escaped.

    Example:
        >>> format_cell(0.5), format_cell(12), format_cell((0.25, 1.0)), format_cell(None)
        ('0.5000', '12', '[0.2500, 1.0000]', '–')
        >>> format_cell(37.6, ".4g"), format_cell(float("nan")), format_cell("a<b")
        ('37.6', '–', 'a&lt;b')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_cell(v, spec) for v in value) + "]"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return format(value, spec or ".4f")


def _escaped(label: Any) -> Any:
    return html.escape(label) if isinstance(label, str) else label


def to_html(
    table: pd.DataFrame,
    formats: Mapping[Any, str] | None = None,
    index_html: Mapping[str, str] | None = None,
) -> str:
    """The report's HTML table of ``table``: one ``<td>`` per cell as :func:`format_cell` gives.

    ``formats``: a float format spec per column label (on top of ``table.attrs["formats"]``;
    others: ``.4f``). ``index_html``: HTML to show instead of some row labels (e.g. a link).
    The index name goes into the top-left corner. An empty table gives ``""``.

    Example:
        >>> t = pd.DataFrame({"auc": [0.91, None], "s": [37.6, 2.0]}, index=["a", "b"])
        >>> html = to_html(t, formats={"s": ".4g"}, index_html={"a": '<a href="a/">a</a>'})
        >>> "<td>0.9100</td>" in html, "<td>–</td>" in html, "<td>37.6</td>" in html
        (True, True, True)
        >>> '<th><a href="a/">a</a></th>' in html, to_html(t.iloc[:0])
        (True, '')
    """
    if table.empty:
        return ""
    specs = {**table.attrs.get("formats", {}), **(formats or {})}
    shown = pd.DataFrame(
        [[format_cell(v, specs.get(c)) for c, v in zip(table.columns, row, strict=True)]
         for row in table.itertuples(index=False)],
        index=[(index_html or {}).get(i, _escaped(i)) for i in table.index],
        columns=table.columns,
    ).rename(columns=_escaped)
    corner = " / ".join(str(n) for n in (table.index.name, table.columns.names[-1]) if n)
    shown.columns.names = [*[None] * (shown.columns.nlevels - 1), corner or None]
    return shown.to_html(escape=False)


def split_counts(split: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Usable scans per class in each part of ``split.csv``, their total, and the skipped ones.

    One row per part (k-fold: per fold and part, e.g. ``fold0 train``); ``skipped`` counts
    the part's scans that failed to preprocess (left out of training and evaluation).

    Example:
        >>> split = pd.DataFrame({"class": ["a", "b", "b"], "part": ["train", "train", "test"],
        ...                       "skipped": ["", "", "unreadable"]})
        >>> split_counts(split, ["a", "b"]).loc["train"].tolist()
        [1, 1, 2, 0]
    """
    used = split["skipped"] == ""
    columns = [c for c in split.columns if c == "part" or (c[:4] == "fold" and c[4:].isdigit())]
    rows = {}
    for column in columns:
        for part in PARTS:
            here = split[column] == part
            counts = [int((here & used & (split["class"] == c)).sum()) for c in classes]
            label = part if column == "part" else f"{column} {part}"
            rows[label] = [*counts, sum(counts), int((here & ~used).sum())]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[*classes, "total", "skipped"]
                                  ).rename_axis("part")


def _metric_keys(metrics: Mapping[str, Any]) -> tuple[str, ...]:
    return MULTICLASS_KEYS if "class_names" in metrics else METRIC_KEYS


def ci_interval(metrics: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """The bootstrap 95% interval of metric ``key`` (``recall``: the sensitivity's), or None.

    Example:
        >>> ci_interval({"ci": {"sensitivity": [0.5, 1.0], "auc": None}}, "recall")
        (0.5, 1.0)
    """
    bounds = (metrics.get("ci") or {}).get(_CI_NAMES.get(key, key))
    return (bounds[0], bounds[1]) if bounds else None


def _pooled_label(metrics: Mapping[str, Any]) -> str:
    """``out of fold``, or ``out of fold (mean of R repeats)`` for a repeated k-fold run."""
    repeats = len(metrics.get("repeats") or [])
    return f"out of fold (mean of {repeats} repeats)" if repeats > 1 else "out of fold"


def metrics_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """``n`` and the metrics (rows) of each part, with the evaluated part's 95% intervals.

    Columns: every part of a holdout run; for a k-fold run each fold's evaluated part and
    the pooled ``out of fold`` metrics (repeated k-fold: ``out of fold (mean of R
    repeats)``). The last column, ``95% CI (<evaluated part>)``, holds the bootstrap
    intervals (``recall``'s is the sensitivity's).

    Example:
        >>> from ct3d.evaluate import evaluate_predictions
        >>> test = evaluate_predictions([0, 0, 1, 1], [0.2, 0.6, 0.7, 0.9], n_boot=20)
        >>> table = metrics_table({**test, "evaluated_on": "test", "parts": {"test": test}})
        >>> table.loc[["n", "accuracy"], "test"].tolist(), table.columns[-1]
        ([4, 0.75], '95% CI (test)')
    """
    folds = metrics.get("folds", [])
    columns = ({f"fold {i} {f['evaluated_on']}": f for i, f in enumerate(folds)}
               | {_pooled_label(metrics): metrics}) if folds else metrics["parts"]
    keys = _metric_keys(metrics)
    table = pd.DataFrame({name: [m.get(k) for k in ("n", *keys)] for name, m in columns.items()},
                         index=pd.Index(["n", *keys], name="metric"), dtype=object)
    table[f"95% CI ({metrics['evaluated_on']})"] = [None, *(ci_interval(metrics, k) for k in keys)]
    return table


def fold_spread_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Mean and sample sd over the folds of each metric (k-fold runs; empty for holdout).

    Example:
        >>> spread = {"accuracy": [0.7, 0.1], "n": [10.0, 0.0]}
        >>> fold_spread_table({"fold_mean_std": spread}).loc["accuracy"].tolist()
        [0.7, 0.1]
    """
    spread = metrics.get("fold_mean_std", {})
    keys = [k for k in _metric_keys(metrics) if k in spread]
    return pd.DataFrame([list(spread[k]) for k in keys], index=pd.Index(keys, name="metric"),
                        columns=["fold mean", "fold sd"], dtype=float)


def row_normalized(matrix: Sequence[Sequence[int]]) -> np.ndarray:
    """Each row divided by its total (rows = true class); an empty row stays 0.

    Example:
        >>> row_normalized([[3, 1], [0, 0]]).tolist()
        [[0.75, 0.25], [0.0, 0.0]]
    """
    counts = np.asarray(matrix, float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_table(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], normalize: bool = False
) -> pd.DataFrame:
    """A confusion matrix with its classes: rows the true class, columns the predicted one.

    ``normalize``: each row as shares of its total (:func:`row_normalized`) instead of counts.

    Example:
        >>> confusion_table([[3, 1], [0, 4]], ["normal", "abnormal"]).loc["normal"].tolist()
        [3, 1]
    """
    values = row_normalized(matrix) if normalize else np.asarray(matrix, int)
    names = [str(c) for c in class_names]
    return pd.DataFrame(values, index=pd.Index(names, name="true"),
                        columns=pd.Index(names, name="predicted"))


def confusion_matrices(metrics: Mapping[str, Any]) -> dict[str, list[list[int]]]:
    """The confusion matrices a report shows, by title: the training part and the evaluated one.

    k-fold runs: ``train (summed over folds)`` and ``test (out of fold)`` (repeated k-fold:
    ``test (out of fold, repeat 0)``); holdout runs: ``train`` (when the metrics have it) and
    the evaluated part.

    Example:
        >>> m = {"evaluated_on": "test", "confusion_matrix": [[2, 0], [1, 1]],
        ...      "parts": {"train": {"confusion_matrix": [[5, 1], [0, 6]]}}}
        >>> confusion_matrices(m)
        {'train': [[5, 1], [0, 6]], 'test': [[2, 0], [1, 1]]}
    """
    folds = metrics.get("folds")
    if folds:
        train = np.sum([f["parts"]["train"]["confusion_matrix"] for f in folds], axis=0)
        test = "confusion_matrix" in metrics.get("from_repeat_0", [])
        return {"train (summed over folds)": train.tolist(),
                f"test (out of fold{', repeat 0' if test else ''})": metrics["confusion_matrix"]}
    shown = {str(metrics.get("evaluated_on", "evaluated")): metrics["confusion_matrix"]}
    train = metrics.get("parts", {}).get("train")
    return {"train": train["confusion_matrix"], **shown} if train else shown


def paired_table(comparisons: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Paired AUC comparisons (from :func:`ct3d.paired.compare_runs`), one row each.

    Rows ``B vs A`` by run folder name; columns ``AUC A``, ``AUC B``, ``ΔAUC`` (B - A),
    ``95% CI`` of ΔAUC (a ``(low, high)`` interval) and ``p`` (two-sided, paired bootstrap).
    A comparison that was skipped (``skipped``: the reason, from
    :func:`~ct3d.report.grid_comparisons`) has no numbers; the table then ends with a
    ``skipped`` column holding the reasons.

    Example:
        >>> c = {"runs": {"a": {"folder": "base"}, "b": {"folder": "crop"}}, "auc_a": 0.71,
        ...      "auc_b": 0.78, "difference": 0.07, "ci": [0.01, 0.13], "p_value": 0.03}
        >>> paired_table([c]).loc["crop vs base"].tolist()
        [0.71, 0.78, 0.07, (0.01, 0.13), 0.03]
        >>> gone = {"runs": {"a": {"folder": "base"}, "b": {"folder": "flip"}},
        ...         "skipped": "no report of flip"}
        >>> paired_table([c, gone]).loc["flip vs base"].tolist()
        [None, None, None, None, None, 'no report of flip']
    """
    names = [f"{c['runs']['b']['folder']} vs {c['runs']['a']['folder']}" for c in comparisons]
    skipped = any("skipped" in c for c in comparisons)
    rows = [[None] * 5 if "skipped" in c else
            [c["auc_a"], c["auc_b"], c["difference"], tuple(c["ci"]), c["p_value"]]
            for c in comparisons]
    return pd.DataFrame(
        [[*row, c.get("skipped")] if skipped else row
         for row, c in zip(rows, comparisons, strict=True)],
        index=pd.Index(names, name="comparison"),
        columns=["AUC A", "AUC B", "ΔAUC", "95% CI", "p", *(["skipped"] if skipped else [])],
        dtype=object)
