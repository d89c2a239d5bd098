"""``ct3d export``: Keras, SavedModel and ONNX files that predict what ``ct3d predict`` does,
fed through the preprocessing their sidecar JSON describes; the model card beside them."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

import ct3d
from ct3d import export
from ct3d.cli import main
from ct3d.engine import run
from ct3d.io import read_volume
from ct3d.preprocess import build_preprocess
from ct3d.scenario import Scenario


@pytest.fixture(scope="module")
def run_dir(
    cohort_root: Path, tmp_path_factory: pytest.TempPathFactory,
    make_scenario: Callable[..., Scenario],
) -> Path:
    """A one-epoch run of the tiny scenario."""
    out = tmp_path_factory.mktemp("export") / "run"
    run(make_scenario(cohort_root, out, **{"train.epochs": 1}), verbose=0)
    return out


def _load(fmt: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The exported model as a function of a batch, loaded as its users would load it."""
    if fmt == "keras":
        model = keras.models.load_model(path)
        return lambda x: model.predict(x, verbose=0)
    if fmt == "savedmodel":
        import tensorflow as tf

        served = tf.saved_model.load(str(path))
        return lambda x: served.serve(x).numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [scan] = session.get_inputs()
    assert scan.name == "scan"
    return lambda x: session.run(None, {"scan": x})[0]


@pytest.mark.parametrize("fmt", ["keras", "savedmodel", "onnx"])
def test_an_export_predicts_what_ct3d_predict_gives(
    run_dir: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "exported"
    assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    assert f"exported: {out / export.FORMATS[fmt]}" in capsys.readouterr().out
    card = json.loads((out / export.SIDECAR).read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert card["format"] == fmt and card["model"] == export.FORMATS[fmt]
    assert card["classes"] == ["normal", "abnormal"] and card["threshold"] == 0.5
    assert card["input"]["shape"] == [None, 46, 46, 46, 1]
    assert [s["name"] for s in card["preprocess"]] == ["hu_window", "rotate90", "resize"]
    assert card["evaluation"]["auc"] == metrics["auc"]
    assert "Not for clinical use" in (out / "MODEL_CARD.md").read_text()

    test_scans = [r["scan"] for r in _predictions(run_dir) if r["part"] == "test"][:3]
    chain = build_preprocess(card["preprocess"])
    x = np.stack([chain(read_volume(s)).array for s in test_scans])[..., None]
    found = _load(fmt, out / export.FORMATS[fmt])(x.astype(np.float32))
    expected = [p.probability for p in ct3d.predict(run_dir, test_scans, progress=False)]
    np.testing.assert_allclose(found.reshape(-1), expected, atol=1e-5)


def _predictions(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "predictions.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_exports_refuse_what_they_cannot_do(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(export.ExportError, match="unknown export format 'tflite'; known: "
                                                 "keras, savedmodel, onnx"):
        export.export_run(run_dir, "tflite", tmp_path)
    export.export_run(run_dir, "keras", tmp_path)
    assert main(["export", str(run_dir), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"ct3d: error: {tmp_path}: already holds model.keras, ct3d-model.json; choose another "
        f"--out or remove them\n")
    real = export.importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, "find_spec",
                        lambda name: None if name == "tf2onnx" else real(name))
    with pytest.raises(export.ExportError, match=r"--format onnx needs tf2onnx, not installed "
                                                 r"here \(pip install \"ct3d\[export\]\"\)"):
        export.export_run(run_dir, "onnx", tmp_path / "other")
    with pytest.raises(ct3d.inference.RunError, match="no scenario.yaml"):
        export.export_run(tmp_path, "keras", tmp_path / "third")


def test_fold_models_are_exported_as_their_mean() -> None:
    def model(bias: float) -> keras.Model:
        scan = keras.Input((4, 4, 4, 1))
        flat = keras.layers.Flatten()(scan)
        out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones",
                                 bias_initializer=keras.initializers.Constant(bias))(flat)
        return keras.Model(scan, out)

    folds = [model(-1.0), model(0.0), model(2.0)]
    x = np.random.default_rng(0).random((2, 4, 4, 4, 1), dtype=np.float32) * 0.1
    merged = export.one_model(folds)
    expected = np.mean([m.predict(x, verbose=0) for m in folds], axis=0)
    np.testing.assert_allclose(merged.predict(x, verbose=0), expected, rtol=1e-6)
    assert merged.name.endswith("_mean_of_3_folds") and export.one_model(folds[:1]) is folds[0]
