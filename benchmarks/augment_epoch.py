"""Training-epoch time with and without augmentation: ct3d vs the reference input pipeline.

One epoch of the modified 3D CNN over 140 cached 128x128x64 scans, batch 4. ct3d streams the
cache through ``tf.data`` and augments with TensorFlow ops (flip + rotate + contrast). The
reference holds the arrays in memory and rotates with ``scipy.ndimage.rotate`` inside
``tf.numpy_function`` (the Keras example's way), plus the same flips and contrast. Each
configuration trains one warm-up epoch (tracing) and one timed epoch.

Usage:
    python benchmarks/augment_epoch.py [--n 140]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from ct3d.augment import build_augment
from ct3d.data.cache import Cache
from ct3d.data.dataset import Scan
from ct3d.data.pipeline import training_dataset
from ct3d.data.synthetic import generate_cohort
from ct3d.models import build_model

CHAIN = [{"name": "hu_window", "params": {}}, {"name": "rotate90", "params": {}},
         {"name": "resize", "params": {"shape": [128, 128, 64]}}]
AUGMENT = [{"name": "flip", "params": {"axes": [0, 1]}},
           {"name": "rotate", "params": {"degrees": [-20.0, 20.0]}},
           {"name": "contrast", "params": {"low": 0.5, "high": 1.0}}]
BATCH = 4


def epoch_seconds(dataset: tf.data.Dataset, steps: int) -> float:
    """Seconds of the second of two epochs of a fresh modified 3D CNN on ``dataset``."""
    keras.utils.set_random_seed(0)
    model = build_model("modified_3dcnn", input_shape=(128, 128, 64, 1))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    times = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: times.append(time.perf_counter()))
    model.fit(dataset, epochs=2, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return times[3] - times[2]


def reference_dataset(x: np.ndarray, y: np.ndarray, augment: bool) -> tf.data.Dataset:
    """In-memory arrays; scipy rotation in ``tf.numpy_function``, tf flips and contrast."""
    rng = np.random.default_rng(0)

    def scipy_rotate(volume: np.ndarray) -> np.ndarray:
        angle = rng.choice([-20, -10, -5, 5, 10, 20])
        return np.clip(ndimage.rotate(volume, angle, reshape=False), 0, 1).astype(np.float32)

    def train_map(volume: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        volume = tf.numpy_function(scipy_rotate, [volume], tf.float32)
        volume = tf.reshape(volume, (128, 128, 64))
        volume = tf.image.random_flip_left_right(tf.image.random_flip_up_down(volume))
        factor = tf.random.uniform([], 0.5, 1.0)
        mean = tf.reduce_mean(volume)
        return tf.expand_dims((volume - mean) * factor + mean, -1), label

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x))
    if augment:
        ds = ds.map(train_map, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda v, lab: (tf.expand_dims(v, -1), lab))
    return ds.batch(BATCH).repeat().prefetch(tf.data.AUTOTUNE)


def main() -> None:
    """Run the four configurations and print seconds per epoch and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=140, help="training scans (default 140)")
    args = parser.parse_args()
    steps = math.ceil(args.n / BATCH)
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate_cohort(Path(tmp) / "data", args.n // 2, args.n - args.n // 2, seed=0,
                                preset="quick", workers=2, progress=False)
        scans = [Scan(str(p), int("CT-23" in str(p)), "x", p.name) for p in paths]
        cached = Cache(Path(tmp) / "cache", CHAIN).fill(scans, workers=2, progress=False).paths
        labels = np.array([s.label for s in scans], dtype=np.float32)
        ours_plain = epoch_seconds(training_dataset(cached, labels, BATCH, 0, None, 2), steps)
        ours_aug = epoch_seconds(
            training_dataset(cached, labels, BATCH, 0, build_augment(AUGMENT), 2), steps)
        x = np.stack([np.load(p) for p in cached])
        ref_plain = epoch_seconds(reference_dataset(x, labels, augment=False), steps)
        ref_aug = epoch_seconds(reference_dataset(x, labels, augment=True), steps)
    print(f"{args.n} scans, batch {BATCH}, seconds per epoch: ct3d {ours_plain:.1f} without / "
          f"{ours_aug:.1f} with augmentation (ratio {ours_aug / ours_plain:.2f}); reference "
          f"{ref_plain:.1f} without / {ref_aug:.1f} with (ct3d {ref_aug / ours_aug:.2f}x faster "
          f"with augmentation)")


if __name__ == "__main__":
    main()
