"""Training figures: per-epoch curves, and confusion matrices (counts and row-normalized).

Example:
    >>> fig = curves_figure({"epoch": [1, 2], "loss": [0.7, 0.5], "val_loss": [0.8, 0.6]})
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['train', 'val']
    >>> fig = confusion_figure([[3, 1], [0, 4]], ["normal", "abnormal"])
    >>> fig.axes[1].images[0].get_array().tolist()
    [[0.75, 0.25], [0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["CURVES", "confusion_figure", "curves_figure", "row_normalized"]

CURVES = ("loss", "accuracy", "auc")
"""Metrics plotted per epoch (those the history holds), train and ``val_`` together."""


def curves_figure(history: dict[str, list[float]], metrics: Sequence[str] = CURVES,
                  epochs: int | None = None) -> Figure:
    """One axes per metric of ``history``: train (solid) and validation (dashed) by epoch."""
    shown = [m for m in metrics if m in history or f"val_{m}" in history] or ["loss"]
    fig = Figure(figsize=(4 * len(shown), 3))
    fig.subplots_adjust(wspace=0.3)
    for ax, metric in zip(fig.subplots(1, len(shown), squeeze=False)[0], shown, strict=True):
        for key, style, label in ((metric, "-", "train"), (f"val_{metric}", "--", "val")):
            values = history.get(key, [])
            if values:
                ax.plot(history.get("epoch", range(1, len(values) + 1))[:len(values)], values,
                        style, marker="o", markersize=3, label=label)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        if epochs:
            ax.set_xlim(0.5, epochs + 0.5)
        if ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def row_normalized(matrix: Sequence[Sequence[int]]) -> np.ndarray:
    """Each row divided by its total (rows = true class); an empty row stays 0."""
    counts = np.asarray(matrix, float)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                     title: str = "") -> Figure:
    """Two heat maps of a confusion matrix (rows = true class): counts and row shares."""
    counts = np.asarray(matrix, int)
    fig = Figure(figsize=(9, 4))
    fig.subplots_adjust(wspace=0.45)
    panels = ((counts, "counts", "d"), (row_normalized(counts), "row-normalized", ".2f"))
    for ax, (values, name, fmt) in zip(fig.subplots(1, 2), panels, strict=True):
        ax.imshow(values, cmap="Blues", vmin=0, vmax=max(float(values.max()), 1e-9))
        high = values.max() / 2
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, format(v, fmt), ha="center", va="center",
                    color="white" if v > high else "black")
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=30)
        ax.set_yticks(ticks, class_names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} {name}".strip())
    return fig
