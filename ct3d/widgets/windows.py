"""Display windows: HU presets, the training window of a chain, and per-panel grey limits.

A window is ``(low, high)`` in Hounsfield units (``level = (low + high) / 2``,
``width = high - low``). A panel holding HU is drawn with the window itself; a panel holding
preprocessed intensities is drawn with the window mapped through the HU range that the
chain's ``hu_window`` (or ``keras_example``) step scales to [0, 1], so the ``training``
window is exactly [0, 1] there. Preprocessed panels of a chain without such a step (e.g.
z-scores from ``standardize``) are drawn over their own value range.

Example:
    >>> training_window([{"name": "hu_window", "params": {"low": -1000, "high": 400}}])
    (-1000.0, 400.0)
    >>> to_unit(PRESETS["lung"], (-1000.0, 400.0))
    (-0.25, 0.8214285714285714)
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import numpy as np

from ct3d.registry import PREPROCESSORS, StepLike, resolve_step

__all__ = ["PRESETS", "HU_STEPS", "default_training_window", "is_hu", "panel_limits",
           "to_unit", "training_window"]

Window = tuple[float, float]

PRESETS: dict[str, Window] = {
    "lung": (-1350.0, 150.0),
    "mediastinum": (-160.0, 240.0),
    "bone": (-500.0, 1500.0),
}
"""Fixed HU windows: lung (level -600, width 1500), mediastinum (level 40, width 400), bone
(level 500, width 2000)."""

HU_STEPS = ("hu_window", "keras_example")
"""Preprocessors that clip HU to ``[low, high]`` and scale it to [0, 1]."""

_HU_MAGNITUDE = 10.0
"""A scan with any value beyond +-this many units holds HU, not preprocessed intensities."""


def default_training_window() -> Window:
    """The HU range of ``hu_window`` with its default parameters."""
    defaults = PREPROCESSORS.resolve("hu_window").params
    return float(defaults["low"]), float(defaults["high"])


def training_window(steps: Iterable[StepLike]) -> Window | None:
    """``(low, high)`` of the first ``hu_window``/``keras_example`` step; None if none."""
    for step in map(partial(resolve_step, "preprocess"), steps):
        if step.name in HU_STEPS:
            return float(step.params["low"]), float(step.params["high"])
    return None


def is_hu(array: np.ndarray) -> bool:
    """Whether ``array`` holds HU (raw CT) rather than preprocessed intensities."""
    return bool(array.size) and float(np.nanmax(np.abs(array))) > _HU_MAGNITUDE


def to_unit(window: Window, training: Window) -> Window:
    """An HU window mapped to the [0, 1] scale that ``training`` (HU) is scaled to."""
    low, high = training
    return (window[0] - low) / (high - low), (window[1] - low) / (high - low)


def panel_limits(window: Window, training: Window | None, array: np.ndarray) -> Window:
    """Grey limits ``(vmin, vmax)`` for drawing ``array`` with the HU ``window``."""
    if is_hu(array):
        return window
    if training is not None:
        return to_unit(window, training)
    return float(np.nanmin(array)), float(np.nanmax(array))
