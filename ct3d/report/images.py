"""Figures of scans: sample slices, Grad-CAM heat maps overlaid on them, and which slices a
slice model's attention weighed most.

Both take volumes already in memory (``(x, y, z)`` arrays, e.g. ``ct3d.read_volume(p).array``
and ``ct3d.saliency.explain_scan(...).array``) and show one axial slice per scan in HU,
rotated a quarter turn so that anterior is up.

Example:
    >>> scan = np.zeros((4, 4, 3)); heat = np.zeros((4, 4, 3)); heat[1, 2, 2] = 1.0
    >>> fig = gradcam_figure([scan], [heat], ["abnormal"])
    >>> fig.axes[0].get_title()
    'abnormal\\nslice 2'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ct3d.report.figures import note_figure

__all__ = ["HU_WINDOW", "attention_figure", "gradcam_figure", "hottest_slice", "samples_figure"]

HU_WINDOW = (-1000.0, 400.0)
"""Grey limits of the scan slices, in HU."""


def _panels(count: int, height: float) -> list[Axes]:
    """A figure with ``count`` axes in a row (3 inches wide each)."""
    fig = Figure(figsize=(3 * count, height))
    return list(fig.subplots(1, count, squeeze=False)[0])


def _show_slice(ax: Axes, image: np.ndarray, window: tuple[float, float], title: str) -> None:
    ax.imshow(np.rot90(image), cmap="gray", vmin=window[0], vmax=window[1])
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def samples_figure(scans: Sequence[np.ndarray], titles: Sequence[str],
                   window: tuple[float, float] = HU_WINDOW) -> Figure:
    """The middle axial slice of each scan, titled, in grey over ``window`` (HU).

    Example:
        >>> fig = samples_figure([np.zeros((4, 4, 5)), np.ones((4, 4, 3))], ["a", "b"])
        >>> len(fig.axes), [ax.get_title() for ax in fig.axes]
        (2, ['a', 'b'])
    """
    if not scans:
        return note_figure("No scans to show.")
    axes = _panels(len(scans), 3.3)
    for ax, scan, title in zip(axes, scans, titles, strict=True):
        _show_slice(ax, scan[:, :, scan.shape[2] // 2], window, title)
    return axes[0].figure


def hottest_slice(heat: np.ndarray) -> int:
    """The axial slice (last axis) where the heat map's sum is largest.

    Example:
        >>> heat = np.zeros((2, 2, 4)); heat[0, 0, 3] = 1.0
        >>> hottest_slice(heat)
        3
    """
    return int(np.argmax(heat.sum(axis=(0, 1))))


def gradcam_figure(scans: Sequence[np.ndarray], heats: Sequence[np.ndarray],
                   titles: Sequence[str], window: tuple[float, float] = HU_WINDOW,
                   clear_below: float = 0.2) -> Figure:
    """Each scan's :func:`hottest_slice` with its heat map (0..1) overlaid in colour.

    ``heats``: one heat map per scan on the scan's own grid; values below ``clear_below``
    are left clear. Each panel's title is ``titles[i]`` and the slice shown.

    Example:
        >>> heat = np.zeros((4, 4, 3)); heat[:, :, 1] = 0.5
        >>> fig = gradcam_figure([np.zeros((4, 4, 3))] * 2, [heat, heat], ["a", "b"])
        >>> len(fig.axes), fig.axes[1].get_title()
        (2, 'b\\nslice 1')
    """
    if not scans:
        return note_figure("No held-out scans to explain.")
    axes = _panels(len(scans), 3.5)
    for ax, scan, heat, title in zip(axes, scans, heats, titles, strict=True):
        k = hottest_slice(heat)
        _show_slice(ax, scan[:, :, k], window, f"{title}\nslice {k}")
        ax.imshow(np.ma.masked_less(np.rot90(heat[:, :, k]), clear_below), cmap="jet",
                  alpha=0.5, vmin=0, vmax=1)
    return axes[0].figure


def attention_figure(scans: Sequence[np.ndarray], weights: Sequence[np.ndarray],
                     slices: Sequence[int], titles: Sequence[str],
                     window: tuple[float, float] = HU_WINDOW) -> Figure:
    """Which slices mattered: per scan (a column), the slice the attention weighed most
    above the attention weight of every axial slice the model saw (bars; the heaviest in
    red, the dashed line is uniform weight, 1 / slices).

    ``scans``: the original scans (``(x, y, z)`` in HU); ``weights``: one row of weights
    per scan over its preprocessed slices (:func:`ct3d.models.slice_weights`); ``slices``:
    the heaviest preprocessed slice as a slice of the original scan
    (:func:`ct3d.inference.top_slices`), the one shown.

    Example:
        >>> w = np.array([0.1, 0.6, 0.3])
        >>> fig = attention_figure([np.zeros((4, 4, 9))], [w], [4], ["abnormal"])
        >>> fig.axes[0].get_title(), len(fig.axes[1].patches)
        ('abnormal\\nslice 4 (weight 0.60)', 3)
    """
    if not scans:
        return note_figure("No held-out scans to show.")
    fig = Figure(figsize=(3 * len(scans), 5.5))
    grid = fig.subplots(2, len(scans), squeeze=False, height_ratios=[3, 2])
    for column, scan, w, k, title in zip(grid.T, scans, weights, slices, titles, strict=True):
        top = int(np.argmax(w))
        _show_slice(column[0], scan[:, :, k], window, f"{title}\nslice {k} (weight {w[top]:.2f})")
        bars = column[1]
        bars.bar(np.arange(len(w)), w, width=1.0, color=["tab:red" if i == top else "tab:blue"
                                                          for i in range(len(w))])
        bars.axhline(1 / len(w), color="black", linestyle="--", linewidth=0.8)
        bars.set_xlabel("axial slice the model saw", fontsize=8)
        bars.set_ylabel("attention weight", fontsize=8)
        bars.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
