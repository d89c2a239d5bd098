"""A grid's runs side by side: the thesis' Tables 4.1-4.3 (ours beside its figures), held-out
test, and the grid's paired comparisons.

The thesis' figures are ``ct3d.grids.GRIDS[grid]["thesis_figures"]``, as the thesis printed
them. Ours come from each scenario report's ``metrics.json`` (:func:`ct3d.report.read_reports`):
train and validation values of the best checkpoint (k-fold runs: the mean over the folds).
The paired comparisons (``GRIDS[grid]["paired"]``: scenario -> its reference) come from the
two reports' ``predictions.csv`` (:func:`grid_comparisons`).

Example:
    >>> from ct3d.report.runs import read_reports
    >>> table = thesis_table("4.1", read_reports(None))
    >>> table.loc["all-slices-aug-10", ("train accuracy", "thesis")]
    np.float64(0.7125)
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import pandas as pd

from ct3d.grids import GRIDS
from ct3d.paired import ComparisonError, compare_runs
from ct3d.report.runs import GridReports
from ct3d.report.smoke import quick_name, run_size
from ct3d.report.tables import ci_interval, to_html

__all__ = ["THESIS_TABLES", "THESIS_TITLES", "ThesisColumn", "cost_table", "grid_comparisons",
           "held_out_table", "part_value", "report_links", "thesis_table", "thesis_tables_html"]


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

THESIS_TITLES = {"4.1": "Training (Table 4.1)", "4.2": "Validation (Table 4.2)",
                 "4.3": "Performance on validation, % (Table 4.3): accuracy, precision, recall "
                        "and F1 on the validation part, as the thesis labels them"}
"""The heading of each thesis table in the grid index."""


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


def cost_table(reports: GridReports) -> pd.DataFrame:
    """What each reported scenario's model costs (``metrics["cost"]``, see
    :func:`ct3d.engine.cost.model_cost`), beside its AUC: parameters (millions), GFLOPs of
    one scan's forward pass, seconds per training epoch on the machine that made the report
    (k-fold: the mean over the folds) and the peak memory of the run's process
    (``peak_rss_gib``). Reports written before ct3d recorded costs have no row.

    Example:
        >>> from ct3d.report.runs import GridReports
        >>> m = {"auc": 0.9, "time_per_epoch_s": 8.0, "scenario": "a", "peak_rss_gib": 1.2,
        ...      "cost": {"parameters": 1_500_000, "gflops_per_scan": 2.5,
        ...               "input_shape": [64, 64, 48, 1]}}
        >>> row = cost_table(GridReports("dims", None, {"a": m}, names=["a"])).loc["a"]
        >>> row["parameters (M)"], row["GFLOPs per scan"], row["s per epoch"]
        (1.5, 2.5, 8.0)
    """
    rows = {}
    for name in (n for n in reports.names if "cost" in reports.metrics.get(n, {})):
        m = reports.metrics[name]
        cost = m["cost"]
        rows[name] = {"AUC": m.get("auc"), "parameters (M)": cost["parameters"] / 1e6,
                      "GFLOPs per scan": cost["gflops_per_scan"],
                      "s per epoch": part_value(m, None, "time_per_epoch_s"),
                      "peak memory (GiB)": m.get("peak_rss_gib"),
                      "input": " × ".join(str(d) for d in cost["input_shape"][:3])}
    table = pd.DataFrame.from_dict(rows, orient="index", dtype=object).rename_axis("scenario")
    table.attrs["formats"] = {"AUC": ".3f", "parameters (M)": ".2f", "GFLOPs per scan": ".3g",
                              "s per epoch": ".1f", "peak memory (GiB)": ".2f"}
    return table


def report_links(reports: GridReports, quick: bool = False) -> dict[str, str]:
    """HTML per scenario: its name linked to its ``report.html`` (and ``(failed)`` if it did).

    ``quick``: name each scenario with the epochs it really ran (:func:`quick_name`).

    Example:
        >>> from ct3d.report.runs import GridReports
        >>> from pathlib import Path
        >>> report_links(GridReports("thesis", Path("r"), failed=["b"], names=["b"]))
        {'b': '<a href="b/report.html">b</a> (failed)'}
        >>> m = {"n": 4, "epochs_run": 2}
        >>> report_links(GridReports("thesis", Path("r"), {"a-25": m}, names=["a-25"]), True)
        {'a-25': '<a href="a-25/report.html">a-25 (quick: 2 epochs)</a>'}
    """
    if reports.folder is None:
        return {}

    def shown(name: str) -> str:
        if not quick:
            return name
        return quick_name(name, run_size(reports.metrics[name])[1] if name in reports.metrics
                          else [])

    return {n: f'<a href="{html.escape(n)}/report.html">{html.escape(shown(n))}</a>'
               + (" (failed)" if n in reports.failed else "") for n in reports.names}


def thesis_tables_html(reports: GridReports, index_html: Mapping[str, str] | None = None) -> str:
    """The thesis' Tables 4.1-4.3 (:func:`thesis_table`) as HTML, each under its heading
    (:data:`THESIS_TITLES`); for a grid without thesis figures, a one-line note instead.

    ``index_html``: HTML to show instead of scenario names (:func:`report_links`).

    Example:
        >>> from ct3d.report.runs import read_reports
        >>> thesis_tables_html(read_reports(None, "ct3d"))[:48]
        '<p>Grid ct3d has no figures of the thesis to set'
        >>> thesis_tables_html(read_reports(None, "thesis"))[:29]
        '<h3>Training (Table 4.1)</h3>'
    """
    if not GRIDS[reports.grid].get("thesis_figures"):
        return (f"<p>Grid {html.escape(reports.grid)} has no figures of the thesis to set "
                f"beside (its Tables 4.1–4.3 are those of the thesis grid).</p>")
    return "".join(f"<h3>{html.escape(THESIS_TITLES[t])}</h3>"
                   + (to_html(thesis_table(t, reports), index_html=index_html)
                      or "<p>No scenario to show.</p>") for t in THESIS_TABLES)


def _skipped(reference: str, scenario: str, reason: str) -> dict[str, Any]:
    """A comparison that could not be made: who A and B are, and why not."""
    return {"runs": {side: {"scenario": name, "folder": name}
                     for side, name in (("a", reference), ("b", scenario))},
            "skipped": reason}


def grid_comparisons(reports: GridReports, n_boot: int = 2000,
                     seed: int = 0) -> list[dict[str, Any]]:
    """The paired comparisons of ``GRIDS[grid]["paired"]`` (scenario B -> reference A), in
    that order: :func:`ct3d.compare_runs` of the two report folders (each keeps its run's
    ``metrics.json`` and ``predictions.csv``), with ``difference`` = AUC of B - AUC of A.

    A pair that cannot be compared is kept, as ``runs`` (A and B by name) and ``skipped``
    (the reason: a report missing or failed, or runs not on the same scans and folds, e.g.
    with other numbers of repeats), so :func:`~ct3d.report.paired_table` lists it. A grid without
    ``paired``, or ``reports`` without a folder (the thesis' figures only), gives ``[]``.

    Example:
        >>> import tempfile
        >>> from ct3d.report.runs import read_reports
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     grid_comparisons(read_reports(empty, "ct3d"))[0]["skipped"]
        'no report of ct23-thesis-recipe; no report of ct23-ct3d-recipe'
    """
    if reports.folder is None:
        return []
    comparisons = []
    for scenario, reference in GRIDS[reports.grid].get("paired", {}).items():
        missing = [n for n in (reference, scenario) if n not in reports.metrics]
        if missing:
            reasons = [f"the report of {n} failed" if n in reports.failed
                       else f"no report of {n}" for n in missing]
            comparisons.append(_skipped(reference, scenario, "; ".join(reasons)))
            continue
        try:
            comparisons.append(compare_runs(reports.folder / reference,
                                            reports.folder / scenario, n_boot=n_boot, seed=seed))
        except ComparisonError as error:  # its message names the folders: keep their names
            reason = str(error).replace(f"{reports.folder}{os.sep}", "")
            comparisons.append(_skipped(reference, scenario, reason))
    return comparisons
