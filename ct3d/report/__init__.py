"""Reports: papermill runs of the report notebooks, and the tables and figures they show.

The notebooks (``notebooks/scenario.ipynb``, ``compare.ipynb``) and the widgets only call
these functions; each returns plain data, a pandas DataFrame, HTML text or a Matplotlib
``Figure``, so every table and figure is unit-tested without a notebook or a training run.

- ``execute``: :func:`run_grid` executes ``scenario.ipynb`` per scenario of a grid and
  ``compare.ipynb`` over them (the engine of ``ct3d report``), :func:`export_html`;
- ``runs``: :func:`read_run` reads a run folder (metrics, histories, split, predictions),
  :func:`read_reports` a grid's report folders, and picks the scans to show;
- ``tables``: DataFrames of one run (split counts, metrics with 95% intervals, fold spread,
  confusion matrices), :func:`paired_table` of run comparisons, and :func:`to_html`, the
  report's HTML for any of them;
- ``compare``: the grid beside the thesis' Tables 4.1-4.3, the held-out test table, and
  :func:`grid_comparisons`, the grid's paired comparisons from its report folders;
- ``text``: :func:`format_table`, the plain-text metrics table the CLI prints,
  :func:`verdict`, the one line that opens a scenario's page, and
  :func:`format_comparison`, the paired comparison ``ct3d compare`` prints;
- ``figures``: training curves, time per epoch, confusion matrices, ROC, calibration; and
  of a grid: AUC per scenario (:func:`forest_figure`), ROC curves overlaid, paired
  differences;
- ``smoke``: each page's heading, and the banner of a ``--quick`` (smoke test) report;
- ``images``: sample scan slices, Grad-CAM heat maps overlaid on their hottest slice.

Only ``execute`` needs papermill; nothing here imports TensorFlow or ipywidgets. The names
below are imported on first use, so ``from ct3d.report.text import format_table`` (the CLI's
table) needs neither papermill nor Matplotlib.

Example:
    >>> from ct3d.evaluate import evaluate_predictions
    >>> from ct3d.report import metrics_table, roc_figure
    >>> test = evaluate_predictions([0, 0, 1, 1], [0.2, 0.6, 0.7, 0.9], n_boot=20)
    >>> metrics = {**test, "evaluated_on": "test", "parts": {"test": test}}
    >>> metrics_table(metrics).loc["accuracy", "test"]
    0.75
    >>> roc_figure(metrics).axes[0].get_legend().get_texts()[0].get_text()[:10]
    'AUC 1.0000'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "THESIS_TABLES": "compare",
    "cost_table": "compare",
    "grid_comparisons": "compare",
    "held_out_table": "compare",
    "report_links": "compare",
    "thesis_table": "compare",
    "thesis_tables_html": "compare",
    "ReportError": "execute",
    "ReportSummary": "execute",
    "ScenarioReport": "execute",
    "export_html": "execute",
    "notebooks_dir": "execute",
    "python_kernel": "execute",
    "run_grid": "execute",
    "CURVES": "figures",
    "calibration_figure": "figures",
    "confusion_figure": "figures",
    "curve_figure": "figures",
    "curves_figure": "figures",
    "forest_figure": "figures",
    "paired_figure": "figures",
    "roc_figure": "figures",
    "roc_overlay_figure": "figures",
    "save_figure": "figures",
    "timing_figure": "figures",
    "attention_figure": "images",
    "gradcam_figure": "images",
    "samples_figure": "images",
    "GridReports": "runs",
    "Run": "runs",
    "class_names": "runs",
    "held_out_scans": "runs",
    "read_reports": "runs",
    "read_run": "runs",
    "relative_scans": "runs",
    "sample_scans": "runs",
    "scan_titles": "runs",
    "page_heading": "smoke",
    "quick_name": "smoke",
    "run_size": "smoke",
    "smoke_banner": "smoke",
    "confusion_matrices": "tables",
    "confusion_table": "tables",
    "fold_spread_table": "tables",
    "metrics_table": "tables",
    "paired_table": "tables",
    "split_counts": "tables",
    "to_html": "tables",
    "describe_evaluation": "text",
    "format_comparison": "text",
    "format_table": "text",
    "verdict": "text",
}
"""Each public name and the module of this package that defines it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The public ``name``, imported from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the public ones not yet imported included."""
    return sorted({*globals(), *_EXPORTS})
