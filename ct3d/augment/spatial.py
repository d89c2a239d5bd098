"""Spatial augmenters: random flips, axial rotations and zooms (``keras.ops`` on batches)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ct3d.augment import rng
from ct3d.registry import augmenter

PROB_STREAM = 0x9E37
"""Folded into a step's seed to draw its per-scan "apply or not" coin, apart from its parameter."""


def per_sample_uniform(x: Any, seed: Any, low: float, high: float) -> Any:
    """One uniform draw in [low, high) per scan of the batch ``x``."""
    from keras import ops

    return rng.uniform(seed, (ops.shape(x)[0],), low, high)


def per_sample(values: Any) -> Any:
    """Reshape one value per scan ``(B,)`` to broadcast against a batch ``(B, W, H, D, C)``."""
    from keras import ops

    return ops.reshape(values, (-1, 1, 1, 1, 1))


def choose(chosen: Any, a: Any, b: Any) -> Any:
    """``a`` for the scans where ``chosen`` (``(B,)`` booleans) is true, else ``b``.

    A blend ``a * m + b * (1 - m)`` with ``m`` 0 or 1, exact for finite values. Not
    ``ops.where``: in a train step (``train.augment_on: device``) XLA's CPU compiler takes
    minutes over a per-scan ``select`` between a batch and its flip (seconds for the blend).
    """
    from keras import ops

    m = ops.cast(per_sample(chosen), a.dtype)
    return a * m + b * (1 - m)


def with_prob(transform: Callable[[Any], Any], x: Any, seed: Any, prob: float) -> Any:
    """``transform(x)`` for each scan drawn with probability ``prob`` (per scan), else ``x``.

    The coin comes from ``seed`` folded with :data:`PROB_STREAM`, so a step may draw its own
    parameter from ``seed`` itself; ``prob >= 1`` and ``prob <= 0`` draw no coin at all.
    """
    if prob >= 1.0:
        return transform(x)
    if prob <= 0.0:
        return x

    chosen = per_sample_uniform(x, rng.fold_in(seed, PROB_STREAM), 0.0, 1.0) < prob
    return choose(chosen, transform(x), x)


def check_prob(name: str, prob: float) -> None:
    """Raise ValueError unless ``0 <= prob <= 1`` (message names the augmenter)."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{name} needs 0 <= prob <= 1; received prob={prob}")


@augmenter("flip")
def flip(axes: tuple[int, ...] = (0, 1), prob: float = 0.5) -> Any:
    """Flip each scan along each chosen spatial axis (0=W, 1=H, 2=D) with probability prob.

    Args:
        axes: spatial axes that may be flipped, each 0 (W), 1 (H) or 2 (D).
        prob: probability of a flip, drawn per scan and axis, in [0, 1].
    """
    if any(a not in (0, 1, 2) for a in axes) or not 0.0 <= prob <= 1.0:
        raise ValueError(f"flip needs axes in (0, 1, 2) and 0 <= prob <= 1; received "
                         f"axes={axes}, prob={prob}")
    from keras import ops

    def apply(x: Any, seed: Any) -> Any:
        for i, axis in enumerate(axes):
            draw = per_sample_uniform(x, rng.fold_in(seed, i), 0.0, 1.0)
            x = choose(draw < prob, ops.flip(x, axis=axis + 1), x)
        return x

    return apply


def transform_axial(x: Any, transforms: Any, fill_value: float = 0.0) -> Any:
    """Resample each scan of ``(B, W, H, D, C)`` in the axial plane by a projective transform.

    ``transforms`` is ``(B, 8)`` as for ``keras.ops.image.affine_transform``: it maps an
    output point (column along H, row along W; pixel ``i`` at ``i``) to the input point
    sampled, bilinear, ``fill_value`` outside. All slices and channels go through one op.
    """
    from keras import ops

    shape = ops.shape(x)
    moved = ops.image.affine_transform(
        ops.reshape(x, (shape[0], shape[1], shape[2], -1)), transforms,
        interpolation="bilinear", fill_mode="constant", fill_value=fill_value,
        data_format="channels_last",
    )
    return ops.reshape(moved, shape)


def axial_centre(x: Any) -> tuple[Any, Any]:
    """Centre ``(row, column)`` of the axial plane of ``x``, in pixel coordinates."""
    from keras import ops

    shape = ops.shape(x)
    return ops.cast(shape[1] - 1, "float32") / 2, ops.cast(shape[2] - 1, "float32") / 2


def rotate_by(x: Any, degrees: Any, fill_value: float = 0.0) -> Any:
    """Rotate each scan of a batch ``(B, W, H, D, C)`` in the axial plane, bilinear.

    ``degrees`` has one angle per scan (counter-clockwise when axis 0 points down the rows).
    """
    from keras import ops

    theta = ops.cast(degrees, "float32") * (math.pi / 180.0)
    cos, sin = ops.cos(theta), ops.sin(theta)
    cy, cx = axial_centre(x)
    zeros = ops.zeros_like(theta)
    transforms = ops.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros],
        axis=1,
    )
    return transform_axial(x, transforms, fill_value)


@augmenter("rotate")
def rotate(
    degrees: tuple[float, float] = (-20.0, 20.0), fill_value: float = 0.0, prob: float = 1.0
) -> Any:
    """Rotate each scan by a random angle (uniform in degrees) in the axial plane, bilinear.

    Args:
        degrees: (low, high) range of the random angle in degrees, low <= high.
        fill_value: value of the voxels rotated in from outside the scan.
        prob: probability that a scan is rotated, drawn per scan, in [0, 1].
    """
    if degrees[0] > degrees[1]:
        raise ValueError(f"rotate needs degrees=(low, high) with low <= high; received {degrees}")
    check_prob("rotate", prob)

    def apply(x: Any, seed: Any) -> Any:
        angles = per_sample_uniform(x, seed, *degrees)
        return with_prob(lambda v: rotate_by(v, angles, fill_value), x, seed, prob)

    return apply


def zoom_by(x: Any, scale: Any, fill_value: float = 0.0) -> Any:
    """Scale each scan of ``(B, W, H, D, C)`` in the axial plane about its centre, bilinear.

    ``scale`` has one factor per scan: a point at offset ``d`` from the centre moves to
    ``scale * d``. The size is kept: ``scale > 1`` crops the border away, ``scale < 1``
    shrinks the scan and pads it with ``fill_value``.
    """
    from keras import ops

    inverse = 1.0 / ops.cast(scale, "float32")
    cy, cx = axial_centre(x)
    zeros = ops.zeros_like(inverse)
    transforms = ops.stack(
        [inverse, zeros, cx * (1 - inverse), zeros, inverse, cy * (1 - inverse), zeros, zeros],
        axis=1,
    )
    return transform_axial(x, transforms, fill_value)


@augmenter("zoom")
def zoom(
    scale: tuple[float, float] = (0.9, 1.1), fill_value: float = 0.0, prob: float = 1.0
) -> Any:
    """Zoom each scan in the axial plane by a random factor (uniform in scale), same size.

    Args:
        scale: (low, high) range of the random zoom factor, 0 < low <= high. A factor above
            1 enlarges the scan and crops its border away; below 1 it shrinks and pads it.
        fill_value: value of the voxels zoomed in from outside the scan (factors below 1).
        prob: probability that a scan is zoomed, drawn per scan, in [0, 1].
    """
    if not 0.0 < scale[0] <= scale[1]:
        raise ValueError(f"zoom needs scale=(low, high) with 0 < low <= high; received {scale}")
    check_prob("zoom", prob)

    def apply(x: Any, seed: Any) -> Any:
        factors = per_sample_uniform(x, seed, *scale)
        return with_prob(lambda v: zoom_by(v, factors, fill_value), x, seed, prob)

    return apply
