"""Spatial augmenters: random flips and axial-plane rotations (TensorFlow ops on batches)."""

from __future__ import annotations

import math
from typing import Any

from ct3d.registry import augmenter


def per_sample_uniform(x: Any, seed: Any, low: float, high: float) -> Any:
    """One uniform draw in [low, high) per scan of the batch ``x``."""
    import tensorflow as tf

    return tf.random.stateless_uniform([tf.shape(x)[0]], seed, low, high)


@augmenter("flip")
def flip(axes: tuple[int, ...] = (0, 1), prob: float = 0.5) -> Any:
    """Flip each scan along each chosen spatial axis (0=W, 1=H, 2=D) with probability prob."""
    if any(a not in (0, 1, 2) for a in axes) or not 0.0 <= prob <= 1.0:
        raise ValueError(f"flip needs axes in (0, 1, 2) and 0 <= prob <= 1; received "
                         f"axes={axes}, prob={prob}")
    import tensorflow as tf

    def apply(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        for i, axis in enumerate(axes):
            draw = per_sample_uniform(x, tf.random.experimental.stateless_fold_in(seed, i), 0, 1)
            mask = tf.reshape(draw < prob, [-1, 1, 1, 1, 1])
            x = tf.where(mask, tf.reverse(x, axis=[axis + 1]), x)
        return x

    return apply


def rotate_by(x: Any, degrees: Any, fill_value: float = 0.0) -> Any:
    """Rotate each scan of a batch ``(B, W, H, D, C)`` in the axial plane, bilinear.

    ``degrees`` has one angle per scan (counter-clockwise when axis 0 points down the rows).
    """
    import tensorflow as tf

    shape = tf.shape(x)
    b, w, h = shape[0], shape[1], shape[2]
    images = tf.reshape(x, tf.stack([b, w, h, -1]))
    theta = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    cy, cx = (tf.cast(w, tf.float32) - 1) / 2, (tf.cast(h, tf.float32) - 1) / 2
    zeros = tf.zeros_like(theta)
    transforms = tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros],
        axis=1,
    )
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.stack([w, h]),
        fill_value=tf.constant(fill_value, tf.float32), interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.reshape(rotated, shape)


@augmenter("rotate")
def rotate(degrees: tuple[float, float] = (-20.0, 20.0), fill_value: float = 0.0) -> Any:
    """Rotate each scan by a random angle (uniform in degrees) in the axial plane, bilinear."""
    if degrees[0] > degrees[1]:
        raise ValueError(f"rotate needs degrees=(low, high) with low <= high; received {degrees}")

    def apply(x: Any, seed: Any) -> Any:
        return rotate_by(x, per_sample_uniform(x, seed, *degrees), fill_value)

    return apply
