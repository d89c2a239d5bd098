"""Dataset discovery from class folders and manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_io_itk import itk_image

from ct3d.data.dataset import DatasetError, Scan, discover_folder, read_manifest
from ct3d.io import read_volume, write_volume
from ct3d.volume import Volume

LABELS = {"normal": ["CT-0"], "abnormal": ["CT-23"]}


def _scan(path: Path) -> None:
    write_volume(Volume(np.zeros((4, 4, 2), np.float32), (1.0, 1.0, 1.0), np.eye(4), ""), path)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    for name in ("CT-0/study_0002.nii.gz", "CT-0/study_0001.nii.gz",
                 "CT-0/study_0001_mask.nii.gz", "CT-23/study_0003.nii", "CT-1/study_0009.nii.gz"):
        _scan(tmp_path / name)
    (tmp_path / "CT-0" / "notes.txt").write_text("not a scan")
    return tmp_path


def test_discover_folder_labels_sorted_and_skips_masks(folder: Path) -> None:
    scans = discover_folder(folder, LABELS)
    assert [(Path(s.path).name, s.label, s.cls, s.patient) for s in scans] == [
        ("study_0001.nii.gz", 0, "normal", "study_0001"),
        ("study_0002.nii.gz", 0, "normal", "study_0002"),
        ("study_0003.nii", 1, "abnormal", "study_0003"),
    ]


def test_label_map_groups_folders(folder: Path) -> None:
    scans = discover_folder(folder, {"normal": ["CT-0"], "abnormal": ["CT-1", "CT-23"]})
    assert [s.label for s in scans] == [0, 0, 1, 1]


def test_folder_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no sub-folder 'CT-4' for class 'abnormal'; "
                                           "sub-folders found: CT-0, CT-1, CT-23"):
        discover_folder(folder, {"normal": ["CT-0"], "abnormal": ["CT-4"]})
    (folder / "CT-2").mkdir()
    with pytest.raises(DatasetError, match="no scans for class\\(es\\) abnormal"):
        discover_folder(folder, {"normal": ["CT-0"], "abnormal": ["CT-2"]})
    with pytest.raises(DatasetError, match="missing: data folder not found"):
        discover_folder(tmp_path / "missing", LABELS)


def test_manifest(folder: Path) -> None:
    csv = folder / "manifest.csv"
    csv.write_text("path,label,patient\nCT-0/study_0001.nii.gz,CT-0,p1\n"
                   "CT-0/study_0002.nii.gz,normal,\nCT-23/study_0003.nii,abnormal,p3\n")
    scans = read_manifest(csv, LABELS)
    assert scans[0] == Scan(str(folder / "CT-0/study_0001.nii.gz"), 0, "normal", "p1")
    assert [(s.label, s.patient) for s in scans] == [(0, "p1"), (0, "study_0002"), (1, "p3")]


@pytest.mark.parametrize(("text", "message"), [
    ("file,label\nx,CT-0\n", "missing column\\(s\\) path"),
    ("path,label\nx,CT-9\n", "line 2: unknown label 'CT-9'"),
    ("path,label\nx,CT-0\n", "no scans for class\\(es\\) abnormal"),
    ("path,label,patient\nx,CT-0,p\ny,CT-23,p\n", "patient 'p' has scans in classes"),
])
def test_manifest_errors(tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_manifest(csv, LABELS)


def _series(folder: Path, names: tuple[str, ...]) -> None:
    """Files that look like DICOM to discovery: the 'DICM' marker at byte 128."""
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)


def test_dicom_series_folders_are_scans(folder: Path) -> None:
    _series(folder / "CT-0" / "patient_07", ("IM0001", "IM0002"))
    (folder / "CT-23" / "patient_03").mkdir()
    (folder / "CT-23" / "patient_03" / "a.dcm").write_bytes(b"")  # found by its suffix
    _series(folder / "CT-23" / "index_only", ("DICOMDIR",))  # a DICOMDIR alone is no series
    (folder / "CT-23" / "notes").mkdir()
    (folder / "CT-23" / "notes" / "readme.txt").write_text("no scans here")

    scans = discover_folder(folder, LABELS)
    assert [(Path(s.path).name, s.label, s.patient) for s in scans] == [
        ("patient_07", 0, "patient_07"),
        ("study_0001.nii.gz", 0, "study_0001"),
        ("study_0002.nii.gz", 0, "study_0002"),
        ("patient_03", 1, "patient_03"),
        ("study_0003.nii", 1, "study_0003"),
    ]
    assert scans[0].path == str(folder / "CT-0" / "patient_07")


def test_manifest_lists_series_folders(folder: Path) -> None:
    _series(folder / "dicom" / "p7" / "ct", ("IM1", "IM2"))
    csv = folder / "manifest.csv"
    csv.write_text("path,label\nCT-0/study_0001.nii.gz,CT-0\ndicom/p7/ct,abnormal\n")
    scans = read_manifest(csv, LABELS)
    assert scans[1] == Scan(str(folder / "dicom/p7/ct"), 1, "abnormal", "ct")


def test_nrrd_and_metaimage_files_are_scans_beside_nifti(folder: Path) -> None:
    volume = Volume(np.arange(32, dtype=np.float32).reshape(4, 4, 2) - 1000, (0.7, 0.8, 5.0),
                    np.diag([0.7, 0.8, 5.0, 1.0]), "")
    for name in ("CT-0/study_0004.nrrd", "CT-0/study_0004_mask.nrrd", "CT-23/study_0005.mha",
                 "CT-23/study_0006.mhd", "CT-23/study_0007.nhdr"):
        sitk.WriteImage(itk_image(volume), str(folder / name))
    (folder / "CT-23" / "study_0005.mha").rename(folder / "CT-23" / "STUDY_0008.MHA")
    assert (folder / "CT-23" / "study_0006.raw").is_file()  # detached data: not a scan

    scans = discover_folder(folder, LABELS)
    assert [(Path(s.path).name, s.label, s.patient) for s in scans] == [
        ("study_0001.nii.gz", 0, "study_0001"),
        ("study_0002.nii.gz", 0, "study_0002"),
        ("study_0004.nrrd", 0, "study_0004"),
        ("STUDY_0008.MHA", 1, "STUDY_0008"),
        ("study_0003.nii", 1, "study_0003"),
        ("study_0006.mhd", 1, "study_0006"),
        ("study_0007.nhdr", 1, "study_0007"),
    ]
    for scan in scans[2:4] + scans[5:]:
        np.testing.assert_array_equal(read_volume(scan.path).array, volume.array)
