"""Helpers shared by the tests: a random volume with a real affine, a check that a step
keeps every voxel at its world position, and one plugin step built by name."""

from __future__ import annotations

from typing import Any

import numpy as np

from ct3d.registry import resolve_step
from ct3d.volume import Volume


def random_volume(shape: tuple[int, int, int] = (10, 8, 6), seed: int = 0) -> Volume:
    """Uniform HU noise in [-1200, 1200] with an anisotropic, shifted affine."""
    rng = np.random.default_rng(seed)
    affine = np.array([[0.7, 0, 0, -50], [0, 0.8, 0, 20], [0, 0, 5.0, -100], [0, 0, 0, 1]])
    return Volume(rng.uniform(-1200, 1200, shape).astype(np.float32), (0.7, 0.8, 5.0),
                  affine, "test")


def same_world_values(before: Volume, after: Volume, voxels: np.ndarray) -> None:
    """The value at each of ``after``'s voxels equals ``before``'s at the same world point."""
    world = after.affine @ np.c_[voxels, np.ones(len(voxels))].T
    old = np.rint(np.linalg.inv(before.affine) @ world)[:3].T.astype(int)
    np.testing.assert_allclose(after.array[tuple(voxels.T)], before.array[tuple(old.T)],
                               rtol=1e-6)


def build_step(kind: str, name: str, **params: Any) -> Any:
    """One registered step, resolved and built (a preprocessing or augmentation step)."""
    return resolve_step(kind, {"name": name, "params": params}).build()
