"""Augmenters: geometry, value ranges, determinism, per-scan probability, graph/tf.data use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import build_step

import ct3d
from ct3d.augment import build_augment
from ct3d.augment.intensity import gamma_by
from ct3d.augment.spatial import rotate_by, zoom_by
from ct3d.registry import AUGMENTERS

SEED = tf.constant([1, 2], tf.int64)


def _marker_batch(b: int = 3) -> np.ndarray:
    x = np.zeros((b, 16, 16, 4, 1), np.float32)
    x[:, 2, 5, 1, 0] = 1.0
    return x


def test_flip_moves_the_marker() -> None:
    x = _marker_batch()
    for axis, where in ((0, (13, 5, 1)), (1, (2, 10, 1)), (2, (2, 5, 2))):
        out = build_step("augment", "flip", axes=[axis], prob=1.0)(tf.constant(x), SEED).numpy()
        assert out[(slice(None), *where, 0)].tolist() == [1.0, 1.0, 1.0]
        assert out.sum() == 3.0
    same = build_step("augment", "flip", axes=[0, 1, 2], prob=0.0)(tf.constant(x), SEED).numpy()
    np.testing.assert_array_equal(same, x)


def test_flip_is_per_scan_random_and_seeded() -> None:
    x = tf.constant(np.random.default_rng(0).random((32, 8, 8, 2, 1), np.float32))
    flip = build_step("augment", "flip", axes=[0], prob=0.5)
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
    rot = build_step("augment", "rotate", degrees=(-20, 20))
    a, b = rot(x, SEED).numpy(), rot(x, SEED).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rot(x, tf.constant([1, 3], tf.int64)).numpy())
    assert 0.0 <= a.min() and a.max() <= 1.0
    still = build_step("augment", "rotate", degrees=(0, 0))(x, SEED).numpy()
    np.testing.assert_allclose(still, x.numpy(), atol=1e-6)


def test_contrast_keeps_mean_and_range() -> None:
    x = tf.constant(np.random.default_rng(2).random((5, 8, 8, 4, 1), np.float32))
    out = build_step("augment", "contrast", low=0.5, high=1.0)(x, SEED).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3, 4)), x.numpy().mean(axis=(1, 2, 3, 4)),
                               atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0
    spread = out.std(axis=(1, 2, 3, 4)) / x.numpy().std(axis=(1, 2, 3, 4))
    assert np.all((spread >= 0.5 - 1e-4) & (spread <= 1.0 + 1e-4))
    with pytest.raises(ValueError, match="0 <= low <= high"):
        build_step("augment", "contrast", low=1.0, high=0.5)


def test_chain_runs_inside_tf_data_and_is_seeded() -> None:
    augment = build_augment([{"name": "flip", "params": {}}, {"name": "rotate", "params": {}},
                             {"name": "contrast", "params": {}}])
    x = np.random.default_rng(3).random((6, 16, 16, 4, 1), np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(3).enumerate().map(
        lambda i, b: augment(b, tf.stack([tf.constant(7, tf.int64), i])))
    first, second = [np.concatenate([b.numpy() for b in ds]) for _ in range(2)]
    np.testing.assert_array_equal(first, second)
    assert first.shape == x.shape and not np.allclose(first, x)


BUILTINS = [n for n in AUGMENTERS.names() if AUGMENTERS.describe(n).origin.startswith("ct3d.")]
OTHER_SEED = tf.constant([1, 3], tf.int64)
STRONG = {
    "brightness": {"delta": (0.1, 0.2)},
    "contrast": {"low": 0.5, "high": 0.6},
    "flip": {"axes": [0]},
    "gamma": {"gamma": (1.5, 2.0)},
    "gaussian_noise": {"std": 0.1},
    "rotate": {"degrees": (10.0, 20.0)},
    "zoom": {"scale": (1.2, 1.5)},
}
"""Parameters under which every scan visibly changes when the augmenter is applied."""


def _random_batch(shape: tuple[int, ...] = (8, 12, 12, 4, 1), seed: int = 4) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).random(shape, np.float32))


def _changed_per_scan(out: np.ndarray, x: np.ndarray) -> list[bool]:
    return [not np.allclose(o, i, atol=1e-6) for o, i in zip(out, x, strict=True)]


def test_builtin_augmenters_are_known() -> None:
    assert BUILTINS == ["brightness", "contrast", "flip", "gamma", "gaussian_noise", "rotate",
                        "zoom"]
    assert sorted(STRONG) == BUILTINS


def test_zoom_by_2_doubles_a_markers_offset_from_the_centre() -> None:
    x = np.zeros((1, 17, 15, 2, 1), np.float32)
    x[0, 10, 4, 1, 0] = 1.0  # centre (8, 7): offset (+2, -3)
    out = zoom_by(tf.constant(x), tf.constant([2.0])).numpy()
    assert out[0, 12, 1, 1, 0] == pytest.approx(1.0)  # offset (+4, -6)
    assert out[0, 11, 1, 1, 0] == pytest.approx(0.5)  # half-way to the neighbouring input voxel
    assert out[0, :, :, 0].max() == 0.0


def test_zoom_by_1_is_identity_and_zoom_in_crops_zoom_out_pads() -> None:
    x = _random_batch((2, 16, 14, 3, 2))
    np.testing.assert_allclose(zoom_by(x, tf.constant([1.0, 1.0])).numpy(), x.numpy(),
                               atol=1e-5)
    still = build_step("augment", "zoom", scale=(1.0, 1.0))(x, SEED).numpy()
    np.testing.assert_allclose(still, x.numpy(), atol=1e-5)
    ones = tf.ones((2, 16, 16, 2, 1))
    cropped = zoom_by(ones, tf.constant([2.0, 1.3]), fill_value=-1.0).numpy()
    np.testing.assert_allclose(cropped, 1.0, atol=1e-6)
    padded = zoom_by(ones, tf.constant([0.5, 0.5]), fill_value=-1.0).numpy()[..., 0]
    inner = np.zeros((16, 16), bool)
    inner[4:12, 4:12] = True
    np.testing.assert_allclose(padded[:, inner], 1.0, atol=1e-6)
    np.testing.assert_allclose(padded[:, ~inner], -1.0, atol=1e-6)


def test_zoom_draws_one_factor_per_scan_in_range() -> None:
    x = np.zeros((16, 17, 17, 1, 1), np.float32)
    x[:, 12, 8, 0, 0] = 1.0  # offset +4 along W from the centre (8, 8)
    out = build_step("augment", "zoom", scale=(1.5, 2.0))(tf.constant(x), SEED).numpy()
    rows = out[:, :, 8, 0, 0].argmax(axis=1) - 8
    assert np.all((rows >= 6) & (rows <= 8)) and len(set(rows.tolist())) > 1


def test_brightness_shifts_each_scan_by_one_delta_in_range() -> None:
    x = _random_batch((16, 8, 8, 4, 1))
    out = build_step("augment", "brightness", delta=(-0.1, 0.1))(x, SEED).numpy()
    shift = out - x.numpy()
    per_scan = shift.mean(axis=(1, 2, 3, 4))
    np.testing.assert_allclose(shift - per_scan[:, None, None, None, None], 0.0, atol=1e-6)
    np.testing.assert_allclose(per_scan, out.mean(axis=(1, 2, 3, 4)) - x.numpy().mean(
        axis=(1, 2, 3, 4)), atol=1e-6)
    assert np.all(np.abs(per_scan) <= 0.1 + 1e-6) and per_scan.std() > 0.02


def test_gamma_keeps_unit_range_and_draws_one_power_per_scan() -> None:
    x = tf.constant(np.random.default_rng(5).uniform(-0.5, 1.5, (16, 8, 8, 4, 1)), tf.float32)
    out = build_step("augment", "gamma", gamma=(0.8, 1.25))(x, SEED).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    clipped = np.clip(x.numpy(), 0.0, 1.0)
    inside = (clipped > 0.05) & (clipped < 0.95)
    powers = np.log(out[inside]) / np.log(clipped[inside])
    scan = np.broadcast_to(np.arange(16)[:, None, None, None, None], x.shape)[inside]
    for i in range(16):
        assert 0.8 - 1e-4 <= powers[scan == i].min() and powers[scan == i].max() <= 1.25 + 1e-4
        assert np.ptp(powers[scan == i]) < 1e-3
    np.testing.assert_allclose(gamma_by(tf.constant([[[[[0.25]]]]]), [2.0]).numpy(), 0.0625)


def test_gaussian_noise_has_the_requested_std() -> None:
    x = _random_batch((8, 32, 32, 16, 1))
    noise = build_step("augment", "gaussian_noise", std=0.05)(x, SEED).numpy() - x.numpy()
    assert noise.std() == pytest.approx(0.05, rel=0.02)
    assert abs(noise.mean()) < 0.002


@pytest.mark.parametrize("name", BUILTINS)
def test_same_seed_same_output_other_seed_other_output(name: str) -> None:
    step = build_step("augment", name)
    x = _random_batch()
    first = step(x, SEED).numpy()
    np.testing.assert_array_equal(first, step(x, SEED).numpy())
    assert not np.array_equal(first, step(x, OTHER_SEED).numpy())


@pytest.mark.parametrize("name", BUILTINS)
def test_prob_0_is_identity_and_prob_1_changes_every_scan(name: str) -> None:
    x = _random_batch()
    never = build_step("augment", name, **STRONG[name], prob=0.0)(x, SEED).numpy()
    np.testing.assert_array_equal(never, x.numpy())
    always = build_step("augment", name, **STRONG[name], prob=1.0)(x, SEED).numpy()
    assert all(_changed_per_scan(always, x.numpy()))


@pytest.mark.parametrize("name", ["brightness", "contrast", "gamma", "gaussian_noise", "rotate",
                                  "zoom"])
def test_prob_is_drawn_per_scan_and_keeps_the_parameter_draw(name: str) -> None:
    x = _random_batch((32, 8, 8, 2, 1))
    some = build_step("augment", name, **STRONG[name], prob=0.5)(x, SEED).numpy()
    always = build_step("augment", name, **STRONG[name], prob=1.0)(x, SEED).numpy()
    changed = _changed_per_scan(some, x.numpy())
    assert 6 < sum(changed) < 26
    np.testing.assert_array_equal(some[changed], always[changed])


@pytest.mark.parametrize(("name", "params", "message"), [
    ("zoom", {"scale": (1.1, 0.9)}, r"0 < low <= high; received \(1.1, 0.9\)"),
    ("zoom", {"scale": (0.0, 1.0)}, r"received \(0.0, 1.0\)"),
    ("zoom", {"prob": 1.5}, "0 <= prob <= 1; received prob=1.5"),
    ("brightness", {"delta": (0.1, -0.1)}, r"low <= high; received \(0.1, -0.1\)"),
    ("gamma", {"gamma": (-1.0, 2.0)}, r"0 < low <= high; received \(-1.0, 2.0\)"),
    ("gaussian_noise", {"std": -0.1}, "std >= 0; received std=-0.1"),
    ("rotate", {"prob": -0.5}, "rotate needs 0 <= prob <= 1; received prob=-0.5"),
    ("contrast", {"prob": 2.0}, "contrast needs 0 <= prob <= 1; received prob=2.0"),
])
def test_bad_parameters_are_rejected_with_the_received_values(
    name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_step("augment", name, **params)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_augmenter_runs_in_tf_function_and_tf_data_like_eager(name: str) -> None:
    step = build_step("augment", name)
    x = _random_batch((4, 12, 10, 3, 1))
    eager = step(x, SEED).numpy()
    spec = (tf.TensorSpec([None, None, None, None, 1]), tf.TensorSpec([2], tf.int64))
    graph = tf.function(step, input_signature=spec, jit_compile=False)
    np.testing.assert_allclose(graph(x, SEED).numpy(), eager, atol=1e-5)
    ds = tf.data.Dataset.from_tensors(x).map(lambda b: step(b, SEED))
    np.testing.assert_allclose(next(iter(ds)).numpy(), eager, atol=1e-5)


def test_full_chain_runs_inside_tf_function() -> None:
    augment = build_augment([{"name": n, "params": {}} for n in BUILTINS])
    x = _random_batch((2, 16, 16, 4, 1))
    out = tf.function(augment, jit_compile=False)(x, SEED).numpy()
    assert out.shape == x.shape and np.isfinite(out).all() and not np.allclose(out, x)


def _names_used(path: Path) -> set[str]:
    """Identifiers and attribute names in a module's code (not its strings or comments)."""
    tree = ast.parse(path.read_text())
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def test_augmentation_and_input_code_call_no_python_functions() -> None:
    root = Path(ct3d.__file__).parent
    sources = [*sorted((root / "augment").rglob("*.py")), root / "data" / "pipeline.py"]
    assert len(sources) >= 4
    for path in sources:
        used = _names_used(path) & {"numpy_function", "py_function", "py_func"}
        assert not used, f"{path} calls tf.{used.pop()}: it breaks graph mode and GPU input"


def test_importing_ct3d_does_not_import_tensorflow() -> None:
    code = "import ct3d, ct3d.augment, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
