"""The model input for the Keras backend in use: ``tf.data`` on TensorFlow
(:mod:`~ct3d.data.pipeline`), a ``PyDataset`` on JAX and PyTorch
(:mod:`~ct3d.data.batches`). Both give the same batches.

Example::

    train = training_input(paths, labels, batch_size=4, seed=0, augment=augment, epochs=5)
    model.fit(train, epochs=5, steps_per_epoch=math.ceil(len(paths) / 4), shuffle=False)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ct3d.backend import keras_backend
from ct3d.data.order import Share

__all__ = ["evaluation_input", "training_input"]


def training_input(
    paths: Sequence[str | os.PathLike[str]], labels: Sequence[float], batch_size: int,
    seed: int, augment: Any | None, epochs: int, initial_epoch: int = 0,
    share: Share | None = None,
) -> Any:
    """Shuffled, augmented training batches for epochs ``initial_epoch .. epochs - 1``
    (see :func:`ct3d.data.pipeline.training_dataset`); fit them with ``shuffle=False``.
    ``share``: this process' share of each batch under JAX data parallelism (``tf.distribute``
    splits batches itself)."""
    if keras_backend() == "tensorflow":
        from ct3d.data.pipeline import training_dataset

        return training_dataset(paths, labels, batch_size, seed, augment, epochs, initial_epoch)
    from ct3d.data.batches import CachedBatches

    return CachedBatches(paths, labels, batch_size, seed, augment, epochs, initial_epoch,
                         share=share)


def evaluation_input(
    paths: Sequence[str | os.PathLike[str]], labels: Sequence[float], batch_size: int,
    share: Share | None = None,
) -> Any:
    """The scans with their labels, in order, batched, not augmented (``evaluate`` and
    ``predict`` alike); ``share`` as in :func:`training_input`."""
    if keras_backend() == "tensorflow":
        from ct3d.data.pipeline import eval_dataset

        return eval_dataset(paths, labels, batch_size)
    from ct3d.data.batches import CachedBatches

    return CachedBatches(paths, labels, batch_size, shuffle=False, share=share)
