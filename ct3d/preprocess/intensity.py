"""Intensity preprocessors: HU windowing and z-score standardization."""

from __future__ import annotations

import typing
from typing import Literal

import numpy as np

from ct3d.preprocess.chain import keeps_shape
from ct3d.preprocess.lung import body_mask, check_air_threshold, lung_mask
from ct3d.registry import preprocessor
from ct3d.volume import Step, Volume

Region = Literal["volume", "body", "lungs"]


@preprocessor("hu_window", output_shape=keeps_shape)
def hu_window(low: float = -1000.0, high: float = 400.0) -> Step:
    """Clip HU to [low, high] and scale linearly to [0, 1] (float32).

    Args:
        low: lowest HU kept (lower values become 0).
        high: highest HU kept (higher values become 1); must be above low.
    """
    if not high > low:
        raise ValueError(f"hu_window needs high > low; received low={low}, high={high}")
    lo, scale = np.float32(low), np.float32(1.0 / (high - low))

    def apply(volume: Volume) -> Volume:
        a = np.clip(volume.array, lo, np.float32(high), dtype=np.float32)
        a -= lo
        a *= scale
        return volume.replace(array=a)

    return apply


def _region(volume: Volume, region: Region, threshold_hu: float) -> np.ndarray:
    """The voxel values the statistics are taken over."""
    if region == "volume":
        return volume.array
    found = body_mask if region == "body" else lung_mask
    return volume.array[found(volume, threshold_hu)]


@preprocessor("standardize", output_shape=keeps_shape)
def standardize(region: Region = "volume", threshold_hu: float = -400.0) -> Step:
    """Z-score: subtract the mean and divide by the std over a region, for the whole volume.

    The result is float32; a region that is empty or constant is a ``ValueError``.

    Args:
        region: voxels the mean and std are taken over: volume (every voxel), body or lungs.
            ``body`` and ``lungs`` are the masks of :mod:`ct3d.preprocess.lung`, found from
            HU, so with them this step must run on raw HU, before ``hu_window``.
        threshold_hu: HU below which a voxel is air, in (-1000, 0), for the body and lung
            masks. Unused with region ``volume``.

    Example:
        >>> v = Volume(np.array([1.0, 3.0], np.float32).reshape(2, 1, 1),
        ...            (1.0, 1.0, 1.0), np.eye(4), "demo")
        >>> standardize()(v).array.ravel().tolist()
        [-1.0, 1.0]
    """
    if region not in typing.get_args(Region):
        raise ValueError(f"standardize needs region 'volume', 'body' or 'lungs'; "
                         f"received region={region!r}")
    check_air_threshold(threshold_hu, "standardize")

    def apply(volume: Volume) -> Volume:
        values = _region(volume, region, threshold_hu).astype(np.float64)
        std = float(values.std()) if values.size else 0.0
        if not std > 0:
            raise ValueError(f"standardize: {volume.source} has {values.size} voxels in region "
                             f"{region!r} with std {std}; cannot scale to unit std")
        mean = values.mean()
        return volume.replace(array=((volume.array - mean) / std).astype(np.float32))

    return apply
