"""Augmentation: registered plugins mapping a batch tensor ``(B, W, H, D, C)`` to a batch.

An augmenter plugin is a function of keyword parameters returning an
:data:`~ct3d.augment.chain.AugmentStep`, ``step(x, seed) -> x``, built from ``keras.ops``
only, so it runs on every Keras backend: inside ``tf.data`` on the TensorFlow backend, or
inside a train step on an accelerator. It draws all its randomness from ``seed``
(``int32[2]``) through :mod:`~ct3d.augment.rng`, whose numbers do not depend on the
backend, so the same seed gives the same augmented batch everywhere (within float rounding).
:func:`build_augment` makes a chain that folds each step's index into one base seed.

Modules: :mod:`~ct3d.augment.chain`, :mod:`~ct3d.augment.rng`, :mod:`~ct3d.augment.spatial`
(``flip``, ``rotate``, ``zoom``) and :mod:`~ct3d.augment.intensity` (``contrast``,
``brightness``, ``gamma``, ``gaussian_noise``); :mod:`~ct3d.augment.device` runs a chain
inside the train step (``train.augment_on``).

Example:
    >>> import numpy as np
    >>> augment = build_augment([{"name": "flip", "params": {"axes": [0]}}])
    >>> tuple(augment(np.zeros((2, 8, 8, 4, 1), "float32"), [0, 1]).shape)
    (2, 8, 8, 4, 1)
"""

from ct3d.augment import intensity, rng, spatial
from ct3d.augment.chain import AugmentChain, AugmentStep, build_augment

__all__ = ["AugmentChain", "AugmentStep", "build_augment", "intensity", "rng", "spatial"]
