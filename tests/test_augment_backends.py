"""Augmentation on every Keras backend: the same seed gives the same batch on TensorFlow,
JAX and PyTorch (within float rounding), and the random numbers behind it are sound.

Each other backend runs in its own process (a process has one Keras backend), and is
skipped when its package is not installed: CI installs JAX; PyTorch comes with ``ct3d[torch]``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ct3d.augment import build_augment, rng
from ct3d.registry import AUGMENTERS

BUILTINS = AUGMENTERS.names()

PROBE = """
import json, sys
import numpy as np
import keras
from ct3d.augment import build_augment, rng

names, out = json.loads(sys.argv[1]), sys.argv[2]
x = np.random.default_rng(0).random((3, 12, 10, 4, 1), dtype=np.float32)
arrays = {"uniform": rng.uniform([5, 6], (1000,), -2.0, 3.0), "normal": rng.normal([5, 6], (1000,)),
          "fold_in": rng.fold_in([5, 6], 7), "chain": build_augment(names)(x, [8, 9])}
for name in names:
    arrays[name] = build_augment([name])(x, [8, 9])
np.savez(out, **{k: keras.ops.convert_to_numpy(v) for k, v in arrays.items()})
print(json.dumps({"backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules}))
"""


def _on_backend(backend: str, out: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(BUILTINS), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as arrays:
        return json.loads(done.stdout.strip().splitlines()[-1]), dict(arrays)


@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.torch)])
def test_same_seed_same_batch_on_every_backend(backend: str, tmp_path: Path) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install {backend})")
    info, other = _on_backend(backend, tmp_path / f"{backend}.npz")
    assert info == {"backend": backend, "tensorflow": False}
    _, here = _on_backend("tensorflow", tmp_path / "tensorflow.npz")
    assert sorted(other) == sorted(here)
    np.testing.assert_array_equal(other["fold_in"], here["fold_in"])
    np.testing.assert_array_equal(other["uniform"], here["uniform"])
    for name in ["normal", "chain", *BUILTINS]:
        np.testing.assert_allclose(other[name], here[name], atol=1e-5, err_msg=name)
        assert not np.allclose(here[name], here["chain"]) or name == "chain"


def test_uniform_numbers_are_uniform_and_unrelated() -> None:
    u = np.asarray(rng.uniform([1, 2], (200_000,)))
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.histogram(u, bins=50, range=(0, 1))[0]
    expected = len(u) / 50
    assert ((counts - expected) ** 2 / expected).sum() < 100
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01
    other = np.asarray(rng.uniform([1, 3], (200_000,)))
    assert abs(np.corrcoef(u, other)[0, 1]) < 0.01
    folded = np.asarray(rng.uniform(rng.fold_in([1, 2], 0), (200_000,)))
    assert abs(np.corrcoef(u, folded)[0, 1]) < 0.01


def test_uniform_respects_its_range_and_normal_its_std() -> None:
    u = np.asarray(rng.uniform([0, 0], (100_000,), -3.0, 5.0))
    assert u.min() >= -3.0 and u.max() < 5.0 and abs(u.mean() - 1.0) < 0.05
    n = np.asarray(rng.normal([0, 0], (100_000,), 0.5))
    assert abs(n.mean()) < 0.01 and abs(n.std() - 0.5) < 0.01
    assert abs((np.abs(n) < 0.5).mean() - 0.6827) < 0.01


def test_seed_zero_and_counter_zero_are_not_special() -> None:
    first = np.asarray(rng.uniform([0, 0], (64,)))
    assert 0.0 < first[0] < 1.0 and len(np.unique(first)) == 64
    seeds = {tuple(np.asarray(rng.fold_in([0, 0], i)).tolist()) for i in range(100)}
    assert len(seeds) == 100


def test_shapes_may_be_dynamic_inside_a_tf_graph() -> None:
    import tensorflow as tf

    noise = build_augment(["gaussian_noise"])
    spec = (tf.TensorSpec([None, 6, 5, 4, 1]), tf.TensorSpec([2], tf.int32))
    graph = tf.function(noise, input_signature=spec)
    x = np.zeros((3, 6, 5, 4, 1), np.float32)
    np.testing.assert_allclose(graph(x, [1, 2]).numpy(), np.asarray(noise(x, [1, 2])),
                               atol=1e-6)

