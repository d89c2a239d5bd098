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
- ``text``: :func:`format_table`, the plain-text metrics table the CLI prints, and
  :func:`format_comparison`, the paired comparison ``ct3d compare`` prints;
- ``figures``: training curves, time per epoch, confusion matrices, ROC, calibration; and
  of a grid: AUC per scenario (:func:`forest_figure`), ROC curves overlaid, paired
  differences;
- ``smoke``: each page's heading, and the banner of a ``--quick`` (smoke test) report;
- ``images``: sample scan slices, Grad-CAM heat maps overlaid on their hottest slice.

Only ``execute`` needs papermill; nothing here imports TensorFlow or ipywidgets.

Example:
    >>> from ct3d.evaluate import evaluate_predictions
    >>> test = evaluate_predictions([0, 0, 1, 1], [0.2, 0.6, 0.7, 0.9], n_boot=20)
    >>> metrics = {**test, "evaluated_on": "test", "parts": {"test": test}}
    >>> metrics_table(metrics).loc["accuracy", "test"]
    0.75
    >>> roc_figure(metrics).axes[0].get_legend().get_texts()[0].get_text()[:10]
    'AUC 1.0000'
"""

from ct3d.report.compare import (
    THESIS_TABLES,
    cost_table,
    grid_comparisons,
    held_out_table,
    report_links,
    thesis_table,
    thesis_tables_html,
)
from ct3d.report.execute import (
    ReportError,
    ReportSummary,
    ScenarioReport,
    export_html,
    notebooks_dir,
    python_kernel,
    run_grid,
)
from ct3d.report.figures import (
    CURVES,
    calibration_figure,
    confusion_figure,
    curve_figure,
    curves_figure,
    forest_figure,
    paired_figure,
    roc_figure,
    roc_overlay_figure,
    save_figure,
    timing_figure,
)
from ct3d.report.images import attention_figure, gradcam_figure, samples_figure
from ct3d.report.runs import (
    GridReports,
    Run,
    class_names,
    held_out_scans,
    read_reports,
    read_run,
    relative_scans,
    sample_scans,
    scan_titles,
)
from ct3d.report.smoke import page_heading, quick_name, run_size, smoke_banner
from ct3d.report.tables import (
    confusion_matrices,
    confusion_table,
    fold_spread_table,
    metrics_table,
    paired_table,
    split_counts,
    to_html,
)
from ct3d.report.text import describe_evaluation, format_comparison, format_table

__all__ = [
    "CURVES",
    "THESIS_TABLES",
    "GridReports",
    "ReportError",
    "ReportSummary",
    "Run",
    "ScenarioReport",
    "attention_figure",
    "calibration_figure",
    "class_names",
    "confusion_figure",
    "confusion_matrices",
    "confusion_table",
    "cost_table",
    "curve_figure",
    "curves_figure",
    "describe_evaluation",
    "export_html",
    "fold_spread_table",
    "forest_figure",
    "format_comparison",
    "format_table",
    "gradcam_figure",
    "grid_comparisons",
    "held_out_scans",
    "held_out_table",
    "metrics_table",
    "notebooks_dir",
    "page_heading",
    "paired_figure",
    "paired_table",
    "python_kernel",
    "quick_name",
    "read_reports",
    "read_run",
    "relative_scans",
    "report_links",
    "roc_figure",
    "roc_overlay_figure",
    "run_grid",
    "run_size",
    "sample_scans",
    "samples_figure",
    "save_figure",
    "scan_titles",
    "smoke_banner",
    "split_counts",
    "thesis_table",
    "thesis_tables_html",
    "timing_figure",
    "to_html",
]
