"""``ct3d predict --saliency``: one Grad-CAM map per scan, at a path mirroring the scan's own."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dicom import write_series

import ct3d
from ct3d.cli import main
from ct3d.engine import run
from ct3d.inference import saliency_paths
from ct3d.io import read_volume
from ct3d.scenario import Scenario

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
