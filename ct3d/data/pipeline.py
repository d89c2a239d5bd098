"""From scans to model input: preprocess every scan once, then feed ``tf.data`` batches.

Example::

    x = preprocess_scans(scans, build_chain([{"name": "resize", "params": {}}]))
    ds = training_dataset(x, labels, batch_size=4, seed=0, augment=None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ct3d.data.dataset import Scan
from ct3d.io import read_volume
from ct3d.preprocess import apply_chain
from ct3d.volume import Step


class PipelineError(ValueError):
    """Preprocessed scans that cannot form one batchable array (shapes differ)."""


def preprocess_scans(
    scans: Sequence[Scan], chain: Sequence[Step], progress: bool = True
) -> np.ndarray:
    """Read and preprocess every scan: float32 array ``(N, W, H, D)``.

    All scans must come out of the chain with the same shape (end the chain with ``resize``).
    """
    out: np.ndarray | None = None
    for i, scan in enumerate(tqdm(scans, desc="preprocess", unit="scan", disable=not progress)):
        array = apply_chain(read_volume(scan.path), chain).array
        if out is None:
            out = np.empty((len(scans), *array.shape), dtype=np.float32)
        elif array.shape != out.shape[1:]:
            raise PipelineError(
                f"{scan.path}: preprocessed shape {array.shape} differs from the first scan's "
                f"{out.shape[1:]}; end the preprocess chain with `resize` to a fixed shape"
            )
        out[i] = array
    if out is None:
        raise PipelineError("no scans to preprocess")
    return out


def training_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: Any | None
) -> Any:
    """Endless shuffled, batched, augmented ``(B, W, H, D, 1)`` batches.

    Batch ``i`` (counted across epochs) is augmented with seed ``[seed, i]``, so a re-run
    with the same seed sees the same batches; use ``steps_per_epoch = ceil(N / batch_size)``.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x[..., None], y.astype(np.float32)))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size).repeat()
    if augment is not None:
        base = tf.constant(seed, tf.int64)

        def apply(i: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> Any:
            return augment(batch[0], tf.stack([base, i])), batch[1]

        ds = ds.enumerate().map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """Batched ``(B, W, H, D, 1)`` scans with labels, in order, no augmentation."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x[..., None], y.astype(np.float32)))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
