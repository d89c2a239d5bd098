"""Putting a stored voxel array into canonical RAS+ order, the same way for every file format.

A file stores its voxels along its own axes, with a voxel -> world (RAS, mm) affine saying
where each axis points. :func:`canonical_volume` flips and transposes the array so that its
axes run nearest to +x (right -> left is -x), +y and +z, and reorders the voxel sizes and the
affine to match: the same anatomy gives the same array whatever the order it was stored in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from ct3d.io.errors import ScanError
from ct3d.volume import Volume

__all__ = ["canonical_spacing", "canonical_volume"]


def canonical_spacing(zooms: np.ndarray, ornt: np.ndarray) -> tuple[float, float, float]:
    """The voxel sizes ``zooms`` along the stored axes, reordered to the canonical axes.

    ``ornt`` is nibabel's orientation of the stored axes (``io_orientation(affine)``).

    Example:
        >>> ornt = io_orientation(np.array([[0, 0, 2.0, 0], [0.5, 0, 0, 0], [0, 0.7, 0, 0],
        ...                                 [0, 0, 0, 1]]))
        >>> canonical_spacing(np.array([0.5, 0.7, 2.0]), ornt)
        (2.0, 0.5, 0.7)
    """
    spacing = [0.0, 0.0, 0.0]
    for in_axis, out_axis in enumerate(ornt[:, 0].astype(int)):
        spacing[out_axis] = float(zooms[in_axis])
    return spacing[0], spacing[1], spacing[2]


def canonical_volume(path: Path, raw: np.ndarray, affine: np.ndarray, zooms: np.ndarray,
                     slope: float = 1.0, inter: float = 0.0) -> Volume:
    """``raw`` (stored axis order) as a float32 RAS+ Volume, scaled by ``slope`` / ``inter``.

    ``affine`` maps stored voxel indices to RAS mm and must be usable (see
    :func:`ct3d.io.checks.usable_affine`); ``zooms`` are the voxel sizes along the stored
    axes. The scaling is done in float32 (no float64 copy); values beyond float32 become
    infinite and are left for the checks to report.

    Raises:
        ScanError: there is not enough memory for the float32 array.

    Example:
        >>> stored = np.arange(6, dtype=np.int16).reshape(3, 2, 1)   # x runs right -> left
        >>> lps_like = np.diag([-0.7, 0.8, 5.0, 1.0])
        >>> vol = canonical_volume(Path("s.nrrd"), stored, lps_like, np.array([0.7, 0.8, 5.0]),
        ...                        inter=-1024.0)
        >>> vol.array[:, :, 0].tolist(), vol.spacing, vol.affine[0].tolist()
        ([[-1020.0, -1019.0], [-1022.0, -1021.0], [-1024.0, -1023.0]], (0.7, 0.8, 5.0), \
[0.7, 0.0, 0.0, -1.4])
    """
    ornt = io_orientation(affine)
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            array = apply_orientation(raw, ornt).astype(np.float32)
        except MemoryError as exc:
            raise ScanError(path, f"not enough memory to hold shape {raw.shape} as float32"
                            ) from exc
        if slope != 1.0:
            array *= np.float32(slope)
        if inter != 0.0:
            array += np.float32(inter)
    return Volume(array=array, spacing=canonical_spacing(zooms, ornt),
                  affine=affine @ inv_ornt_aff(ornt, raw.shape), source=str(path))
