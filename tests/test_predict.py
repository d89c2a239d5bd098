"""``ct3d predict --saliency``: one Grad-CAM map per scan, at a path mirroring the scan's own;
``ct3d export``: Keras, SavedModel and ONNX files that predict what ``ct3d predict`` does, fed
through the preprocessing their sidecar JSON describes, with the model card beside them."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dicom import write_series
from test_io_itk import itk_image

import ct3d
from ct3d import export
from ct3d.cli import main
from ct3d.engine import run
from ct3d.inference import expand_paths, saliency_paths
from ct3d.io import read_volume, write_volume
from ct3d.preprocess import build_preprocess
from ct3d.scenario import Scenario
from ct3d.volume import Volume

CONVS = {"block1_conv", "block2_conv", "block3_conv", "block4_conv"}
SCANS = ["a/dicom/scan.nii.gz", "b/dicom/scan.nii.gz", "dicom/P0001/CT_CHEST",
         "dicom/P0002/CT_CHEST"]


@pytest.fixture(scope="module")
def run_dir(
    cohort_root: Path, tmp_path_factory: pytest.TempPathFactory,
    make_scenario: Callable[..., Scenario],
) -> Path:
    """A one-epoch run of the tiny scenario."""
    out = tmp_path_factory.mktemp("predict") / "run"
    run(make_scenario(cohort_root, out, **{"train.epochs": 1}), verbose=0)
    return out


def _inputs(cohort_root: Path, folder: Path) -> Path:
    """Two NIfTI scans in folders both named ``dicom``; two DICOM series both named CT_CHEST."""
    first, second = sorted(next(cohort_root.glob("quick-*")).glob("CT-*/study_????.nii.gz"))[:2]
    for name, source in zip(SCANS[:2], (first, second), strict=True):
        (folder / name).parent.mkdir(parents=True)
        shutil.copy(source, folder / name)
    for name, source in zip(SCANS[2:], (first, second), strict=True):
        write_series(folder / name, read_volume(source))
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_map_paths_mirror_the_scans_below_their_common_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scans = ["in/a/dicom", str(tmp_path / "in/b/dicom"), "in/a/dicom/", "in/b/./dicom",
             "in/c/s.nii", "in/c/s.nii.gz", "in/c/s.nii.nii.gz", "in/c/t", "in/c/t.nii.gz",
             "in/c/u.nii.gz"]
    assert [p.relative_to("maps").as_posix() for p in saliency_paths(scans, "maps")] == [
        "a/dicom_gradcam.nii.gz", "b/dicom_gradcam.nii.gz", "a/dicom_gradcam.nii.gz",
        "b/dicom_gradcam.nii.gz", "c/s.nii_gradcam.nii.gz", "c/s.nii.gz_gradcam.nii.gz",
        "c/s.nii.nii.gz_gradcam.nii.gz", "c/t_gradcam.nii.gz", "c/t.nii.gz_gradcam.nii.gz",
        "c/u_gradcam.nii.gz"]
    assert saliency_paths(["in/c/u.nii.gz"], "maps") == [Path("maps/u_gradcam.nii.gz")]
    assert saliency_paths([], "maps") == []


def test_folders_expand_to_nrrd_and_metaimage_scans_too(tmp_path: Path) -> None:
    volume = Volume(np.random.default_rng(0).integers(-1024, 2000, (6, 5, 4)).astype(np.float32),
                    (0.7, 0.9, 2.5), np.diag([0.7, 0.9, 2.5, 1.0]), "scan")
    write_volume(volume, tmp_path / "in" / "s.nii.gz")
    for name in ("s.nrrd", "s_mask.nrrd", "t.mha", "sub/u.mhd", "sub/v.nhdr"):
        (tmp_path / "in" / name).parent.mkdir(exist_ok=True)
        sitk.WriteImage(itk_image(volume), str(tmp_path / "in" / name), useCompression=True)
    write_series(tmp_path / "in" / "sub" / "series", volume)

    scans = expand_paths([tmp_path / "in"])
    assert [p.relative_to(tmp_path / "in").as_posix() for p in scans] == [
        "s.nii.gz", "s.nrrd", "sub/series", "sub/u.mhd", "sub/v.nhdr", "t.mha"]
    assert [p.relative_to(tmp_path / "maps").as_posix()
            for p in saliency_paths(scans, tmp_path / "maps")] == [
        "s.nii.gz_gradcam.nii.gz", "s.nrrd_gradcam.nii.gz", "sub/series_gradcam.nii.gz",
        "sub/u_gradcam.nii.gz", "sub/v_gradcam.nii.gz", "t_gradcam.nii.gz"]
    for scan in scans:
        np.testing.assert_array_equal(read_volume(scan).array, volume.array)


@pytest.mark.slow
def test_nrrd_and_metaimage_scans_predict_like_their_nifti(
    run_dir: Path, cohort_root: Path, tmp_path: Path,
) -> None:
    source = sorted(next(cohort_root.glob("quick-*")).glob("CT-*/study_????.nii.gz"))[0]
    volume = read_volume(source)
    for name in ("scan.nrrd", "scan.mha"):
        sitk.WriteImage(itk_image(volume), str(tmp_path / name), useCompression=True)
    results = ct3d.predict(run_dir, [source, tmp_path], saliency_dir=tmp_path / "maps",
                           progress=False)
    assert [r.error for r in results] == [None] * 3
    assert [Path(r.scan).name for r in results] == [source.name, "scan.mha", "scan.nrrd"]
    assert [r.probability for r in results[1:]] == pytest.approx([results[0].probability] * 2,
                                                                 abs=1e-6)
    maps = [read_volume(r.saliency, hu=False) for r in results]
    np.testing.assert_allclose(maps[1].array, maps[0].array, atol=1e-5)
    np.testing.assert_allclose(maps[2].affine, volume.affine, atol=1e-4)


_NAMES = st.sampled_from(["a", "dicom", "s", "s.nii", "s.nii.gz", "s.nii.nii.gz", "s_mask.nii",
                          "t.nii.gz", ".", ".."])


@settings(max_examples=200, deadline=None, database=None)
@given(scans=st.lists(st.lists(_NAMES, min_size=1, max_size=4).map("/".join), min_size=1,
                      max_size=10))
def test_distinct_scans_never_share_a_map(scans: list[str]) -> None:
    maps = saliency_paths(scans, "maps")
    same = {(os.path.abspath(a) == os.path.abspath(b), x == y)
            for a, x in zip(scans, maps, strict=True) for b, y in zip(scans, maps, strict=True)}
    assert same <= {(True, True), (False, False)}
    assert all(m.name.endswith("_gradcam.nii.gz") and ".." not in m.parts for m in maps)


@pytest.mark.slow
def test_scans_with_the_same_name_get_distinct_maps_mirroring_their_paths(
    run_dir: Path, cohort_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs = _inputs(cohort_root, tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    given = [f"in/{SCANS[0]}", str(inputs / SCANS[1]), f"in/{SCANS[2]}", str(inputs / SCANS[3]),
             str(inputs / SCANS[0])]  # the first scan again, as an absolute path
    results = ct3d.predict(run_dir, given, saliency_dir="maps", progress=False)
    assert [r.error for r in results] == [None] * 5
    assert [r.saliency for r in results] == [
        "maps/a/dicom/scan_gradcam.nii.gz", "maps/b/dicom/scan_gradcam.nii.gz",
        "maps/dicom/P0001/CT_CHEST_gradcam.nii.gz", "maps/dicom/P0002/CT_CHEST_gradcam.nii.gz",
        "maps/a/dicom/scan_gradcam.nii.gz"]
    for result, scan in zip(results, given, strict=True):
        heat = read_volume(result.saliency, hu=False)
        assert heat.shape == read_volume(scan).shape and heat.array.max() <= 1
        assert result.saliency_layer in CONVS or "every layer" in result.saliency_note


@pytest.mark.slow
def test_cli_csv_rows_point_at_distinct_maps(
    run_dir: Path, cohort_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    inputs = _inputs(cohort_root, tmp_path / "in")
    maps, table = tmp_path / "maps", tmp_path / "out.csv"
    assert main(["predict", str(run_dir), str(inputs), "--saliency", str(maps),
                 "--csv", str(table)]) == 0
    rows = _rows(table)
    assert [Path(r["scan"]).relative_to(inputs).as_posix() for r in rows] == SCANS
    assert [Path(r["saliency"]).relative_to(maps).as_posix() for r in rows] == [
        "a/dicom/scan_gradcam.nii.gz", "b/dicom/scan_gradcam.nii.gz",
        "dicom/P0001/CT_CHEST_gradcam.nii.gz", "dicom/P0002/CT_CHEST_gradcam.nii.gz"]
    assert all(Path(r["saliency"]).is_file() for r in rows)
    assert all(r["saliency_layer"] in CONVS or r["saliency_note"] for r in rows)
    printed = capsys.readouterr().out
    assert all(f"{r['scan']}\t" in printed and r["saliency"] in printed for r in rows)


def test_predict_help_names_dicom_series_folders(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "DICOM series folder" in " ".join(capsys.readouterr().out.split())


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

    test_scans = [r["scan"] for r in _rows(run_dir / "predictions.csv") if r["part"] == "test"][:3]
    chain = build_preprocess(card["preprocess"])
    x = np.stack([chain(read_volume(s)).array for s in test_scans])[..., None]
    found = _load(fmt, out / export.FORMATS[fmt])(x.astype(np.float32))
    expected = [p.probability for p in ct3d.predict(run_dir, test_scans, progress=False)]
    np.testing.assert_allclose(found.reshape(-1), expected, atol=1e-5)


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
