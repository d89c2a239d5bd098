"""Geometric preprocessors: quarter turns and resizing, with the affine kept in step."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ct3d.registry import preprocessor
from ct3d.volume import Step, Volume


def _index_map(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """4x4 map from new voxel indices to old ones: old = linear @ new + offset."""
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = linear, offset
    return t


def _rot90_once(volume: Volume) -> Volume:
    w, h, _ = volume.array.shape
    # np.rot90(a, 1, axes=(0, 1))[i, j] == a[j, h - 1 - i]
    t = _index_map(np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]]), np.array([0, h - 1, 0]))
    sx, sy, sz = volume.spacing
    return volume.replace(
        array=np.ascontiguousarray(np.rot90(volume.array, 1, axes=(0, 1))),
        affine=volume.affine @ t,
        spacing=(sy, sx, sz),
    )


@preprocessor("rotate90")
def rotate90(k: int = 1) -> Step:
    """Exact quarter turns in the axial plane (no interpolation): the thesis' 90-degree turn."""

    def apply(volume: Volume) -> Volume:
        for _ in range(k % 4):
            volume = _rot90_once(volume)
        return volume

    return apply


@preprocessor("resize")
def resize(shape: tuple[int, int, int] = (128, 128, 64), order: int = 1) -> Step:
    """Resize to a fixed (W, H, D) shape by spline interpolation (order 1 = linear)."""
    if min(shape) < 1 or not 0 <= order <= 5:
        raise ValueError(f"resize needs a positive shape and 0 <= order <= 5; received "
                         f"shape={shape}, order={order}")

    def apply(volume: Volume) -> Volume:
        old = np.array(volume.array.shape, dtype=float)
        factors = np.array(shape, dtype=float) / old
        array = ndimage.zoom(volume.array, factors, order=order, prefilter=order > 1)
        step = (old - 1) / np.maximum(np.array(shape, dtype=float) - 1, 1)
        return volume.replace(
            array=array.astype(np.float32, copy=False),
            affine=volume.affine @ _index_map(np.diag(step), np.zeros(3)),
            spacing=tuple(float(s * f) for s, f in zip(volume.spacing, step, strict=True)),
        )

    return apply
