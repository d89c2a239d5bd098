"""Training and evaluation batches without TensorFlow: a ``keras.utils.PyDataset`` over the
memory-mapped cache, for the JAX and PyTorch backends.

Both input paths, this one and ``tf.data`` (:mod:`~ct3d.data.pipeline`), take each epoch's
order from :func:`~ct3d.data.order.epoch_order` and augment batch ``k`` (counted from the
first epoch) with the seed :func:`~ct3d.data.order.batch_seed` ``(seed, k)``, and the
augmenters draw the same numbers on every backend (:mod:`ct3d.augment.rng`): both paths give
the same batches, so a run does not depend on the input path that fed it. Every epoch is a
pure function of the seed and its index, so a run resumed at epoch ``e`` sees the batches an
uninterrupted run would have.

Reading is done by ``workers`` threads (NumPy and file reads release the GIL); a scan is
read from its ``.npy`` file when its batch is asked for, so memory does not grow with the
number of scans. By default two threads, one on JAX: with two, JAX runs of the quick preset
did not repeat (four runs gave two different loss trajectories from the third epoch on,
cause not found); with one, they repeat exactly, and were faster on a 2-core CPU (9 against
13 s per epoch).

For data-parallel training on JAX (:class:`~ct3d.data.order.Share`), every batch holds a
multiple of the devices' number of scans: a training epoch's last batch is cut down to one
(:func:`~ct3d.data.order.epoch_batches`; the next epoch's order differs, so other scans sit
out then), and evaluation batches are filled up with copies of their last scan weighed 0
(every metric is exact; the mean loss is not, see :attr:`CachedBatches.padding`). Each
process gives its own part of every batch.

Example::

    batches = CachedBatches(paths, labels, batch_size=4, seed=0, augment=augment, epochs=5)
    model.fit(batches, epochs=5, steps_per_epoch=batches.steps, shuffle=False)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ct3d.backend import import_keras
from ct3d.data.order import Share, batch_seed, epoch_batches, epoch_order

__all__ = ["CachedBatches"]

_OPENING = threading.Lock()
"""Held while ``.npy`` headers are parsed: ``np.load`` parses them with ``ast.literal_eval``,
and CPython 3.11 can fail with "SystemError: AST constructor recursion depth mismatch"
when two threads parse at once (seen with the PyTorch backend's reader threads)."""


def _read(paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
    """The cached arrays of ``paths`` as one ``(B, W, H, D, 1)`` float32 batch (the files are
    opened one thread at a time, and read in parallel)."""
    with _OPENING:
        arrays = [np.load(p, mmap_mode="r") for p in paths]
    return np.stack(arrays)[..., None]


keras = import_keras()


class CachedBatches(keras.utils.PyDataset):
    """Shuffled, batched, augmented ``(B, W, H, D, 1)`` batches with their labels for epochs
    ``initial_epoch .. epochs - 1``, as :func:`ct3d.data.pipeline.training_dataset` gives them.

    Its length covers all those epochs (``steps`` batches each, the last batch of an epoch
    may be short): pass ``steps_per_epoch=batches.steps`` to ``fit``. With ``shuffle=False``
    and no augmentation it gives the scans in order, once (evaluation); under a ``share``
    of several devices, then as ``(x, y, sample_weight)`` with the padding weighed 0.
    """

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], labels: Sequence[float],
        batch_size: int, seed: int = 0, augment: Any | None = None, epochs: int = 1,
        initial_epoch: int = 0, shuffle: bool = True, workers: int | None = None,
        share: Share | None = None,
    ) -> None:
        if workers is None:
            workers = 1 if keras.backend.backend() == "jax" else 2
        super().__init__(workers=workers, use_multiprocessing=False)
        self.paths = [str(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.float32)
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.initial_epoch, self.epochs, self.shuffle = initial_epoch, epochs, shuffle
        self.share = share = share or Share()
        n = len(self.paths)
        self.batches = epoch_batches(n, batch_size, share.devices if shuffle else 1)
        self.steps = len(self.batches)
        self.padding = 0 if shuffle else sum(
            -(b.stop - b.start) % share.devices for b in self.batches)
        """Copies added to fill the evaluation batches up: ``evaluate``'s mean loss is the
        true one times ``n / (n + padding)``."""
        self.orders = [epoch_order(seed, e, n) if shuffle else np.arange(n)
                       for e in range(initial_epoch, epochs)]

    def __len__(self) -> int:
        return self.steps * len(self.orders)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        epoch, step = divmod(index, self.steps)
        chosen = self.orders[epoch][self.batches[step]]
        weights = np.ones(len(chosen), np.float32)
        if not self.shuffle:
            fill = -len(chosen) % self.share.devices
            chosen = np.concatenate([chosen, np.repeat(chosen[-1:], fill)])
            weights = np.concatenate([weights, np.zeros(fill, np.float32)])
        part = self.share.part(len(chosen))
        if self.augment:  # the whole batch's draws, as one process would make them
            seed = batch_seed(self.seed, (self.initial_epoch + epoch) * self.steps + step)
            x = _read([self.paths[i] for i in chosen])
            x = keras.ops.convert_to_numpy(self.augment(x, seed))[part]
        else:
            x = _read([self.paths[i] for i in chosen[part]])
        chosen, weights = chosen[part], weights[part]
        if self.shuffle or self.share.devices == 1:
            return x, self.labels[chosen]
        return x, self.labels[chosen], weights
