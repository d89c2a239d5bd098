"""The order of a training run's scans and the seeds of its batches, on every backend.

Epoch ``e`` of a run with seed ``s`` visits the scans in :func:`epoch_order` ``(s, e, n)``
(drawn with :mod:`ct3d.augment.rng`, so the same on TensorFlow, JAX and PyTorch) and its
``k``-th batch counted from the run's first epoch is augmented with :func:`batch_seed`
``(s, k)``. Both input paths (``tf.data`` and :class:`~ct3d.data.batches.CachedBatches`) use
these, so they give the same batches.
"""

from __future__ import annotations

import numpy as np

from ct3d.augment import rng

__all__ = ["SHUFFLE_STREAM", "batch_seed", "epoch_order"]

SHUFFLE_STREAM = 0x5348
"""Folded into an epoch's seed for its order, apart from the batches' augmentation seeds."""


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order (a permutation of ``range(n)``) in which epoch ``epoch`` visits the scans.

    Example:
        >>> order = epoch_order(0, 3, 6)
        >>> sorted(order.tolist()) == list(range(6))
        True
        >>> np.array_equal(order, epoch_order(0, 3, 6)), np.array_equal(order, epoch_order(0, 4, 6))
        (True, False)
    """
    keys = np.asarray(rng.uniform(rng.fold_in([seed, epoch], SHUFFLE_STREAM), (n,)))
    return np.argsort(keys, kind="stable")


def batch_seed(seed: int, index: int) -> np.ndarray:
    """The augmentation seed (``int64[2]``) of the ``index``-th training batch of a run."""
    return np.array([seed, index], np.int64)
