"""Intensity augmenters (TensorFlow ops on batches)."""

from __future__ import annotations

from typing import Any

from ct3d.augment.spatial import per_sample_uniform
from ct3d.registry import augmenter


@augmenter("contrast")
def contrast(low: float = 0.5, high: float = 1.0) -> Any:
    """Scale each scan's deviation from its mean by a random factor in [low, high]."""
    if not 0.0 <= low <= high:
        raise ValueError(f"contrast needs 0 <= low <= high; received low={low}, high={high}")
    import tensorflow as tf

    def apply(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        factor = tf.reshape(per_sample_uniform(x, seed, low, high), [-1, 1, 1, 1, 1])
        mean = tf.reduce_mean(x, axis=[1, 2, 3, 4], keepdims=True)
        return (x - mean) * factor + mean

    return apply
