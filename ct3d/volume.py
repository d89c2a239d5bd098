"""The one data type that flows through ct3d's preprocessing: a 3D scan with its geometry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scan in a canonical (RAS+) voxel order.

    Attributes:
        array: voxel values, shape ``(W, H, D)`` (x, y, slices); HU for raw scans, float32.
        spacing: voxel size in mm along the three array axes.
        affine: 4x4 voxel-to-world (RAS+, mm) matrix for ``array``.
        source: where the volume came from (a file path, or a description).

    Example:
        >>> import numpy as np
        >>> v = Volume(np.zeros((4, 4, 2), np.float32), (0.7, 0.7, 8.0), np.eye(4), "phantom")
        >>> v.replace(array=v.array + 1).array.max()
        np.float32(1.0)
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    source: str

    def replace(self, **changes: object) -> Volume:
        """Return a copy with the given fields replaced."""
        return dataclasses.replace(self, **changes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``array``."""
        return tuple(self.array.shape)


Shape = tuple[int, int, int]
"""A volume's (W, H, D) in voxels."""

Step = Callable[[Volume], Volume]
"""A built preprocessing step: Volume in, Volume out."""
