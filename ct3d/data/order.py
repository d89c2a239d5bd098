"""The order of a training run's scans and the seeds of its batches, on every backend.

Epoch ``e`` of a run with seed ``s`` visits the scans in :func:`epoch_order` ``(s, e, n)``
(drawn with :mod:`ct3d.augment.rng`, so the same on TensorFlow, JAX and PyTorch) and its
``k``-th batch counted from the run's first epoch is augmented with :func:`batch_seed`
``(s, k)``. Both input paths (``tf.data`` and :class:`~ct3d.data.batches.CachedBatches`) use
these, so they give the same batches.

On JAX, data-parallel training (``keras.distribution.DataParallel``) splits every batch
evenly between its devices: :class:`Share` says how, and :func:`epoch_batches` cuts an
epoch's batches to fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ct3d.augment import rng

__all__ = ["SHUFFLE_STREAM", "Share", "batch_seed", "epoch_batches", "epoch_order"]

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


@dataclass(frozen=True)
class Share:
    """How the batches are split for data-parallel training on JAX: every batch holds a
    multiple of ``devices`` scans, split evenly between the ``processes`` feeding them, of
    which this one is ``process``. The default, one device in one process, changes nothing.

    Example:
        >>> Share(devices=4, process=1, processes=2).part(8)  # scans 4..7 of a batch of 8
        slice(4, 8, None)
    """

    devices: int = 1
    process: int = 0
    processes: int = 1

    def part(self, size: int) -> slice:
        """This process' part of a batch of ``size`` scans (a multiple of ``devices``)."""
        each = size // self.processes
        return slice(self.process * each, (self.process + 1) * each)


def epoch_batches(n: int, batch_size: int, multiple: int = 1) -> list[slice]:
    """An epoch's batches over ``n`` scans, as slices of its order: ``batch_size`` scans
    each and a shorter last one. With ``multiple`` > 1 (``batch_size`` must be a multiple of
    it), the last batch is cut down to a multiple of it, and left out when none remains.

    Example:
        >>> epoch_batches(10, 4)
        [slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
        >>> epoch_batches(9, 4, multiple=2)  # scan 8 sits this epoch out
        [slice(0, 4, None), slice(4, 8, None)]
    """
    if batch_size % multiple:
        raise ValueError(f"batch size {batch_size} is not a multiple of {multiple}")
    batches = [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if not batches:
        return []
    last = batches[-1]
    cut = last.stop - (last.stop - last.start) % multiple
    return [*batches[:-1], slice(last.start, cut)] if cut > last.start else batches[:-1]
