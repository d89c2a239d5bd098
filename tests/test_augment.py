"""Augmenters: geometry of flips and rotations, value ranges, determinism, tf.data use."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ct3d.augment import build_augment
from ct3d.augment.spatial import rotate_by
from ct3d.registry import AUGMENTERS

SEED = tf.constant([1, 2], tf.int64)


def _marker_batch(b: int = 3) -> np.ndarray:
    x = np.zeros((b, 16, 16, 4, 1), np.float32)
    x[:, 2, 5, 1, 0] = 1.0
    return x


def test_flip_moves_the_marker() -> None:
    x = _marker_batch()
    for axis, where in ((0, (13, 5, 1)), (1, (2, 10, 1)), (2, (2, 5, 2))):
        out = AUGMENTERS.create("flip", axes=[axis], prob=1.0)(tf.constant(x), SEED).numpy()
        assert out[(slice(None), *where, 0)].tolist() == [1.0, 1.0, 1.0]
        assert out.sum() == 3.0
    same = AUGMENTERS.create("flip", axes=[0, 1, 2], prob=0.0)(tf.constant(x), SEED).numpy()
    np.testing.assert_array_equal(same, x)


def test_flip_is_per_scan_random_and_seeded() -> None:
    x = tf.constant(np.random.default_rng(0).random((32, 8, 8, 2, 1), np.float32))
    flip = AUGMENTERS.create("flip", axes=[0], prob=0.5)
    out = flip(x, SEED).numpy()
    flipped = [np.array_equal(out[i], x.numpy()[i, ::-1]) for i in range(32)]
    assert 4 < sum(flipped) < 28
    np.testing.assert_array_equal(out, flip(x, SEED).numpy())


def test_rotate_by_90_is_a_quarter_turn_and_moves_the_marker() -> None:
    x = _marker_batch(1)
    out = rotate_by(tf.constant(x), tf.constant([90.0])).numpy()
    np.testing.assert_allclose(out, np.rot90(x, 1, axes=(1, 2)), atol=1e-5)
    assert out[0, 10, 2, 1, 0] == pytest.approx(1.0)


def test_rotate_range_values_and_determinism() -> None:
    x = tf.constant(np.random.default_rng(1).random((4, 20, 20, 3, 1), np.float32))
    rot = AUGMENTERS.create("rotate", degrees=(-20, 20))
    a, b = rot(x, SEED).numpy(), rot(x, SEED).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rot(x, tf.constant([1, 3], tf.int64)).numpy())
    assert 0.0 <= a.min() and a.max() <= 1.0
    still = AUGMENTERS.create("rotate", degrees=(0, 0))(x, SEED).numpy()
    np.testing.assert_allclose(still, x.numpy(), atol=1e-6)


def test_contrast_keeps_mean_and_range() -> None:
    x = tf.constant(np.random.default_rng(2).random((5, 8, 8, 4, 1), np.float32))
    out = AUGMENTERS.create("contrast", low=0.5, high=1.0)(x, SEED).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3, 4)), x.numpy().mean(axis=(1, 2, 3, 4)),
                               atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0
    spread = out.std(axis=(1, 2, 3, 4)) / x.numpy().std(axis=(1, 2, 3, 4))
    assert np.all((spread >= 0.5 - 1e-4) & (spread <= 1.0 + 1e-4))
    with pytest.raises(ValueError, match="0 <= low <= high"):
        AUGMENTERS.create("contrast", low=1.0, high=0.5)


def test_chain_runs_inside_tf_data_and_is_seeded() -> None:
    augment = build_augment([{"name": "flip", "params": {}}, {"name": "rotate", "params": {}},
                             {"name": "contrast", "params": {}}])
    x = np.random.default_rng(3).random((6, 16, 16, 4, 1), np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(3).enumerate().map(
        lambda i, b: augment(b, tf.stack([tf.constant(7, tf.int64), i])))
    first, second = [np.concatenate([b.numpy() for b in ds]) for _ in range(2)]
    np.testing.assert_array_equal(first, second)
    assert first.shape == x.shape and not np.allclose(first, x)
