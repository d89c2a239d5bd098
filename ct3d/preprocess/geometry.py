"""Geometric preprocessors: quarter turns, resizing, resampling and cropping, affine in step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from ct3d.registry import preprocessor
from ct3d.volume import Shape, Step, Volume


def _index_map(linear: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """4x4 map from new voxel indices to old ones: old = linear @ new + offset."""
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = linear, offset
    return t


def crop(volume: Volume, start: Sequence[int], stop: Sequence[int]) -> Volume:
    """Cut out ``array[start:stop]`` (per axis); every kept voxel keeps its world position.

    Example:
        >>> v = Volume(np.zeros((4, 5, 6), np.float32), (1.0, 1.0, 2.0), np.eye(4), "demo")
        >>> c = crop(v, (1, 0, 2), (3, 5, 6))
        >>> c.shape, c.affine[:3, 3].tolist()
        ((2, 5, 4), [1.0, 0.0, 2.0])
    """
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    return volume.replace(
        array=volume.array[box].copy(),
        affine=volume.affine @ _index_map(np.eye(3), np.array(start, dtype=float)),
    )


def _rot90_once(volume: Volume) -> Volume:
    w, h, _ = volume.array.shape
    # np.rot90(a, 1, axes=(0, 1))[i, j] == a[j, h - 1 - i]
    t = _index_map(np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]]), np.array([0, h - 1, 0]))
    sx, sy, sz = volume.spacing
    return volume.replace(
        array=np.rot90(volume.array, 1, axes=(0, 1)),
        affine=volume.affine @ t,
        spacing=(sy, sx, sz),
    )


def _rotated_shape(shape: Shape | None, params: Mapping[str, Any]) -> Shape | None:
    """``rotate90``'s output shape: W and H swap places after an odd number of turns."""
    if shape is None or params["k"] % 2 == 0:
        return shape
    return shape[1], shape[0], shape[2]


@preprocessor("rotate90", output_shape=_rotated_shape)
def rotate90(k: int = 1) -> Step:
    """Exact quarter turns in the axial plane (no interpolation): the thesis' 90-degree turn.

    Args:
        k: quarter turns from W towards H, taken modulo 4 (-1 turns the other way). As
            ``np.rot90`` over axes 0, 1.
    """

    def apply(volume: Volume) -> Volume:
        for _ in range(k % 4):
            volume = _rot90_once(volume)
        return volume

    return apply


@preprocessor("resize", output_shape=lambda _, p: p["shape"])
def resize(shape: tuple[int, int, int] = (128, 128, 64), order: int = 1,
           antialias: bool = False) -> Step:
    """Resize to a fixed (W, H, D) shape by spline interpolation (order 1 = linear).

    The first and last voxels keep their centres (as ``scipy.ndimage.zoom``). An axis only
    one voxel long is repeated; its new voxels split that voxel's extent evenly, so that the
    spacing stays positive and the affine invertible. Shrinking a 512-voxel slice to 64
    samples one voxel in 64 and keeps its noise; ``antialias`` first smooths each shrunk axis
    (Gaussian, sigma = (factor - 1) / 2 voxels for a factor-fold shrink), so that every new
    voxel averages the old ones it stands for.

    Args:
        shape: output size (W, H, D) in voxels, each >= 1.
        order: spline interpolation order, 0 (nearest voxel) to 5; 1 = linear.
        antialias: smooth the axes that shrink before sampling them.

    Example:
        >>> affine = np.diag([1.0, 1.0, 5.0, 1.0])
        >>> v = Volume(np.zeros((4, 4, 1), np.float32), (1.0, 1.0, 5.0), affine, "demo")
        >>> out = resize((7, 2, 5))(v)  # the slice from z = -2.5 to 2.5 mm: 5 slices of 1 mm
        >>> out.shape, out.spacing, out.affine[2, 3]
        ((7, 2, 5), (0.5, 3.0, 1.0), np.float64(-2.0))
    """
    if min(shape) < 1 or not 0 <= order <= 5:
        raise ValueError(f"resize needs a positive shape and 0 <= order <= 5; received "
                         f"shape={shape}, order={order}")

    def apply(volume: Volume) -> Volume:
        old = np.array(volume.array.shape, dtype=float)
        new = np.array(shape, dtype=float)
        array = volume.array
        if antialias and (new < old).any():
            sigma = np.maximum((old / new - 1) / 2, 0)
            array = ndimage.gaussian_filter(array, sigma, mode="nearest")
        array = ndimage.zoom(array, new / old, order=order, prefilter=order > 1)
        single = old == 1
        step = np.where(single, 1 / new, (old - 1) / np.maximum(new - 1, 1))
        offset = np.where(single, -(new - 1) / (2 * new), 0.0)
        return volume.replace(
            array=array.astype(np.float32, copy=False),
            affine=volume.affine @ _index_map(np.diag(step), offset),
            spacing=tuple(float(s * f) for s, f in zip(volume.spacing, step, strict=True)),
        )

    return apply


def _trimmed_shape(shape: Shape | None, params: Mapping[str, Any]) -> Shape | None:
    """``slice_trim``'s output shape: ``crop`` drops ``head + tail`` slices."""
    if shape is None or params["mode"] == "replace":
        return shape
    return shape[0], shape[1], shape[2] - params["head"] - params["tail"]


@preprocessor("slice_trim", output_shape=_trimmed_shape)
def slice_trim(mode: Literal["replace", "crop"] = "replace", head: int = 12, tail: int = 8) -> Step:
    """Replace (or crop) the first head and last tail slices: the thesis' lung-only variant.

    ``replace`` overwrites the first ``head`` slices with the ``head`` slices after them and
    the last ``tail`` slices with the ``tail`` slices before them (shape and affine kept); it
    needs ``head + tail + max(head, tail)`` slices, so that every copied slice is an original
    one. ``crop`` drops those slices (the affine moves to the new first slice); it needs
    more than ``head + tail`` slices.

    Args:
        mode: replace (overwrite the trimmed slices with their neighbours) or crop (drop them).
        head: slices trimmed at the start (lowest indices) of the D axis, >= 0.
        tail: slices trimmed at the end of the D axis, >= 0.

    Example:
        >>> v = Volume(np.arange(6, dtype=np.float32).reshape(1, 1, 6), (1.0, 1.0, 1.0),
        ...            np.eye(4), "demo")
        >>> slice_trim("replace", head=2, tail=1)(v).array.ravel().tolist()
        [2.0, 3.0, 2.0, 3.0, 4.0, 4.0]
        >>> slice_trim("crop", head=2, tail=1)(v).array.ravel().tolist()
        [2.0, 3.0, 4.0]
    """
    if mode not in ("replace", "crop") or head < 0 or tail < 0:
        raise ValueError(f"slice_trim needs mode 'replace' or 'crop' and head, tail >= 0; "
                         f"received mode={mode!r}, head={head}, tail={tail}")
    needed = head + tail + max(head, tail) if mode == "replace" else head + tail + 1

    def apply(volume: Volume) -> Volume:
        depth = volume.shape[2]
        if depth < needed:
            raise ValueError(f"slice_trim({mode!r}, head={head}, tail={tail}) needs at least "
                             f"{needed} slices; {volume.source} has shape {volume.shape}")
        if mode == "crop":
            return crop(volume, (0, 0, head), (volume.shape[0], volume.shape[1], depth - tail))
        array = volume.array.copy()
        array[..., :head] = volume.array[..., head:2 * head]
        array[..., depth - tail:] = volume.array[..., depth - 2 * tail:depth - tail]
        return volume.replace(array=array)

    return apply


@preprocessor("resample")
def resample(spacing: tuple[float, float, float] = (1.5, 1.5, 5.0), order: int = 1) -> Step:
    """Resample to a voxel spacing in mm by spline interpolation (order 1 = linear).

    Each axis gets ``round(n * old_spacing / new_spacing)`` voxels (at least one) on a grid
    centred on the old one: the centre of the field of view keeps its world position and
    new voxel ``i`` lies at old index ``(n_old - 1) / 2 + (i - (n_new - 1) / 2) * new / old``.
    Points beyond the outermost old voxel centres take the nearest edge value.

    Args:
        spacing: output voxel spacing (W, H, D) in mm, each > 0.
        order: spline interpolation order, 0 (nearest voxel) to 5; 1 = linear.

    Example:
        >>> affine = np.diag([1.0, 1.0, 5.0, 1.0])
        >>> v = Volume(np.zeros((10, 10, 4), np.float32), (1.0, 1.0, 5.0), affine, "demo")
        >>> out = resample((2.0, 2.0, 2.5))(v)
        >>> out.shape, out.spacing, out.affine[:3, 3].tolist()
        ((5, 5, 8), (2.0, 2.0, 2.5), [0.5, 0.5, -1.25])
    """
    if not all(0 < s < np.inf for s in spacing) or not 0 <= order <= 5:
        raise ValueError(f"resample needs a positive spacing and 0 <= order <= 5; received "
                         f"spacing={spacing}, order={order}")
    new = np.array(spacing, dtype=float)

    def apply(volume: Volume) -> Volume:
        old_shape = np.array(volume.shape, dtype=float)
        ratio = new / np.array(volume.spacing, dtype=float)
        shape = np.maximum(np.rint(old_shape / ratio), 1).astype(int)
        offset = (old_shape - 1) / 2 - ratio * (shape - 1) / 2
        array = ndimage.affine_transform(
            volume.array, ratio, offset, output_shape=tuple(shape), order=order,
            mode="nearest", prefilter=order > 1,
        )
        return volume.replace(
            array=array.astype(np.float32, copy=False),
            affine=volume.affine @ _index_map(np.diag(ratio), offset),
            spacing=tuple(float(s) for s in spacing),
        )

    return apply
