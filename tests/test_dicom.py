"""Tests for ct3d.io.dicom: DICOM CT series read like the equivalent NIfTI, and bad series refused
or repaired with a clear message. Every series is generated here with pydicom."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    MediaStorageDirectoryStorage,
    generate_uid,
)

from ct3d.inference import expand_paths
from ct3d.io import (
    DicomWarning,
    ScanError,
    SeriesInfo,
    is_dicom_file,
    is_series_folder,
    list_series,
    read_dicom_series,
    read_volume,
    write_volume,
)
from ct3d.volume import Volume

SHAPE = (6, 5, 8)
SPACING = (0.7, 0.5, 2.5)
UID_A = "1.2.826.0.1.3680043.8.498.101"
UID_B = "1.2.826.0.1.3680043.8.498.202"
STUDY_UID = "1.2.826.0.1.3680043.8.498.303"
FRAME_UID = "1.2.826.0.1.3680043.8.498.404"


def _affine(kind: str) -> np.ndarray:
    """Voxel -> RAS affine of the reference (canonical) volume: straight, oblique or tilted."""
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = [-12.5, 30.0, -101.25]
    if kind == "oblique":  # 12 degrees about z, then 7 about x
        a, b = np.radians(12.0), np.radians(7.0)
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        affine[:3, :3] = rx @ rz @ affine[:3, :3]
    if kind == "tilted":  # gantry tilt: each slice shifted 0.4 mm along y
        affine[1, 2] = 0.4
    return affine


def _reference(kind: str = "straight", seed: int = 0) -> Volume:
    array = np.random.default_rng(seed).integers(-1024, 2000, SHAPE).astype(np.float32)
    affine = _affine(kind)
    return Volume(array, tuple(np.linalg.norm(affine[:3, :3], axis=0)), affine, kind)


def _stored(vol: Volume, perm: Sequence[int], flips: Sequence[int]) -> Volume:
    """The same anatomy stored with canonical axes ``perm`` as array axes, ``flips`` reversed."""
    array, m = vol.array, np.zeros((4, 4))
    m[3, 3] = 1.0
    for b in flips:
        array = np.flip(array, b)
    for a, b in enumerate(perm):
        m[b, a] = -1.0 if b in flips else 1.0
        m[b, 3] = vol.shape[b] - 1 if b in flips else 0.0
    spacing = tuple(vol.spacing[b] for b in perm)
    return Volume(np.ascontiguousarray(array.transpose(perm)), spacing, vol.affine @ m, "stored")


def _ds(vol: Volume, k: int, *, uid: str = UID_A, modality: str = "CT", slope: float = 1.0,
        intercept: float = 0.0, description: str = "AX LUNG", number: int = 0,
        signed: bool = True) -> Dataset:
    """Slice ``k`` of ``vol`` (array axes = column, row, slice; RAS affine) as a CT dataset,
    its pixels stored as int16 (``signed``) or uint16."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine
    dc, dr = np.linalg.norm(lps[:3, :2], axis=0)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = modality, uid, description
    ds.StudyInstanceUID, ds.FrameOfReferenceUID = STUDY_UID, FRAME_UID
    ds.SeriesNumber, ds.InstanceNumber = 3, number
    ds.Rows, ds.Columns = vol.shape[1], vol.shape[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = int(signed)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelSpacing = [round(float(dr), 6), round(float(dc), 6)]
    ds.ImageOrientationPatient = [round(float(v), 6) for v in
                                  [*lps[:3, 0] / dc, *lps[:3, 1] / dr]]
    ds.ImagePositionPatient = [round(float(v), 6) for v in lps[:3, 3] + k * lps[:3, 2]]
    ds.SliceThickness = round(float(np.linalg.norm(lps[:3, 2])), 6)
    raw = np.rint((vol.array[:, :, k].T - intercept) / slope).astype(np.int16 if signed
                                                                      else np.uint16)
    ds.PixelData = raw.tobytes()
    return ds


def write_series(folder: Path, vol: Volume, names: Sequence[str] | None = None,
                 numbers: Sequence[int] | None = None, **fields: object) -> list[Path]:
    """One file per slice of ``vol``; file names and InstanceNumbers default to slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    depth = vol.shape[2]
    names = names or [f"slice_{k:03d}.dcm" for k in range(depth)]
    numbers = numbers or list(range(1, depth + 1))
    paths = []
    for k in range(depth):
        ds = _ds(vol, k, number=numbers[k], **fields)
        ds.save_as(folder / names[k], enforce_file_format=True)
        paths.append(folder / names[k])
    return paths


def _raises(path: Path, pattern: str) -> AbstractContextManager[pytest.ExceptionInfo[ScanError]]:
    return pytest.raises(ScanError, match=re.escape(str(path)) + ": " + pattern)


def _same(vol: Volume, ref: Volume) -> None:
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, ref.array)
    assert vol.spacing == pytest.approx(ref.spacing, abs=1e-5)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)


# --- same result as NIfTI ---------------------------------------------------------------------

ACQUISITIONS = {  # canonical axes stored as (column, row, slice), and which run reversed
    "axial_head_first": ((0, 1, 2), (0, 1)),
    "axial_feet_first": ((0, 1, 2), (1, 2)),
    "sagittal": ((1, 2, 0), (1, 2)),
    "coronal": ((0, 2, 1), (0, 1, 2)),
    "ras": ((0, 1, 2), ()),
}


@pytest.mark.parametrize(("kind", "acquisition"), [
    *((kind, acq) for kind in ("straight", "oblique") for acq in ACQUISITIONS),
    ("tilted", "axial_head_first"), ("tilted", "axial_feet_first"),  # tilt shears the slices
])
def test_series_reads_like_nifti_of_same_anatomy(tmp_path: Path, kind: str,
                                                 acquisition: str) -> None:
    ref_vol = _reference(kind)
    ref = read_volume(write_volume(ref_vol, tmp_path / "ref.nii.gz"))
    stored = _stored(ref_vol, *ACQUISITIONS[acquisition])
    write_volume(stored, tmp_path / "stored.nii.gz")
    write_series(tmp_path / "series", stored)

    vol = read_dicom_series(tmp_path / "series")
    _same(vol, ref)
    _same(read_volume(tmp_path / "series"), ref)
    _same(read_volume(tmp_path / "stored.nii.gz"), ref)
    assert vol.source == str(tmp_path / "series")
    if kind == "straight":
        np.testing.assert_array_equal(vol.array, ref_vol.array)
        assert vol.spacing == pytest.approx(SPACING)


def test_standard_axial_tags_map_to_ras(tmp_path: Path) -> None:
    """Head-first axial: rows run to patient left (LPS +x), so RAS x is the reversed column."""
    ref = _reference()
    files = write_series(tmp_path, _stored(ref, *ACQUISITIONS["axial_head_first"]))
    ds = pydicom.dcmread(files[0])
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.7]  # row spacing, column spacing
    assert (ds.Rows, ds.Columns) == (5, 6)
    vol = read_dicom_series(tmp_path)
    assert vol.shape == SHAPE
    assert vol.array[0, 0, 0] == ds.pixel_array[-1, -1]  # RAS corner = last row, last column
    np.testing.assert_allclose(vol.affine[:3, 3], ref.affine[:3, 3])


def test_file_order_names_and_instance_numbers_are_ignored(tmp_path: Path) -> None:
    ref = _reference()
    rng = np.random.default_rng(1)
    stored = _stored(ref, *ACQUISITIONS["axial_head_first"])
    names = [f"IM{n:04d}" for n in rng.permutation(8)]  # no suffix, shuffled
    numbers = [int(n) for n in rng.permutation(8) + 1]
    write_series(tmp_path, stored, names=names, numbers=numbers)
    assert sorted(names) != names and sorted(numbers) != numbers
    _same(read_dicom_series(tmp_path), read_volume(write_volume(ref, tmp_path / "r.nii.gz")))


def test_rescale_slope_and_intercept_applied(tmp_path: Path) -> None:
    ref = _reference()
    hu = ref.array - ref.array % 2  # even HU, exactly (raw * 2 - 1024)
    files = write_series(tmp_path, ref.replace(array=hu), slope=2.0, intercept=-1024.0)
    raw = pydicom.dcmread(files[3]).pixel_array
    np.testing.assert_array_equal(raw, ((hu[:, :, 3].T + 1024) / 2).astype(np.int16))
    vol = read_dicom_series(tmp_path)
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, hu)


def test_non_dicom_files_skipped_with_note(tmp_path: Path) -> None:
    ref = _reference()
    write_series(tmp_path, ref)
    (tmp_path / "readme.txt").write_text("exported by PACS\n")
    index = _ds(ref, 0)
    index.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    index.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    (tmp_path / "sub").mkdir()
    with pytest.warns(DicomWarning, match="skipped 2 file\\(s\\) that are not DICOM images: "
                                          "DICOMDIR, readme.txt"):
        vol = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(vol.array, ref.array)
    assert not is_dicom_file(tmp_path / "DICOMDIR") and not is_dicom_file(tmp_path / "readme.txt")
    assert is_dicom_file(tmp_path / "slice_000.dcm")


# --- choosing a series ------------------------------------------------------------------------


def test_two_series_listed_and_chosen_by_uid(tmp_path: Path) -> None:
    ref = _reference()
    write_series(tmp_path, ref, uid=UID_A)
    other = Volume(ref.array[:4, :3, :2] + 7, ref.spacing, ref.affine, "scout")
    write_series(tmp_path, other, names=["scout_a", "scout_b"], uid=UID_B,
                 description="Topogram")
    listing = (f"{UID_A} ('AX LUNG', CT, 8 files); {UID_B} ('Topogram', CT, 2 files)")
    with _raises(tmp_path, re.escape(f"2 series in one folder: {listing}; choose one with "
                                     f"read_volume(folder, series=UID), or move each series "
                                     f"into a folder of its own")):
        read_dicom_series(tmp_path)
    assert [(s.uid, s.description, len(s.files)) for s in list_series(tmp_path)] == [
        (UID_A, "AX LUNG", 8), (UID_B, "Topogram", 2)]
    assert isinstance(list_series(tmp_path)[0], SeriesInfo)

    np.testing.assert_array_equal(read_dicom_series(tmp_path, series=UID_A).array, ref.array)
    np.testing.assert_array_equal(read_dicom_series(tmp_path, series=UID_B).array, other.array)
    np.testing.assert_array_equal(read_volume(tmp_path, series=UID_B).array, other.array)
    with _raises(tmp_path, re.escape(f"no series '1.2.3' here; series found: {listing}")):
        read_dicom_series(tmp_path, series="1.2.3")


@pytest.mark.parametrize("modality", ["MR", "SEG", "RTSTRUCT", "SR"])
def test_non_ct_modality_refused(tmp_path: Path, modality: str) -> None:
    write_series(tmp_path, _reference(), modality=modality)
    with _raises(tmp_path, f"series {UID_A} has modality {modality}, not CT: ct3d reads CT "
                           f"image series only"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize(("modality", "found"), [("MR", "MR"), (None, "(none)")])
def test_mixed_modalities_counted(tmp_path: Path, modality: str | None, found: str) -> None:
    files = write_series(tmp_path, _reference())
    _rewrite(files[3], Modality=modality)
    with _raises(tmp_path, re.escape(f"series {UID_A} has modality CT in 7 file(s) (slice_000.dcm, "
                                     f"slice_001.dcm, slice_002.dcm, ...), {found} in 1 file(s) "
                                     f"(slice_003.dcm): ct3d reads CT image series only")):
        read_dicom_series(tmp_path)


# --- slices missing, repeated or inconsistent -------------------------------------------------


@pytest.mark.parametrize("acquisition", ["ras", "axial_feet_first"])
@pytest.mark.parametrize(("missing", "weights"), [([3], [0.5]), ([3, 4], [1 / 3, 2 / 3])])
def test_missing_slices_interpolated_with_warning(tmp_path: Path, acquisition: str,
                                                  missing: list[int],
                                                  weights: list[float]) -> None:
    ref = _reference()
    perm, flips = ACQUISITIONS[acquisition]
    files = write_series(tmp_path, _stored(ref, perm, flips))
    stored = [7 - k for k in missing] if 2 in flips else missing  # canonical -> file index
    for k in stored:
        files[k].unlink()
    around = sorted({min(stored) - 1, max(stored) + 1})
    step = 2.5 * (len(missing) + 1)
    with pytest.warns(DicomWarning, match=re.escape(
            f"{tmp_path}: uneven slice spacing (median 2.5 mm): {step:.3g} mm between "
            f"slice_{around[0]:03d}.dcm and slice_{around[1]:03d}.dcm; resampled "
            f"{8 - len(missing)} slices onto 8 evenly spaced slices (2.5 mm) by linear "
            f"interpolation")):
        vol = read_dicom_series(tmp_path)
    full = np.setdiff1d(np.arange(8), missing)
    np.testing.assert_allclose(vol.array[:, :, full], ref.array[:, :, full], atol=1e-3)
    below, above = ref.array[:, :, 2], ref.array[:, :, missing[-1] + 1]
    for k, w in zip(missing, weights, strict=True):
        np.testing.assert_allclose(vol.array[:, :, k], (1 - w) * below + w * above, atol=1e-3)
    assert vol.spacing == pytest.approx(SPACING)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-6)


def test_identical_duplicate_kept_once(tmp_path: Path) -> None:
    ref = _reference()
    files = write_series(tmp_path, ref)
    shutil.copy(files[5], tmp_path / "copy_of_5.dcm")
    with pytest.warns(DicomWarning, match="1 duplicate slice\\(s\\) with identical pixels kept "
                                          "once: slice_005.dcm = copy_of_5.dcm"):
        vol = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(vol.array, ref.array)


def test_conflicting_duplicate_refused(tmp_path: Path) -> None:
    ref = _reference()
    write_series(tmp_path, ref)
    _ds(ref.replace(array=ref.array + 1), 5).save_as(tmp_path / "other_5.dcm",
                                                      enforce_file_format=True)
    with _raises(tmp_path, re.escape("other_5.dcm and slice_005.dcm are at the same position but "
                                     "hold different pixels (30 of 30 pixels differ, by up to "
                                     "1 HU)")):
        read_dicom_series(tmp_path)


def test_single_slice_refused(tmp_path: Path) -> None:
    ref = _reference()
    write_series(tmp_path, ref.replace(array=np.ascontiguousarray(ref.array[:, :, :1])))
    with _raises(tmp_path, re.escape("only one slice position (1 file(s)): a single image, not "
                                     "a 3D volume")):
        read_dicom_series(tmp_path)


def _apply(ds: Dataset, changes: dict[str, object]) -> None:
    """Set each keyword of ``changes`` to its value; ``None`` removes the element."""
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)


def _rewrite(path: Path, **changes: object) -> None:
    ds = pydicom.dcmread(path)
    _apply(ds, changes)
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(("changes", "pattern"), [
    ({"ImageOrientationPatient": [1, 0, 0, 0, 0.995037, 0.099504]},
     "ImageOrientationPatient \\[1, 0, 0, 0, 0.995037, 0.099504\\] differs from \\[1, 0, 0, 0, "
     "1, 0\\] in slice_000.dcm: slices of one volume must share one orientation"),
    ({"PixelSpacing": [0.5, 0.8]}, "PixelSpacing \\[0.5, 0.8\\] differs from \\[0.5, 0.7\\]"),
])
def test_inconsistent_slices_refused(tmp_path: Path, changes: dict[str, object],
                                     pattern: str) -> None:
    files = write_series(tmp_path, _stored(_reference(), *ACQUISITIONS["axial_head_first"]))
    _rewrite(files[4], **changes)
    with _raises(files[4], pattern):
        read_dicom_series(tmp_path)


def test_slice_off_the_stack_refused(tmp_path: Path) -> None:
    files = write_series(tmp_path, _reference())
    x, y, z = (float(v) for v in pydicom.dcmread(files[4]).ImagePositionPatient)
    _rewrite(files[4], ImagePositionPatient=[x + 5.0, y, z])
    with _raises(files[4], re.escape(f"slice is 5 mm off the line through the first and last "
                                     f"slices of the series in {tmp_path}: the series mixes "
                                     f"stacks")):
        read_dicom_series(tmp_path)


def test_other_image_size_refused(tmp_path: Path) -> None:
    ref = _reference()
    files = write_series(tmp_path, ref)
    small = Volume(ref.array[:, :4], ref.spacing, ref.affine, "small")
    _ds(small, 4).save_as(files[4], enforce_file_format=True)
    with _raises(files[4], "4x6 pixels, but slice_000.dcm has 5x6: a series must have one "
                           "image size"):
        read_dicom_series(tmp_path)


# --- anonymized series: SeriesInstanceUID blanked ---------------------------------------------

AGREE = ("Rows, Columns, ImageOrientationPatient, PixelSpacing, SliceThickness, "
         "FrameOfReferenceUID, StudyInstanceUID, SeriesNumber agree across them")


def _blank_uid(files: Sequence[Path], values: Sequence[str | None]) -> None:
    """SeriesInstanceUID removed (``None``) or emptied (``""``) file by file, as anonymizers do."""
    for path, value in zip(files, values, strict=True):
        _rewrite(path, SeriesInstanceUID=value)


@pytest.mark.parametrize(("values", "found"), [
    ([None] * 8, "missing in 8 file(s)"),
    ([""] * 8, "empty in 8 file(s)"),
    ([None] * 3 + [""] * 5, "missing in 3 and empty in 5 file(s)"),
])
def test_series_without_uid_read_as_one_with_warning(tmp_path: Path, values: list[str | None],
                                                     found: str) -> None:
    ref = _reference()
    _blank_uid(write_series(tmp_path, ref), values)
    with pytest.warns(DicomWarning, match=re.escape(
            f"{tmp_path}: SeriesInstanceUID (0020,000E) is {found}; read as one series, since "
            f"{AGREE}")):
        vol = read_dicom_series(tmp_path)
    _same(vol, ref)
    [info] = list_series(tmp_path)
    assert (info.uid, len(info.files)) == ("", 8)
    assert str(info) == "(no SeriesInstanceUID) ('AX LUNG', CT, 8 files)"


def test_series_without_uid_compares_tags_where_present(tmp_path: Path) -> None:
    ref = _reference()
    files = write_series(tmp_path, ref)
    _blank_uid(files, [""] * 8)
    for path in files[:3]:
        _rewrite(path, FrameOfReferenceUID=None, SeriesNumber=None)
    _rewrite(files[5], StudyInstanceUID="")
    with pytest.warns(DicomWarning, match=re.escape(f"since {AGREE}")):
        np.testing.assert_array_equal(read_dicom_series(tmp_path).array, ref.array)


ANONYMIZED = {"SeriesInstanceUID": "", "SOPInstanceUID": "", "InstanceNumber": None,
              "StudyInstanceUID": "", "FrameOfReferenceUID": None, "SeriesNumber": None,
              "SeriesDescription": None, "SliceThickness": None, "PatientName": "",
              "PatientID": "", "StudyDate": "", "AccessionNumber": ""}


def test_other_blanked_tags_still_read(tmp_path: Path) -> None:
    ref = _reference()
    for path in write_series(tmp_path, ref):
        ds = pydicom.dcmread(path)
        _apply(ds, ANONYMIZED)
        ds.file_meta.MediaStorageSOPInstanceUID = ""
        ds.save_as(path)  # an empty MediaStorageSOPInstanceUID is not standard: not enforced
    note = (f"{tmp_path}: SeriesInstanceUID (0020,000E) is empty in 8 file(s); read as one series, "
            f"since Rows, Columns, ImageOrientationPatient, PixelSpacing agree across them "
            f"(SliceThickness, FrameOfReferenceUID, StudyInstanceUID, SeriesNumber absent or empty "
            f"in every file)")
    with pytest.warns(DicomWarning, match=re.escape(note)):
        vol = read_dicom_series(tmp_path)
    _same(vol, ref)
    assert list_series(tmp_path)[0].description == ""


def _found(keyword: str, usual: str, other: str) -> str:
    return (f"{keyword} differs: {usual} in 7 file(s) (slice_000.dcm, slice_001.dcm, "
            f"slice_002.dcm, ...), {other} in 1 file(s) (slice_004.dcm)")


@pytest.mark.parametrize(("changes", "found"), [
    ({"ImageOrientationPatient": [1, 0, 0, 0, 0.995037, 0.099504]},
     _found("ImageOrientationPatient", "[1, 0, 0, 0, 1, 0]", "[1, 0, 0, 0, 0.995037, 0.099504]")),
    ({"PixelSpacing": [0.5, 0.8]}, _found("PixelSpacing", "[0.5, 0.7]", "[0.5, 0.8]")),
    ({"Rows": 4}, _found("Rows", "5", "4")),
    ({"Columns": 9}, _found("Columns", "6", "9")),
    ({"SliceThickness": 5.0}, _found("SliceThickness", "2.5", "5")),
    ({"FrameOfReferenceUID": UID_B}, _found("FrameOfReferenceUID", FRAME_UID, UID_B)),
    ({"StudyInstanceUID": UID_B}, _found("StudyInstanceUID", STUDY_UID, UID_B)),
    ({"SeriesNumber": 4}, _found("SeriesNumber", "3", "4")),
    ({"PixelSpacing": [0.5, 0.8], "StudyInstanceUID": UID_B},
     _found("PixelSpacing", "[0.5, 0.7]", "[0.5, 0.8]") + "; "
     + _found("StudyInstanceUID", STUDY_UID, UID_B)),
])
def test_series_without_uid_refused_when_not_one_series(tmp_path: Path,
                                                        changes: dict[str, object],
                                                        found: str) -> None:
    files = write_series(tmp_path, _stored(_reference(), *ACQUISITIONS["axial_head_first"]))
    _blank_uid(files, [""] * 8)
    _rewrite(files[4], **changes)
    with _raises(tmp_path, re.escape(f"SeriesInstanceUID (0020,000E) is empty in 8 file(s), and "
                                     f"they are not one series: {found}")):
        read_dicom_series(tmp_path)


def test_files_without_uid_beside_a_series_refused(tmp_path: Path) -> None:
    files = write_series(tmp_path, _reference())
    _blank_uid(files[5:], [None, "", ""])
    message = re.escape(
        f"SeriesInstanceUID (0020,000E) is missing in 1 and empty in 2 file(s) (slice_005.dcm, "
        f"slice_006.dcm, slice_007.dcm) beside 1 series with one ({UID_A} ('AX LUNG', CT, 5 "
        f"files)): cannot tell which series these files belong to")
    for series in (None, UID_A):
        with _raises(tmp_path, message):
            read_dicom_series(tmp_path, series=series)
    assert [(s.uid, len(s.files)) for s in list_series(tmp_path)] == [("", 3), (UID_A, 5)]


# --- unreadable files -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "found"), [(None, "missing"), ([], "empty")])
@pytest.mark.parametrize(("keyword", "tag"), [("ImagePositionPatient", "(0020,0032)"),
                                              ("ImageOrientationPatient", "(0020,0037)"),
                                              ("PixelSpacing", "(0028,0030)"),
                                              ("Rows", "(0028,0010)"), ("Columns", "(0028,0011)")])
def test_missing_tag_names_file_and_tag(tmp_path: Path, keyword: str, tag: str,
                                        value: list[str] | None, found: str) -> None:
    files = write_series(tmp_path, _reference())
    _rewrite(files[6], **{keyword: value})
    with _raises(files[6], re.escape(f"{found} {keyword} {tag}, needed")):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize(("changes", "message"), [
    ({"PixelSpacing": [0.5, 0.7, 0.3]}, "invalid PixelSpacing [0.5, 0.7, 0.3]: expected 2 finite "
                                        "numbers"),
    ({"Columns": 0}, "invalid Columns 0: expected a positive whole number"),
])
def test_invalid_value_quoted(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    files = write_series(tmp_path, _reference())
    _rewrite(files[6], **changes)
    with _raises(files[6], re.escape(message)):
        read_dicom_series(tmp_path)


CORRUPTIONS = {
    "pixels_cut": (lambda data: data[:-10],
                   "cannot read the pixel data \\(The number of bytes of pixel data is less"),
    "header_cut": (lambda data: data[:300], re.escape(
        "no SOPClassUID (0008,0016), Modality (0008,0060) or SeriesInstanceUID (0020,000E) in the "
        "header: it holds 0 data element(s) (300-byte file, DICM marker at byte 128)")),
    "bad_vr": (lambda data: data.replace(b"\x02\x00\x10\x00UI", b"\x02\x00\x10\x00U?", 1),
               "cannot parse the DICOM header \\(Unknown Value Representation"),
    "garbage": (lambda data: b"garbage " * 100, re.escape(
        "no SOPClassUID (0008,0016), Modality (0008,0060) or SeriesInstanceUID (0020,000E) in the "
        "header: it holds 1 data element(s): (6167,6272) (800-byte file, no DICM marker at byte "
        "128)")),
    "no_preamble_bad_vr": (
        lambda data: data[132:].replace(b"\x02\x00\x10\x00UI", b"\x02\x00\x10\x00U?", 1),
        "cannot parse the DICOM header \\(Unknown Value Representation .*\\); the file has no "
        "DICM marker at byte 128"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_file_named(tmp_path: Path, corruption: str) -> None:
    files = write_series(tmp_path, _reference())
    damage, pattern = CORRUPTIONS[corruption]
    files[2].write_bytes(damage(files[2].read_bytes()))
    with _raises(files[2], pattern):
        read_dicom_series(tmp_path)


def _compressed_garbage(files: Sequence[Path], syntax: pydicom.uid.UID) -> Path:
    """The second file of a series, marked as compressed with ``syntax``, holding garbage."""
    ds = pydicom.dcmread(files[1])
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\x00\x01" * 30])
    ds["PixelData"].VR = "OB"
    ds.save_as(files[1], enforce_file_format=True)
    return files[1]


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, JPEG2000Lossless])
def test_corrupt_compressed_pixel_data_named(tmp_path: Path, syntax: pydicom.uid.UID) -> None:
    """The decoders are installed with ct3d, so undecodable data is a corrupt file."""
    path = _compressed_garbage(write_series(tmp_path, _reference()), syntax)
    with _raises(path, re.escape(f"cannot decode the {syntax.name} ({syntax}) pixel data (")
                 + ".*" + re.escape("): the file is corrupt, or compressed in a way the installed "
                                    "decoders do not support; if another viewer shows it, "
                                    "decompress the series first (gdcmconv --raw")):
        read_dicom_series(tmp_path)


class _NoDecoder:
    """What pydicom's ``get_decoder`` gives for a syntax whose plugins are not installed."""

    is_available = False
    missing_dependencies = ("pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1",
                            "gdcm - requires gdcm>=3.0.10")


def test_compressed_without_decoder_names_the_plugins(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _compressed_garbage(write_series(tmp_path, _reference()), JPEGLosslessSV1)
    monkeypatch.setattr("ct3d.io.dicom.get_decoder", lambda uid: _NoDecoder())
    with _raises(path, re.escape(
            f"pixel data compressed as {JPEGLosslessSV1.name} ({JPEGLosslessSV1}) and no decoder "
            f"for it is installed (pydicom's plugins for it: pylibjpeg - requires pylibjpeg>=2.0 "
            f"and pylibjpeg-libjpeg>=2.1; gdcm - requires gdcm>=3.0.10): reinstall ct3d, whose "
            f"dependencies include pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, "
            f"pylibjpeg-rle, or decompress the series first (gdcmconv --raw, or dcmdjpeg from "
            f"DCMTK for JPEG)")):
        read_dicom_series(tmp_path)


def test_folder_errors(tmp_path: Path) -> None:
    with _raises(tmp_path / "nope", "folder not found"):
        read_dicom_series(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with _raises(tmp_path / "notes.txt", "not a folder"):
        read_dicom_series(tmp_path / "notes.txt")
    with _raises(tmp_path, re.escape("no DICOM files in this folder (1 other file(s): "
                                     "notes.txt)")):
        read_dicom_series(tmp_path)
    write_series(tmp_path / "patient" / "series_1", _reference())
    with _raises(tmp_path / "patient", re.escape("no DICOM files in this folder (0 other "
                                                 "file(s)); it has sub-folders (series_1)")):
        read_dicom_series(tmp_path / "patient")


# --- finding series folders -------------------------------------------------------------------


def test_expand_paths_finds_series_folders_and_nifti(tmp_path: Path) -> None:
    ref = _reference()
    write_volume(ref, tmp_path / "a.nii.gz")
    write_volume(ref, tmp_path / "a_mask.nii.gz")
    write_series(tmp_path / "p1", ref)
    write_series(tmp_path / "sub" / "p2", ref, names=[f"IM{k}" for k in range(8)])
    write_volume(ref, tmp_path / "sub" / "b.nii")
    (tmp_path / "sub" / "notes").mkdir()
    (tmp_path / "sub" / "notes" / "x.txt").write_text("x")

    assert is_series_folder(tmp_path / "sub" / "p2")
    assert not is_series_folder(tmp_path / "sub") and not is_series_folder(tmp_path / "a.nii.gz")
    assert expand_paths([tmp_path]) == [tmp_path / "a.nii.gz", tmp_path / "p1",
                                        tmp_path / "sub" / "b.nii", tmp_path / "sub" / "p2"]
    assert expand_paths([tmp_path / "p1", tmp_path / "a.nii.gz"]) == [tmp_path / "p1",
                                                                      tmp_path / "a.nii.gz"]
