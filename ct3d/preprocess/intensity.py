"""Intensity preprocessors: HU windowing."""

from __future__ import annotations

import numpy as np

from ct3d.registry import preprocessor
from ct3d.volume import Step, Volume


@preprocessor("hu_window")
def hu_window(low: float = -1000.0, high: float = 400.0) -> Step:
    """Clip HU to [low, high] and scale linearly to [0, 1] (float32)."""
    if not high > low:
        raise ValueError(f"hu_window needs high > low; received low={low}, high={high}")
    lo, scale = np.float32(low), np.float32(1.0 / (high - low))

    def apply(volume: Volume) -> Volume:
        a = np.clip(volume.array, lo, np.float32(high)).astype(np.float32, copy=False)
        return volume.replace(array=(a - lo) * scale)

    return apply
