"""The checks every scan gets, the same for every file format.

:func:`checked_shape` refuses, from the header alone, what is not one 3D volume of at most
:data:`MAX_VOXELS` voxels. :func:`checked_volume` refuses a volume that is not a finite,
non-empty 3D array with a usable geometry (:func:`usable_affine`) and, for CT, one that is
constant or not in Hounsfield units; values below :data:`AIR_HU` (field-of-view padding) are
set to air.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from nibabel.orientations import io_orientation

from ct3d.io.errors import ScanError
from ct3d.volume import Volume

__all__ = ["AIR_HU", "MAX_VOXELS", "checked_shape", "checked_volume", "usable_affine"]

MAX_VOXELS = 2**31
"""The largest volume read (8 GiB as float32); a header asking for more is refused unread."""

AIR_HU = -1024.0
"""Values below this are set to it: nothing in a body is below air, so lower values are
field-of-view padding (stored as -2000, -2048, -3024 or -32768) and become air."""
_LOWEST_HU_AT_MOST = -500.0
"""A chest CT in HU holds air or lung, so its minimum is at most this (air -1000, lung
-900..-700). Data already scaled to [0, 1], [-1, 1], z-scores, 0..255 or stored values without
their intercept (0..4095) all have a higher minimum."""
_HU_BOUND = 65536.0
"""CT stores 12-16 bit values: HU beyond +-2**16 come from a wrong scaling, not a scan."""
_DEGENERATE = 1e-6
"""An affine is degenerate when its axes, scaled to unit length, span less volume than this."""


def checked_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The 3D shape of a header's ``shape`` (trailing sizes of one dropped), checked unread.

    Raises:
        ScanError: not one 3D volume (2D, or 4D with several volumes), no voxels, or more
            than :data:`MAX_VOXELS`.

    Example:
        >>> checked_shape(Path("scan.nrrd"), (512, 512, 300, 1))
        (512, 512, 300)
        >>> checked_shape(Path("scan.nrrd"), (512, 512))
        Traceback (most recent call last):
        ...
        ct3d.io.errors.ScanError: scan.nrrd: expected a 3D volume, found shape (512, 512)
    """
    if len(shape) > 3 and all(n == 1 for n in shape[3:]):
        shape = shape[:3]
    if len(shape) == 4:
        raise ScanError(path, f"expected a 3D volume, found 4D with {shape[3]} volumes {shape}")
    if len(shape) != 3:
        raise ScanError(path, f"expected a 3D volume, found shape {shape}")
    n = math.prod(shape)
    if n == 0:
        raise ScanError(path, f"empty volume: shape {shape} has no voxels")
    if n > MAX_VOXELS:
        raise ScanError(path, f"shape {shape} in the header has {n:.3g} voxels "
                              f"({n * 4 / 2**30:.3g} GiB as float32); ct3d reads at most "
                              f"{MAX_VOXELS} (2**31)")
    return shape[0], shape[1], shape[2]


def usable_affine(affine: np.ndarray) -> bool:
    """True for a finite affine whose axes are independent and each nearest one world axis."""
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        return False
    with np.errstate(all="ignore"):  # absurd scales over- or underflow: not usable
        norms = np.linalg.norm(affine[:3, :3], axis=0)
        det = abs(np.linalg.det(affine[:3, :3]))
        if not ((norms > 0).all() and det > _DEGENERATE * norms.prod()):
            return False
        try:
            ornt = io_orientation(affine)  # NaN for an axis far shorter than the others
        except (np.linalg.LinAlgError, ValueError):
            return False
    return not np.isnan(ornt).any()


def checked_volume(path: Path, volume: Volume, stored: str, hu: bool) -> Volume:
    """``volume`` after the checks of :func:`ct3d.io.read_volume` (padding set to air, in place)."""
    array = np.asarray(volume.array)
    if array.ndim != 3 or array.size == 0:
        raise ScanError(path, f"expected a non-empty 3D volume, found shape {array.shape}")
    if array.dtype != np.float32 or not array.flags.writeable:
        array = array.astype(np.float32)
    spacing = np.asarray(volume.spacing, dtype=float)
    if spacing.shape != (3,) or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ScanError(path, f"invalid voxel spacing {tuple(volume.spacing)} (mm)")
    if not usable_affine(volume.affine):
        raise ScanError(path, "no usable geometry: the affine is degenerate or not finite")
    lo, hi = float(array.min()), float(array.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        n_nan = int(np.count_nonzero(np.isnan(array)))
        n_inf = int(np.count_nonzero(np.isinf(array)))
        raise ScanError(path, f"non-finite values: {n_nan} NaN and {n_inf} infinite voxels")
    if hu:
        if lo == hi:
            raise ScanError(path, f"constant volume: every voxel is {lo:g}")
        if not (-_HU_BOUND <= lo <= _LOWEST_HU_AT_MOST and hi <= _HU_BOUND):
            raise ScanError(path, f"does not look like CT in Hounsfield units: values in "
                                  f"[{lo:g}, {hi:g}] ({stored}); ct3d expects HU (air ≈ -1000, "
                                  f"water 0, so a chest CT's minimum is at most "
                                  f"{_LOWEST_HU_AT_MOST:g}): convert the scan to HU, or fix "
                                  f"its scaling")
        if lo < AIR_HU:
            np.maximum(array, np.float32(AIR_HU), out=array)
    return volume if array is volume.array else volume.replace(array=array)
