"""Figures of a run's training and metrics, and of a grid's runs side by side, as
:class:`matplotlib.figure.Figure` objects.

Every function draws on a new ``Figure`` (no pyplot state); :func:`save_figure` writes one as
PNG. Epoch axes show integer ticks only. The grid figures (:func:`forest_figure`,
:func:`roc_overlay_figure`, :func:`paired_figure`) take the reports of a grid
(:class:`~ct3d.report.GridReports`, or plain metrics by scenario name) or its comparisons.

Example:
    >>> fig = curves_figure({"epoch": [1, 2], "loss": [0.7, 0.5], "val_loss": [0.8, 0.6]})
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['train', 'val']
    >>> fig = confusion_figure({"test": [[3, 1], [0, 4]]}, ["normal", "abnormal"])
    >>> fig.axes[1].images[0].get_array().tolist()
    [[0.75, 0.25], [0.0, 1.0]]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ct3d.report.runs import GridReports
from ct3d.report.tables import ci_interval, confusion_table, format_cell

__all__ = ["CURVES", "calibration_figure", "confusion_figure", "curve_figure", "curves_figure",
           "forest_figure", "note_figure", "paired_figure", "roc_figure", "roc_overlay_figure",
           "save_figure", "timing_figure"]

CURVES = ("loss", "accuracy", "auc")
"""Metrics plotted per epoch (those the history holds), train and ``val_`` together."""

History = Mapping[str, Sequence[float]]


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG file (tight bounding box); the path written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_figure(note_figure("hello"), Path(tmp) / "a.png").read_bytes()[:4]
        b'\\x89PNG'
    """
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return Path(path)


def note_figure(text: str) -> Figure:
    """A small figure holding only ``text`` (in place of a figure that cannot be drawn).

    Example:
        >>> note_figure("no ROC curve").texts[0].get_text()
        'no ROC curve'
    """
    fig = Figure(figsize=(6, 1))
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def _epoch_axis(ax: Axes) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _as_list(histories: History | Sequence[History]) -> list[History]:
    return [histories] if isinstance(histories, Mapping) else list(histories)


def curves_figure(histories: History | Sequence[History], metrics: Sequence[str] = CURVES,
                  epochs: int | None = None) -> Figure:
    """One axes per metric: train (solid) and validation (dashed) values by epoch.

    ``histories``: one history (lists by key: ``epoch``, ``loss``, ``val_loss``, ...), or one
    per fold (each fold in its own colour, labelled ``fold i``). ``metrics``: those to plot
    that the histories hold (``loss`` if none). ``epochs``: fix the axis to 1..``epochs``.

    Example:
        >>> folds = [{"epoch": [1, 2], "loss": [0.7, 0.5]}, {"epoch": [1], "loss": [0.6]}]
        >>> [line.get_label() for line in curves_figure(folds).axes[0].lines]
        ['fold 0 train', 'fold 1 train']
    """
    runs = _as_list(histories)
    shown = [m for m in metrics if any(m in h or f"val_{m}" in h for h in runs)] or ["loss"]
    fig = Figure(figsize=(4.2 * len(shown), 3.2))
    fig.subplots_adjust(wspace=0.3)
    for ax, metric in zip(fig.subplots(1, len(shown), squeeze=False)[0], shown, strict=True):
        for i, history in enumerate(runs):
            tag, color = (f"fold {i} ", f"C{i}") if len(runs) > 1 else ("", None)
            for key, style, label in ((metric, "-", "train"), (f"val_{metric}", "--", "val")):
                values = list(history.get(key, []))
                if values:
                    x = list(history.get("epoch", range(1, len(values) + 1)))[:len(values)]
                    ax.plot(x, values, style, color=color, marker="o", markersize=3,
                            label=f"{tag}{label}")
        ax.set_title(metric)
        _epoch_axis(ax)
        if epochs:
            ax.set_xlim(0.5, epochs + 0.5)
        if ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def timing_figure(histories: History | Sequence[History]) -> Figure:
    """Wall time of each epoch (``time_s``) as bars; one colour per fold when several.

    Example:
        >>> fig = timing_figure({"epoch": [1, 2], "time_s": [3.5, 2.0]})
        >>> [float(bar.get_height()) for bar in fig.axes[0].patches]
        [3.5, 2.0]
    """
    runs = _as_list(histories)
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    width = 0.8 / len(runs)
    for i, history in enumerate(runs):
        x = np.asarray(history["epoch"], float) + (i - (len(runs) - 1) / 2) * width
        ax.bar(x, history["time_s"], width=width,
               label=f"fold {i}" if len(runs) > 1 else "time")
    ax.set(ylabel="seconds", title="wall time per epoch")
    _epoch_axis(ax)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return fig


def confusion_figure(matrices: Mapping[str, Sequence[Sequence[int]]],
                     class_names: Sequence[str]) -> Figure:
    """Heat maps of confusion matrices (rows = true class): counts and row-normalized.

    ``matrices``: one row of the figure per title (e.g. from
    :func:`~ct3d.report.confusion_matrices`); the class names label both axes.

    Example:
        >>> fig = confusion_figure({"train": [[5, 1], [0, 6]], "test": [[2, 0], [1, 1]]},
        ...                        ["normal", "abnormal"])
        >>> [ax.get_title() for ax in fig.axes][1:3]
        ['train: row-normalized', 'test: counts']
    """
    fig = Figure(figsize=(8.5, 3.6 * len(matrices)))
    fig.subplots_adjust(wspace=0.5, hspace=0.55)
    grid = fig.subplots(len(matrices), 2, squeeze=False)
    for row, (title, matrix) in zip(grid, matrices.items(), strict=True):
        for ax, normalize, kind, spec in ((row[0], False, "counts", "d"),
                                          (row[1], True, "row-normalized", ".2f")):
            values = confusion_table(matrix, class_names, normalize).to_numpy()
            top = max(float(values.max()), 1e-9)
            ax.imshow(values, cmap="Blues", vmin=0, vmax=top)
            for (i, j), v in np.ndenumerate(values):
                ax.text(j, i, format(v, spec), ha="center", va="center",
                        color="white" if v > top / 2 else "black")
            ticks = range(len(class_names))
            ax.set_xticks(ticks, class_names, rotation=30)
            ax.set_yticks(ticks, class_names)
            ax.set(xlabel="predicted", ylabel="true", title=f"{title}: {kind}")
    return fig


def _part_title(name: str, metrics: Mapping[str, Any]) -> str:
    return f"{name}, {metrics.get('evaluated_on', 'evaluated')} (n = {metrics['n']})"


def roc_figure(metrics: Mapping[str, Any]) -> Figure:
    """The ROC curve of the evaluated part, with its AUC and 95% interval in the legend
    (repeated k-fold: repeat 0's curve and AUC, and the mean AUC over the repeats).

    Multi-class metrics, or a part with one class only, have no ROC curve: the figure then
    says so.

    Example:
        >>> from ct3d.evaluate import evaluate_predictions
        >>> m = evaluate_predictions([0, 1, 0, 1], [0.2, 0.9, 0.6, 0.7], n_boot=0)
        >>> fig = roc_figure({**m, "evaluated_on": "test"})
        >>> fig.axes[0].lines[0].get_xdata().tolist() == m["roc"]["fpr"], fig.axes[0].get_title()
        (True, 'ROC, test (n = 4)')
    """
    roc = metrics.get("roc")
    if not roc:
        return note_figure("No ROC curve: it needs a binary task with both classes among "
                           "the evaluated scans.")
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    label = f"AUC {format_cell(metrics['auc'])} {format_cell(ci_interval(metrics, 'auc'))}"
    if "roc" in metrics.get("from_repeat_0", []):
        repeats = metrics["repeats"]
        label = (f"repeat 0, AUC {format_cell(repeats[0]['auc'])}\n"
                 f"mean of {len(repeats)} repeats: {label}")
    ax.plot(roc["fpr"], roc["tpr"], marker=".", label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.set(xlabel="false positive rate (1 - specificity)",
           ylabel="true positive rate (sensitivity)", title=_part_title("ROC", metrics),
           xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    return fig


def calibration_figure(metrics: Mapping[str, Any]) -> Figure:
    """Reliability diagram of the evaluated part: observed vs predicted, and scans per bin.

    From ``metrics["calibration"]`` (:func:`ct3d.evaluate.calibration`): above, the fraction
    of positives in each probability bin (bars; empty bins have none) with the bins' mean
    predicted probability (points) and the diagonal; below, the number of scans per bin.
    The title gives the Brier score. Multi-class metrics have no calibration: the figure
    then says so.

    Example:
        >>> from ct3d.evaluate import evaluate_predictions
        >>> m = evaluate_predictions([0, 1, 0, 1], [0.2, 0.9, 0.6, 0.7], n_boot=0)
        >>> counts = calibration_figure(m).axes[1].patches
        >>> [bar.get_height() for bar in counts] == m["calibration"]["count"]
        True
    """
    cal = metrics.get("calibration")
    if not cal:
        return note_figure("No calibration: it needs a binary task.")
    edges = np.asarray(cal["edges"])
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    observed = np.array([np.nan if v is None else v for v in cal["observed"]])
    predicted = np.array([np.nan if v is None else v for v in cal["mean_predicted"]])
    fig = Figure(figsize=(5, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(centres, observed, width=widths, color="C0", alpha=0.6, edgecolor="C0",
            label="fraction positive")
    top.plot(predicted, observed, "o", color="C1", label="mean predicted")
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    title = _part_title("calibration", metrics)
    top.set(ylabel="fraction positive", ylim=(0, 1.02),
            title=f"{title}\nBrier score {format_cell(cal['brier'])}")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, cal["count"], width=widths, color="C2", edgecolor="C2", alpha=0.6)
    bottom.set(xlabel="predicted probability", ylabel="scans", xlim=(0, 1))
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


Reports = GridReports | Mapping[str, Mapping[str, Any]]
"""A grid's scenario metrics: its reports, or ``metrics.json`` contents by scenario name."""


def _by_scenario(reports: Reports) -> dict[str, Mapping[str, Any]]:
    """Metrics by scenario name, in the grid's order (reports without metrics left out)."""
    if isinstance(reports, GridReports):
        return {n: reports.metrics[n] for n in reports.names if n in reports.metrics}
    return dict(reports)


def _auc(metrics: Mapping[str, Any]) -> tuple[float | None, tuple[float, float] | None, str]:
    """A run's AUC, its 95% interval (or None) and its name: ``AUC``, or multi-class
    ``macro AUC``."""
    if "class_names" in metrics:
        return metrics.get("macro_auc"), ci_interval(metrics, "macro_auc"), "macro AUC"
    return metrics.get("auc"), ci_interval(metrics, "auc"), "AUC"


def _forest_label(name: str, metrics: Mapping[str, Any], kind: str) -> str:
    """``name`` over ``n = N`` (and the repeats averaged, and ``macro AUC``) for a y tick."""
    repeats = len(metrics.get("repeats") or [])
    notes = [f"n = {metrics['n']}", *([f"mean of {repeats} repeats"] if repeats > 1 else []),
             *([kind] if kind != "AUC" else [])]
    return f"{name}\n{', '.join(notes)}"


def _rows_axes(rows: int) -> tuple[Figure, Axes]:
    """A figure with one axes tall enough for ``rows`` labelled rows, the first on top."""
    fig = Figure(figsize=(7.5, 1.2 + 0.55 * max(rows, 1)))
    ax = fig.subplots()
    ax.set_ylim(rows - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    return fig, ax


def forest_figure(reports: Reports) -> Figure:
    """The AUC of every scenario, one row each (the grid's order, top down): a point and its
    95% bootstrap interval as a horizontal bar, a dotted line at 0.5 (chance).

    Binary runs show ``auc`` and ``ci["auc"]``; multi-class runs ``macro_auc`` (a square; no
    interval unless the metrics have one). Each row is labelled with the scenario, its
    number of scans (``n``) and, for repeated k-fold, the number of repeats averaged; the
    value and interval are written at the right. The x axis runs from 0.4 (lower if an
    interval needs it) to 1. A run without an AUC keeps its row, marked ``no AUC``.

    Example:
        >>> m = {"n": 40, "auc": 0.8, "ci": {"auc": [0.7, 0.9]}}
        >>> fig = forest_figure({"a": m, "b": {**m, "auc": 0.6, "ci": {"auc": [0.45, 0.75]}}})
        >>> [seg.tolist() for seg in fig.axes[0].collections[0].get_segments()]
        [[[0.7, 0.0], [0.9, 0.0]], [[0.45, 1.0], [0.75, 1.0]]]
    """
    runs = _by_scenario(reports)
    if not runs:
        return note_figure("No scenario report with metrics: no AUC to show.")
    fig, ax = _rows_axes(len(runs))
    labels, bars, low = [], [], 0.4
    for y, (name, m) in enumerate(runs.items()):
        auc, bounds, kind = _auc(m)
        labels.append(_forest_label(name, m, kind))
        if bounds is not None:
            bars.append(((bounds[0], y), (bounds[1], y)))
            low = min(low, bounds[0] - 0.02)
        if auc is None:
            ax.text(0.5, y, "  no AUC", va="center", fontsize=8, color="grey")
            continue
        low = min(low, auc - 0.02)
        ax.plot([auc], [y], "s" if kind != "AUC" else "o", color="C0", clip_on=False)
        text = format_cell(auc, ".3f") + (f" {format_cell(bounds, '.3f')}" if bounds else "")
        ax.annotate(text, (1, y), xycoords=("axes fraction", "data"), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.add_collection(LineCollection(bars, colors="C0", linewidths=2))
    ax.axvline(0.5, color="grey", linestyle=":", label="chance")
    ax.set_yticks(range(len(runs)), labels, fontsize=8)
    ax.set(xlim=(low, 1.0), title="AUC per scenario",
           xlabel="AUC (binary) or macro AUC (multi-class), 95% interval; dotted: chance")
    return fig


def curve_figure(reports: Reports, series: Mapping[str, Mapping[float, str]],
                 xlabel: str) -> Figure:
    """The AUC of scenarios along an x value, one line per series: e.g. from scratch and
    pretrained against the number of labeled scans (a grid's ``curves``). Each point is
    the AUC of scenario ``series[line][x]`` with its 95% interval as an error bar (the two
    lines are drawn a little apart on x so the bars do not hide each other); a scenario
    without a report is left out of its line. The x axis is logarithmic.

    Example:
        >>> m = {"auc": 0.7, "ci": {"auc": [0.6, 0.8]}}
        >>> b = {"auc": 0.9, "ci": {"auc": [0.8, 0.95]}}
        >>> fig = curve_figure({"a": m, "b": b}, {"s": {20: "a", 50: "b"}}, "labeled scans")
        >>> fig.axes[0].lines[0].get_ydata().tolist(), fig.axes[0].get_xlabel()
        ([0.7, 0.9], 'labeled scans')
    """
    runs = _by_scenario(reports)
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    shown = 0
    for i, (line, points) in enumerate(series.items()):
        xs, ys, errors = [], [], [[], []]
        shift = 1 + 0.02 * (i - (len(series) - 1) / 2)
        for x, name in sorted(points.items()):
            auc, bounds, _ = _auc(runs.get(name, {}))
            if auc is None:
                continue
            xs.append(x * shift)
            ys.append(auc)
            low, high = bounds if bounds is not None else (auc, auc)
            errors[0].append(max(auc - low, 0.0))
            errors[1].append(max(high - auc, 0.0))
        if xs:
            ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=4, label=line)
            shown += 1
    if not shown:
        return note_figure("No report of the curve's scenarios yet.")
    ticks = sorted({x for points in series.values() for x in points})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.axhline(0.5, color="grey", linestyle=":")
    ax.set(xlabel=xlabel, ylabel="AUC (95% interval)", title=f"AUC against {xlabel}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _roc_label(name: str, metrics: Mapping[str, Any]) -> str:
    label = f"{name}: AUC {format_cell(metrics['auc'], '.3f')}"
    if "roc" in metrics.get("from_repeat_0", []):
        label += f" (mean of {len(metrics['repeats'])} repeats; curve: repeat 0)"
    return label


def roc_overlay_figure(reports: Reports) -> Figure:
    """The ROC curves of every binary scenario on one axes (a colour each; the legend gives
    each AUC), with the diagonal (chance). Multi-class scenarios, and runs without a curve
    (one class among the evaluated scans), are left out: the title names them.

    Repeated k-fold runs draw repeat 0's curve beside the mean AUC of their repeats.

    Example:
        >>> m = {"auc": 0.75, "roc": {"fpr": [0, 0.5, 1], "tpr": [0, 1, 1]}}
        >>> fig = roc_overlay_figure({"a": m, "k5": {"class_names": list("abcde")}})
        >>> [line.get_label() for line in fig.axes[0].lines]
        ['a: AUC 0.750', 'chance']
        >>> fig.axes[0].get_title().splitlines()[1]
        'not shown (multi-class or no curve): k5'
    """
    runs = _by_scenario(reports)
    curves = {n: m for n, m in runs.items() if "class_names" not in m and m.get("roc")}
    if not curves:
        return note_figure("No ROC curves: no binary scenario with both classes among its "
                           "evaluated scans.")
    fig = Figure(figsize=(8.5, 5.5))
    ax = fig.subplots()
    for i, (name, m) in enumerate(curves.items()):
        ax.plot(m["roc"]["fpr"], m["roc"]["tpr"], color=f"C{i % 10}",
                linestyle=("-", "--", "-.", ":")[i // 10 % 4], label=_roc_label(name, m))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    left_out = [n for n in runs if n not in curves]
    title = "ROC curves of the binary scenarios (evaluated scans)"
    if left_out:
        title += f"\nnot shown (multi-class or no curve): {', '.join(left_out)}"
    ax.set(xlabel="false positive rate (1 - specificity)",
           ylabel="true positive rate (sensitivity)", title=title, xlim=(-0.02, 1.02),
           ylim=(-0.02, 1.02), aspect="equal")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return fig


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def paired_figure(comparisons: Sequence[Mapping[str, Any]]) -> Figure:
    """Paired AUC differences B - A (from :func:`ct3d.paired.compare_runs`), one row each:
    the difference as a point, its 95% paired-bootstrap interval as a horizontal bar, and a
    dotted line at 0 (no difference). Rows are labelled ``B vs A (p = ...)``; comparisons
    that were skipped (:func:`~ct3d.report.grid_comparisons`) are named in the title.

    Example:
        >>> c = {"runs": {"a": {"folder": "base"}, "b": {"folder": "crop"}}, "auc_a": 0.71,
        ...      "auc_b": 0.78, "difference": 0.07, "ci": [0.01, 0.13], "p_value": 0.03}
        >>> fig = paired_figure([c])
        >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
        ['crop vs base (p = 0.030)']
    """
    done = [c for c in comparisons if "skipped" not in c]
    skipped = [f"{c['runs']['b']['folder']} vs {c['runs']['a']['folder']}"
               for c in comparisons if "skipped" in c]
    if not done:
        return note_figure("No paired comparison to show"
                           + (f" (skipped: {', '.join(skipped)})." if skipped else "."))
    fig, ax = _rows_axes(len(done))
    for y, c in enumerate(done):
        ax.plot([c["difference"]], [y], "o", color="C1")
    ax.add_collection(LineCollection([((c["ci"][0], y), (c["ci"][1], y))
                                      for y, c in enumerate(done)], colors="C1", linewidths=2))
    ax.axvline(0, color="grey", linestyle=":", label="no difference")
    reach = max(0.05, *(abs(v) for c in done for v in (*c["ci"], c["difference"])))
    ax.set_xlim(-1.1 * reach, 1.1 * reach)
    ax.set_yticks(range(len(done)), [
        f"{c['runs']['b']['folder']} vs {c['runs']['a']['folder']} ({_p_text(c['p_value'])})"
        for c in done], fontsize=8)
    title = "AUC difference B - A on the same scans, 95% paired-bootstrap interval"
    if skipped:
        title += f"\nskipped (see the table): {', '.join(skipped)}"
    ax.set(xlabel="ΔAUC (B - A); dotted: no difference", title=title)
    return fig
