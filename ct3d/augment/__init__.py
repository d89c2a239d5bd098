"""Augmentation: registered plugins mapping a batch tensor ``(B, W, H, D, C)`` to a batch.

An augmenter plugin is a function of keyword parameters returning an :data:`AugmentStep`,
``step(x, seed) -> x``, built from TensorFlow ops only (it runs inside ``tf.data`` or on a
GPU) and drawing all randomness from ``seed`` (``int32[2]``, stateless ops), so the same seed
gives the same augmented batch. A chain folds the step's index into one base seed.

Example:
    >>> import tensorflow as tf
    >>> augment = build_augment([{"name": "flip", "params": {"axes": [0]}}])
    >>> augment(tf.zeros((2, 8, 8, 4, 1)), tf.constant([0, 1])).shape
    TensorShape([2, 8, 8, 4, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ct3d.augment import intensity, spatial
from ct3d.registry import AUGMENTERS

AugmentStep = Callable[[Any, Any], Any]

__all__ = ["AugmentStep", "build_augment", "intensity", "spatial"]


def build_augment(steps: Sequence[dict[str, Any]]) -> AugmentStep:
    """Build a chain of augmenters into one ``augment(x, seed) -> x`` function."""
    import tensorflow as tf

    built = [AUGMENTERS.create(s["name"], **(s.get("params") or {})) for s in steps]

    def augment(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        for i, step in enumerate(built):
            x = step(x, tf.random.experimental.stateless_fold_in(seed, i))
        return x

    return augment
