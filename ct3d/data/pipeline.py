"""Model input streamed from the preprocessed-scan cache through ``tf.data`` (the TensorFlow
backend; :mod:`~ct3d.data.batches` is the same input without TensorFlow).

Each element is read from its ``.npy`` file when needed (parallel reads, prefetch), so memory
does not grow with the number of scans: the shuffle buffer holds file names, not arrays. Only
TensorFlow ops are used (no ``numpy_function``), so the whole input path can run in graph
mode and feed a GPU.

Both datasets yield *global* batches and are deterministic functions of their arguments,
with auto-sharding by data (:func:`options`): under a ``tf.distribute`` strategy Keras
splits every batch between the replicas, and on several workers each worker keeps its own
part of every global batch (every worker runs the same pipeline and drops the other
workers' parts, so each one reads every file).

Example::

    ds = training_dataset(report.paths, labels, batch_size=4, seed=0, augment=augment, epochs=5)
    model.fit(ds, steps_per_epoch=math.ceil(len(labels) / 4), epochs=5)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ct3d.data.cache import npy_layout
from ct3d.data.order import epoch_order
from ct3d.errors import Ct3dError


class PipelineError(Ct3dError, ValueError):
    """Cached scans that cannot form one batchable input (shapes differ, none at all)."""


def input_shape(paths: Sequence[str | os.PathLike[str]]) -> tuple[int, ...]:
    """The common array shape of the cached files; an error names a file that differs."""
    if not paths:
        raise PipelineError("no scans to train or evaluate on")
    first, _ = npy_layout(paths[0])
    for path in paths[1:]:
        shape, _ = npy_layout(path)
        if shape != first:
            raise PipelineError(
                f"{path}: preprocessed shape {shape} differs from {paths[0]}'s {first}; "
                f"end the preprocess chain with `resize` to a fixed shape"
            )
    return first


def scan_dataset(paths: Sequence[str | os.PathLike[str]], labels: Sequence[float]) -> Any:
    """Unbatched ``(path, label)`` pairs as a ``tf.data`` dataset (no arrays loaded yet)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(
        (np.array([str(p) for p in paths]), np.asarray(labels, dtype=np.float32)))


def _reader(paths: Sequence[str | os.PathLike[str]]) -> Any:
    """A graph function ``(path, label) -> (array (W, H, D, 1), label)`` for these files."""
    import tensorflow as tf

    shape = input_shape(paths)
    offset = npy_layout(paths[0])[1]
    nbytes = int(np.prod(shape)) * 4

    def read(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        raw = tf.strings.substr(tf.io.read_file(path), offset, nbytes)
        array = tf.reshape(tf.io.decode_raw(raw, tf.float32), (*shape, 1))
        return array, label

    return read


def options() -> Any:
    """The ``tf.data.Options`` of both datasets: deterministic order, sharded by data.

    ``AutoShardPolicy.DATA``: the datasets start from a tensor of file names, not from
    files TensorFlow could assign to workers, so a multi-worker strategy shards the
    elements; single-worker strategies ignore the policy.

    Example:
        >>> options().experimental_distribute.auto_shard_policy.name
        'DATA'
    """
    import tensorflow as tf

    opts = tf.data.Options()
    opts.deterministic = True
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return opts


def training_dataset(
    paths: Sequence[str | os.PathLike[str]], labels: Sequence[float], batch_size: int,
    seed: int, augment: Any | None, epochs: int, initial_epoch: int = 0,
) -> Any:
    """Shuffled, batched, augmented ``(B, W, H, D, 1)`` batches for epochs
    ``initial_epoch .. epochs - 1``, read from the cache.

    Epoch ``e`` visits the scans in :func:`~ct3d.data.order.epoch_order` ``(seed, e, N)``
    and its ``j``-th batch is augmented with seed ``[seed, e * steps + j]``
    (``steps = ceil(N / batch_size)``), so every epoch is a pure function of the seed and its
    index: a run resumed at epoch ``e`` sees exactly the batches an uninterrupted run would
    have, and :class:`~ct3d.data.batches.CachedBatches` gives the same batches.
    """
    import tensorflow as tf

    n = len(paths)
    steps = math.ceil(n / batch_size)
    all_paths = tf.constant([str(p) for p in paths])
    all_labels = tf.constant(np.asarray(labels, dtype=np.float32))
    read = _reader(paths)
    base = tf.constant(seed, tf.int64)
    orders = np.stack([epoch_order(seed, e, n) for e in range(initial_epoch, epochs)]
                      ) if epochs > initial_epoch else np.zeros((0, n), np.int64)

    def epoch(order: tf.Tensor) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices(order).map(
            lambda i: (tf.gather(all_paths, i), tf.gather(all_labels, i)))
        ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size)

    ds = tf.data.Dataset.from_tensor_slices(orders).flat_map(epoch)
    if augment is not None:

        def apply(i: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> Any:
            return augment(batch[0], tf.stack([base, i])), batch[1]

        ds = ds.enumerate(start=initial_epoch * steps).map(
            apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options())


def eval_dataset(
    paths: Sequence[str | os.PathLike[str]], labels: Sequence[float], batch_size: int
) -> Any:
    """Batched ``(B, W, H, D, 1)`` scans with labels from the cache, in order, no augmentation."""
    import tensorflow as tf

    ds = scan_dataset(paths, labels)
    ds = ds.map(_reader(paths), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options())
