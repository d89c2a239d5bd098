"""``train.augment_on``: augmentation inside the train step gives the batches of the input
pipeline, resumes like it, and leaves a model that predicts as any other."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from conftest import tiny_scenario

from ct3d.augment import build_augment
from ct3d.augment.device import AUGMENT_LAYER, DeviceAugment, with_augment
from ct3d.data.order import batch_seed
from ct3d.engine import devices, run
from ct3d.inference import predict
from ct3d.models import build_model, load_model


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == 0:
            raise KeyboardInterrupt


def _np(x: object) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _measured_out(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("time_per_epoch_s", "peak_rss_gib")}


def test_the_layer_augments_batch_k_with_the_input_pipelines_seed_and_only_in_training(
) -> None:
    steps = ["flip", "rotate", "contrast"]
    layer = DeviceAugment(steps, seed=7)
    x = np.random.default_rng(0).random((2, 12, 10, 6, 1), dtype=np.float32)
    assert np.array_equal(_np(layer(x, training=False)), x)
    chain = build_augment(steps)
    for k in range(3):
        out = _np(layer(x, training=True))
        np.testing.assert_allclose(out, _np(chain(x, batch_seed(7, k))), atol=1e-6)
        assert not np.allclose(out, x)
    assert int(_np(layer.batches)) == 3


def test_with_augment_keeps_the_models_layers_and_weights(tmp_path: Path) -> None:
    model = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1))
    augmented = with_augment(model, ["flip"], seed=0)
    assert [layer.name for layer in augmented.layers] == [
        "scan", AUGMENT_LAYER, *[layer.name for layer in model.layers[1:]]]
    x = np.random.default_rng(1).random((1, 46, 46, 46, 1), dtype=np.float32)
    np.testing.assert_allclose(_np(augmented(x)), _np(model(x)), atol=1e-6)
    augmented.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.get_layer(AUGMENT_LAYER).get_config()["steps"] == [
        {"name": "flip", "params": {"axes": [0, 1], "prob": 0.5}}]
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6)


def test_augment_on_auto_is_the_input_pipeline_on_a_cpu_and_device_needs_one_replica(
) -> None:
    one = devices.make_strategy("default")
    assert [devices.augment_place(s, one) for s in ("auto", "input", "device")] == [
        "input", "input", "device"]
    two = SimpleNamespace(num_replicas_in_sync=2)
    assert devices.augment_place("auto", two) == "input"
    with pytest.raises(devices.DeviceError, match="augment_on='device' needs one replica; "
                                                  "this strategy has 2"):
        devices.augment_place("device", two)
    if keras.backend.backend() == "tensorflow":  # XLA on TensorFlow cannot rotate
        assert devices.augment_place("auto", one, jit=True) == "input"
        with pytest.raises(devices.DeviceError, match="XLA has no kernel for the image"):
            devices.augment_place("device", one, jit=True)
    else:
        assert devices.augment_place("device", one, jit=True) == "device"


@pytest.mark.slow
def test_a_run_augmenting_on_the_device_matches_the_input_pipeline_resumes_and_predicts(
    cohort_root: Path, tmp_path: Path,
) -> None:
    on_input = tiny_scenario(cohort_root, tmp_path / "input")
    on_device = tiny_scenario(cohort_root, tmp_path / "device", **{"train.augment_on": "device"})
    reference = run(on_input, verbose=0)
    full = run(on_device, verbose=0)
    assert AUGMENT_LAYER in {layer.name for layer in full.model.layers}
    assert AUGMENT_LAYER not in {layer.name for layer in reference.model.layers}
    for key in ("loss", "accuracy", "val_loss"):
        np.testing.assert_allclose(full.history[key], reference.history[key], rtol=1e-3)
    assert full.metrics["auc"] == pytest.approx(reference.metrics["auc"], abs=1e-6)

    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run(on_device.with_overrides({"out": str(killed)}), verbose=0,
            callbacks=[_Interrupt()])
    resumed = run(resume=killed, verbose=0)
    assert _measured_out(resumed.metrics) == _measured_out(full.metrics)

    with open(full.run_dir / "predictions.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["part"] == "test")
    [found] = predict(full.run_dir, [row["scan"]], progress=False)
    assert found.error is None
    assert found.probability == pytest.approx(float(row["probability"]), abs=1e-5)


SAME_BATCHES = """
import json, sys
import keras
from ct3d.augment import build_augment
from ct3d.augment.device import with_augment
from ct3d.data.batches import CachedBatches
from ct3d.engine.fit import _build_compiled

paths, losses = sys.argv[1:], []
for on_device in (False, True):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 8, 1))
    features = keras.layers.GlobalAveragePooling3D()(keras.layers.Conv3D(2, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(features))
    if on_device:
        model = with_augment(model, ["flip", "contrast"], 0)
    model.compile("adam", "binary_crossentropy")
    augment = None if on_device else build_augment(["flip", "contrast"])
    batches = CachedBatches(paths, [0.0, 1.0] * 4, 2, 0, augment, epochs=2)
    _build_compiled(model, batches)
    history = model.fit(batches, epochs=2, steps_per_epoch=batches.steps, shuffle=False,
                        verbose=0)
    losses.append(history.history["loss"])
print(json.dumps(losses))
"""


@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.torch)])
def test_on_other_backends_fit_starts_at_batch_0_so_both_places_train_alike(
    backend: str, tmp_path: Path,
) -> None:
    """Keras on JAX and PyTorch draws a batch from ``fit``'s iterator to build the metrics;
    ct3d builds them first, so that training starts at batch 0 (where the on-device batch
    count starts) and both places of augmentation give the same losses."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        paths.append(str(tmp_path / f"scan{i}.npy"))
        np.save(paths[-1], rng.random((8, 8, 8), dtype=np.float32))
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", SAME_BATCHES, *paths], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    on_input, on_device = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(on_device, on_input, rtol=1e-5)
