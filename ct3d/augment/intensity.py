"""Intensity augmenters: contrast, brightness, gamma and noise (``keras.ops`` on batches)."""

from __future__ import annotations

import math
from typing import Any

from ct3d.augment import rng
from ct3d.augment.spatial import check_prob, per_sample, per_sample_uniform, with_prob
from ct3d.registry import augmenter


def contrast_by(x: Any, factor: Any) -> Any:
    """Scale each scan's deviation from its own mean by its ``factor`` (one per scan)."""
    from keras import ops

    mean = ops.mean(x, axis=(1, 2, 3, 4), keepdims=True)
    return (x - mean) * per_sample(factor) + mean


@augmenter("contrast")
def contrast(low: float = 0.5, high: float = 1.0, prob: float = 1.0) -> Any:
    """Scale each scan's deviation from its mean by a random factor in [low, high].

    Args:
        low: smallest contrast factor, >= 0 (1 = unchanged, 0 = flat at the mean).
        high: largest contrast factor, >= low.
        prob: probability that a scan is changed, drawn per scan, in [0, 1].
    """
    if not 0.0 <= low <= high:
        raise ValueError(f"contrast needs 0 <= low <= high; received low={low}, high={high}")
    check_prob("contrast", prob)

    def apply(x: Any, seed: Any) -> Any:
        factors = per_sample_uniform(x, seed, low, high)
        return with_prob(lambda v: contrast_by(v, factors), x, seed, prob)

    return apply


def brightness_by(x: Any, delta: Any) -> Any:
    """Add its ``delta`` (one per scan) to every voxel of each scan; no clipping."""
    return x + per_sample(delta)


@augmenter("brightness")
def brightness(delta: tuple[float, float] = (-0.1, 0.1), prob: float = 1.0) -> Any:
    """Add a random offset (uniform in delta) to every voxel of each scan.

    Args:
        delta: (low, high) range of the random offset, in the scan's units, low <= high.
        prob: probability that a scan is changed, drawn per scan, in [0, 1].
    """
    if delta[0] > delta[1]:
        raise ValueError(f"brightness needs delta=(low, high) with low <= high; received {delta}")
    check_prob("brightness", prob)

    def apply(x: Any, seed: Any) -> Any:
        deltas = per_sample_uniform(x, seed, *delta)
        return with_prob(lambda v: brightness_by(v, deltas), x, seed, prob)

    return apply


def gamma_by(x: Any, gamma: Any) -> Any:
    """Clip each scan to [0, 1] and raise it to its power ``gamma`` (one per scan, > 0).

    Meant for windowed scans in [0, 1]; the output stays in [0, 1] (0 and 1 are fixed points).
    """
    from keras import ops

    return ops.power(ops.clip(x, 0.0, 1.0), per_sample(ops.cast(gamma, x.dtype)))


@augmenter("gamma")
def gamma(gamma: tuple[float, float] = (0.8, 1.25), prob: float = 1.0) -> Any:
    """Apply x**g with a random g per scan (log-uniform in gamma) to scans clipped to [0, 1].

    Args:
        gamma: (low, high) range of the random power g, 0 < low <= high (1 = unchanged).
        prob: probability that a scan is changed, drawn per scan, in [0, 1].
    """
    if not 0.0 < gamma[0] <= gamma[1]:
        raise ValueError(f"gamma needs gamma=(low, high) with 0 < low <= high; received {gamma}")
    check_prob("gamma", prob)
    from keras import ops

    log_low, log_high = math.log(gamma[0]), math.log(gamma[1])

    def apply(x: Any, seed: Any) -> Any:
        powers = ops.exp(per_sample_uniform(x, seed, log_low, log_high))
        return with_prob(lambda v: gamma_by(v, powers), x, seed, prob)

    return apply


@augmenter("gaussian_noise")
def gaussian_noise(std: float = 0.02, prob: float = 1.0) -> Any:
    """Add independent zero-mean Gaussian noise of standard deviation std to every voxel.

    Args:
        std: standard deviation of the noise in the scan's units, >= 0.
        prob: probability that a scan is given noise, drawn per scan, in [0, 1].
    """
    if not std >= 0.0:
        raise ValueError(f"gaussian_noise needs std >= 0; received std={std}")
    check_prob("gaussian_noise", prob)
    from keras import ops

    def apply(x: Any, seed: Any) -> Any:
        noise = ops.cast(rng.normal(seed, ops.shape(x), std), x.dtype)
        return with_prob(lambda v: v + noise, x, seed, prob)

    return apply
