"""A grid's runs side by side: the thesis' Tables 4.1-4.3 (ours beside its figures), held-out test.

The thesis' figures are ``ct3d.grids.GRIDS[grid]["thesis_figures"]``, as the thesis printed
them. Ours come from each scenario report's ``metrics.json`` (:func:`ct3d.report.read_reports`):
train and validation values of the best checkpoint (k-fold runs: the mean over the folds).

Example:
    >>> from ct3d.report.runs import read_reports
    >>> table = thesis_table("4.1", read_reports(None))
    >>> table.loc["all-slices-aug-10", ("train accuracy", "thesis")]
    np.float64(0.7125)
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd

from ct3d.grids import GRIDS
from ct3d.report.runs import GridReports
from ct3d.report.tables import ci_interval

__all__ = ["THESIS_TABLES", "ThesisColumn", "part_value", "report_links", "held_out_table",
           "thesis_table"]


class ThesisColumn(NamedTuple):
    """One column of a thesis table: our ``key`` of ``part`` beside the thesis' ``figure``.

    ``part``: ``train`` or ``val``; None for a run-level value (``time_per_epoch_s``).
    ``kind``: ``fraction`` (ours to 4 decimals), ``%`` (times 100, ours to 2 decimals) or
    ``s`` (seconds, ours to 2 decimals); the thesis' figures show as printed (``.4g``).
    """

    label: str
    part: str | None
    key: str
    figure: str
    kind: str


THESIS_TABLES: dict[str, tuple[ThesisColumn, ...]] = {
    "4.1": (ThesisColumn("train accuracy", "train", "accuracy", "train_accuracy", "fraction"),
            ThesisColumn("time per epoch (s)", None, "time_per_epoch_s", "time_per_epoch_s",
                         "s"),
            ThesisColumn("train loss", "train", "loss", "train_loss", "fraction"),
            ThesisColumn("train MSE", "train", "mse", "train_mse", "fraction")),
    "4.2": (ThesisColumn("val accuracy", "val", "accuracy", "val_accuracy", "fraction"),
            ThesisColumn("val loss", "val", "loss", "val_loss", "fraction"),
            ThesisColumn("val MSE", "val", "mse", "val_mse", "fraction")),
    "4.3": (ThesisColumn("val accuracy %", "val", "accuracy", "val_accuracy", "%"),
            ThesisColumn("precision %", "val", "precision", "precision", "%"),
            ThesisColumn("recall %", "val", "recall", "recall", "%"),
            ThesisColumn("F1 %", "val", "f1", "f1", "%")),
}
"""The thesis' Table 4.1 (training), 4.2 (validation) and 4.3 (performance on validation, %)."""


def part_value(metrics: Mapping[str, Any], part: str | None, key: str) -> float | None:
    """One metric of a run's ``part`` (k-fold: its mean over the folds); None if undefined.

    ``part`` None: a run-level value such as ``time_per_epoch_s`` (k-fold: the fold mean).

    Example:
        >>> folds = [{"parts": {"val": {"f1": 0.5}}}, {"parts": {"val": {"f1": 0.75}}}]
        >>> part_value({"folds": folds}, "val", "f1"), part_value({"folds": folds}, "val", "auc")
        (0.625, None)
    """
    if part is None:
        value = metrics.get(key)
        return value if value is not None else metrics.get("fold_mean_std", {}).get(
            key, [None])[0]
    if "parts" in metrics:
        return metrics["parts"].get(part, {}).get(key)
    values = [f["parts"][part][key] for f in metrics.get("folds", [])
              if f["parts"].get(part, {}).get(key) is not None]
    return sum(values) / len(values) if values else None


def _scaled(value: float | None, kind: str) -> float | None:
    return None if value is None else 100 * value if kind == "%" else value


def thesis_table(table: str, reports: GridReports) -> pd.DataFrame:
    """The thesis' Table ``table`` (``4.1``, ``4.2``, ``4.3``): one row per scenario.

    Columns are ``(label, "ours")`` and ``(label, "thesis")`` per :data:`THESIS_TABLES`
    column (only ``thesis`` when ``reports`` has no folder); percentages are already times
    100. ``attrs["formats"]`` holds each column's format for :func:`~ct3d.report.to_html`.

    Example:
        >>> from ct3d.report.runs import read_reports
        >>> table = thesis_table("4.3", read_reports(None))
        >>> round(float(table.loc["all-slices-aug-5", ("F1 %", "thesis")]), 2)
        66.67
    """
    figures = GRIDS[reports.grid].get("thesis_figures", {})
    sources = ("ours", "thesis") if reports.folder is not None else ("thesis",)
    data, formats = {}, {}
    for col in THESIS_TABLES[table]:
        if "ours" in sources:
            data[col.label, "ours"] = [
                _scaled(part_value(reports.metrics[n], col.part, col.key), col.kind)
                if n in reports.metrics else None for n in reports.names]
            formats[col.label, "ours"] = ".4f" if col.kind == "fraction" else ".2f"
        data[col.label, "thesis"] = [_scaled(figures.get(n, {}).get(col.figure), col.kind)
                                     for n in reports.names]
        formats[col.label, "thesis"] = ".4g"
    result = pd.DataFrame(data, index=pd.Index(reports.names, name="scenario"), dtype=float)
    result.attrs["formats"] = formats
    return result


def held_out_table(reports: GridReports) -> pd.DataFrame:
    """Each reported scenario's evaluated part (test, or out of fold) with 95% intervals.

    Example:
        >>> from ct3d.report.runs import GridReports
        >>> m = {"evaluated_on": "test", "n": 4, "accuracy": 0.75, "auc": 1.0,
        ...      "ci": {"accuracy": [0.5, 1.0], "auc": None}}
        >>> row = held_out_table(GridReports("thesis", None, {"a": m}, names=["a"])).loc["a"]
        >>> row["n"], row["accuracy 95% CI"], row["AUC 95% CI"], row["F1"]
        (4, (0.5, 1.0), None, None)
    """
    rows = {}
    for name in (n for n in reports.names if n in reports.metrics):
        m = reports.metrics[name]
        rows[name] = {
            "evaluated on": m["evaluated_on"], "n": m["n"], "accuracy": m.get("accuracy"),
            "accuracy 95% CI": ci_interval(m, "accuracy"), "precision": m.get("precision"),
            "recall": m.get("recall"), "specificity": m.get("specificity"), "F1": m.get("f1"),
            "AUC": m.get("auc"), "AUC 95% CI": ci_interval(m, "auc"),
        }
    return pd.DataFrame.from_dict(rows, orient="index", dtype=object).rename_axis("scenario")


def report_links(reports: GridReports) -> dict[str, str]:
    """HTML per scenario: its name linked to its ``report.html`` (and ``(failed)`` if it did).

    Example:
        >>> from ct3d.report.runs import GridReports
        >>> from pathlib import Path
        >>> report_links(GridReports("thesis", Path("r"), failed=["b"], names=["b"]))
        {'b': '<a href="b/report.html">b</a> (failed)'}
    """
    if reports.folder is None:
        return {}
    return {n: f'<a href="{html.escape(n)}/report.html">{html.escape(n)}</a>'
               + (" (failed)" if n in reports.failed else "") for n in reports.names}
