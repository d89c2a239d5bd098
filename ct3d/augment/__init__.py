"""Augmentation: registered plugins mapping a batch tensor ``(B, W, H, D, C)`` to a batch.

An augmenter plugin is a function of keyword parameters returning an
:data:`~ct3d.augment.chain.AugmentStep`, ``step(x, seed) -> x``, built from TensorFlow ops
only (it runs inside ``tf.data`` or on a GPU) and drawing all randomness from ``seed``
(``int32[2]``, stateless ops), so the same seed gives the same augmented batch.
:func:`build_augment` makes a chain that folds each step's index into one base seed.

Modules: :mod:`~ct3d.augment.chain`, :mod:`~ct3d.augment.spatial` (``flip``, ``rotate``,
``zoom``) and :mod:`~ct3d.augment.intensity` (``contrast``, ``brightness``, ``gamma``,
``gaussian_noise``).

Example:
    >>> import tensorflow as tf
    >>> augment = build_augment([{"name": "flip", "params": {"axes": [0]}}])
    >>> augment(tf.zeros((2, 8, 8, 4, 1)), tf.constant([0, 1])).shape
    TensorShape([2, 8, 8, 4, 1])
"""

from ct3d.augment import intensity, spatial
from ct3d.augment.chain import AugmentChain, AugmentStep, build_augment

__all__ = ["AugmentChain", "AugmentStep", "build_augment", "intensity", "spatial"]
