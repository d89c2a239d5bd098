"""2D slices of 3D volumes in radiological orientation, montages and matching slice indices.

Volumes are ``(x, y, z)`` in RAS+ voxel order. A slice is drawn as radiologists view it:
axial with anterior up and the patient's right on the image's left, coronal and sagittal
with superior up (sagittal with anterior on the left). In array terms every plane is the
2D slice flipped along both axes and transposed.

Example:
    >>> import numpy as np
    >>> a = np.arange(24).reshape(2, 3, 4)
    >>> plane_image(a, "axial", 1).shape, plane_image(a, "coronal", 0).shape
    ((3, 2), (4, 2))
    >>> montage_indices(128, 4)
    [0, 42, 85, 127]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ct3d.volume import Volume

__all__ = ["PLANES", "Plane", "matching_index", "montage_indices", "plane_aspect",
           "plane_image"]

Plane = Literal["axial", "coronal", "sagittal"]

PLANES: dict[str, int] = {"axial": 2, "coronal": 1, "sagittal": 0}
"""The array axis each plane cuts across."""

_ALIGNED = 0.99
"""|cos| between two voxel axes above which they are taken as the same direction."""


def plane_image(array: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The slice ``index`` across ``plane`` as a 2D image (rows top to bottom)."""
    return np.take(array, index, axis=PLANES[plane])[::-1, ::-1].T


def plane_aspect(spacing: tuple[float, ...], plane: str) -> float:
    """Height / width of one pixel of :func:`plane_image` (for ``imshow(aspect=...)``)."""
    cols, rows = (a for a in range(3) if a != PLANES[plane])
    return float(spacing[rows]) / float(spacing[cols])


def montage_indices(n: int, count: int = 64) -> list[int]:
    """``count`` slice indices spread evenly over ``n`` slices (all of them if fewer)."""
    return np.linspace(0, n - 1, min(count, n)).round().astype(int).tolist()


def matching_index(src: Volume, dst: Volume, axis: int, index: int) -> int:
    """The slice of ``dst`` across ``axis`` showing the same anatomy as ``src``'s ``index``.

    Found through the affines when the two grids' ``axis`` point the same way (crops,
    resizing, resampling); otherwise (e.g. after a quarter turn) the same relative position.
    """
    n_src, n_dst = src.shape[axis], dst.shape[axis]
    u, v = src.affine[:3, axis], dst.affine[:3, axis]
    cos = abs(float(u @ v)) / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-12)
    if cos > _ALIGNED:
        centre = (np.array(src.shape, float) - 1) / 2
        centre[axis] = index
        world = src.affine @ np.append(centre, 1.0)
        found = (np.linalg.inv(dst.affine) @ world)[axis]
    else:
        found = index * (n_dst - 1) / max(n_src - 1, 1)
    return int(np.clip(round(float(found)), 0, n_dst - 1))
