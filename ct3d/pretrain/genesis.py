"""Models Genesis corruptions (Zhou et al. 2019): what a restoration network learns to undo.

Each takes a scan in [0, 1] (as ct3d's windowing leaves it) and a seeded
``numpy.random.Generator`` and returns a corrupted copy; :func:`corrupt` chains them as the
paper does: a non-linear intensity transform (prob. 0.9), local voxel shuffling (0.5), then
in-painting or out-painting (0.9; in-painting one time in five). Restoring the original
from the corrupted scan teaches an encoder appearance, texture and context of CT anatomy
without labels.

Example:
    >>> x = np.linspace(0, 1, 16**3, dtype=np.float32).reshape(16, 16, 16)
    >>> y = corrupt(x, np.random.default_rng(0))
    >>> y.shape, y.dtype, bool(np.array_equal(y, corrupt(x, np.random.default_rng(0))))
    ((16, 16, 16), dtype('float32'), True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["corrupt", "in_paint", "local_shuffle", "nonlinear_intensity", "out_paint"]


def nonlinear_intensity(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Map intensities through a random monotone cubic Bezier curve from (0, 0) to (1, 1)
    (reversed half the time): a scan whose appearance changed, its anatomy not.

    Example:
        >>> y = nonlinear_intensity(np.array([0.0, 0.5, 1.0]), np.random.default_rng(1))
        >>> sorted(np.round(y[[0, 2]], 6).tolist())
        [0.0, 1.0]
    """
    p1, p2 = rng.random(2), rng.random(2)
    t = np.linspace(0, 1, 1000)
    xs = 3 * (1 - t) ** 2 * t * p1[0] + 3 * (1 - t) * t**2 * p2[0] + t**3
    ys = 3 * (1 - t) ** 2 * t * p1[1] + 3 * (1 - t) * t**2 * p2[1] + t**3
    order = np.argsort(xs)
    if rng.random() < 0.5:
        ys = 1 - ys
    return np.interp(x, xs[order], ys[order]).astype(np.float32)


def _box(shape: tuple[int, ...], rng: np.random.Generator, low: float, high: float,
         minimum: int = 1) -> tuple[slice, ...]:
    """A random box whose sides are ``low``..``high`` of the scan's (at least ``minimum``
    voxels, at most the scan's)."""
    sides = [min(n, max(minimum, int(n * rng.uniform(low, high)))) for n in shape]
    starts = [int(rng.integers(0, n - s + 1)) for n, s in zip(shape, sides, strict=True)]
    return tuple(slice(a, a + s) for a, s in zip(starts, sides, strict=True))


def local_shuffle(x: np.ndarray, rng: np.random.Generator, blocks: int = 100) -> np.ndarray:
    """Shuffle the voxels inside ``blocks`` small random boxes (each side 2 voxels to 1/10
    of the scan's): local texture destroyed, global shape kept.

    Example:
        >>> x = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
        >>> y = local_shuffle(x, np.random.default_rng(0))
        >>> sorted(y.ravel().tolist()) == x.ravel().tolist(), bool((y != x).any())
        (True, True)
    """
    out = x.copy()
    for _ in range(blocks):
        box = _box(x.shape, rng, 0.0, 0.1, minimum=2)
        block = out[box]
        out[box] = rng.permutation(block.ravel()).reshape(block.shape)
    return out


def in_paint(x: np.ndarray, rng: np.random.Generator, boxes: int = 5) -> np.ndarray:
    """Replace up to ``boxes`` random boxes (sides 1/6-1/3 of the scan's) with noise."""
    out = x.copy()
    for _ in range(int(rng.integers(1, boxes + 1))):
        box = _box(x.shape, rng, 1 / 6, 1 / 3)
        out[box] = rng.random(out[box].shape)
    return out


def out_paint(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep one random box (sides 3/7-4/7 of the scan's) and replace the rest with noise."""
    out = rng.random(x.shape).astype(np.float32)
    box = _box(x.shape, rng, 3 / 7, 4 / 7)
    out[box] = x[box]
    return out


def corrupt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The Models Genesis chain (see the module docstring), float32, same shape as ``x``."""
    x = np.asarray(x, np.float32)
    if rng.random() < 0.9:
        x = nonlinear_intensity(x, rng)
    if rng.random() < 0.5:
        x = local_shuffle(x, rng)
    if rng.random() < 0.9:
        x = in_paint(x, rng) if rng.random() < 0.2 else out_paint(x, rng)
    return x.astype(np.float32)
