"""Tests for ct3d.io: NIfTI reading/writing, scaling, orientation, the checks every scan gets
(finite, not constant, HU, padding set to air) and error reporting.

Header-level corruption (degenerate affines, huge or empty dimensions) and the property-based
test are in test_robustness.py."""

from __future__ import annotations

import gzip
import os
import re
import tracemalloc
from contextlib import AbstractContextManager
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ct3d.io import ScanError, read_volume, write_volume
from ct3d.volume import Volume

SHAPE = (20, 16, 6)
SPACING = (0.7, 0.8, 5.0)
RAS_AFFINE = np.array(
    [
        [0.7, 0.0, 0.0, -7.0],
        [0.0, 0.8, 0.0, -6.4],
        [0.0, 0.0, 5.0, -15.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture
def hu() -> np.ndarray:
    return np.random.default_rng(0).integers(-1024, 2000, SHAPE).astype(np.float32)


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def _flip(axis: int, n: int) -> np.ndarray:
    """Voxel-index transform for reversing ``axis`` of length ``n``."""
    m = np.eye(4)
    m[axis, axis] = -1.0
    m[axis, 3] = n - 1
    return m


def _raises(path: Path, pattern: str) -> AbstractContextManager[pytest.ExceptionInfo[ScanError]]:
    return pytest.raises(ScanError, match=re.escape(str(path)) + ": " + pattern)


# --- round trip -------------------------------------------------------------------------------


def test_round_trip_values_spacing_affine(tmp_path: Path, hu: np.ndarray) -> None:
    vol = Volume(hu, SPACING, RAS_AFFINE, "synthetic")
    written = write_volume(vol, tmp_path / "a" / "b" / "scan.nii.gz")
    assert written == tmp_path / "a" / "b" / "scan.nii.gz"

    back = read_volume(written)
    assert back.array.dtype == np.float32
    assert back.array.flags.c_contiguous or back.array.flags.f_contiguous
    assert np.array_equal(back.array, hu)
    assert back.spacing == pytest.approx(SPACING)
    assert np.allclose(back.affine, RAS_AFFINE)
    assert back.source == str(written)
    assert read_volume(str(written)).shape == SHAPE


def test_write_sets_header_and_leaves_no_temp_files(tmp_path: Path, hu: np.ndarray) -> None:
    out = write_volume(Volume(hu, SPACING, RAS_AFFINE, "x"), tmp_path / "scan.nii")
    hdr = nib.load(out).header
    assert hdr.get_data_dtype() == np.int16
    assert int(hdr["qform_code"]) == 1 and int(hdr["sform_code"]) == 1
    assert hdr.get_zooms() == pytest.approx(SPACING)
    assert np.allclose(hdr.get_sform(), RAS_AFFINE) and np.allclose(hdr.get_qform(), RAS_AFFINE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii"]


def test_write_rounds_and_clips_to_dtype(tmp_path: Path) -> None:
    arr = np.zeros(SHAPE, np.float32)
    arr[0, 0, :4] = [40000.0, -40000.0, 1.6, -1.6]
    out = write_volume(Volume(arr, SPACING, RAS_AFFINE, "x"), tmp_path / "clip.nii.gz")
    assert np.array_equal(read_volume(out, hu=False).array[0, 0, :4], [32767, -32768, 2, -2])
    # As CT, the -32768 is padding below air: it reads as -1024.
    assert np.array_equal(read_volume(out).array[0, 0, :4], [32767, -1024, 2, -2])

    out8 = write_volume(Volume(arr, SPACING, RAS_AFFINE, "x"), tmp_path / "u8.nii", np.uint8)
    assert np.array_equal(read_volume(out8, hu=False).array[0, 0, :4], [255, 0, 2, 0])

    out_f = write_volume(Volume(arr, SPACING, RAS_AFFINE, "x"), tmp_path / "f.nii", np.float32)
    assert np.array_equal(read_volume(out_f, hu=False).array, arr)


def test_write_rejects_bad_extension_and_shape(tmp_path: Path, hu: np.ndarray) -> None:
    with pytest.raises(ValueError, match="extension"):
        write_volume(Volume(hu, SPACING, RAS_AFFINE, "x"), tmp_path / "scan.npy")
    with pytest.raises(ValueError, match="3D"):
        write_volume(Volume(hu[..., 0], SPACING, RAS_AFFINE, "x"), tmp_path / "scan.nii")


# --- scaling ----------------------------------------------------------------------------------


def test_scl_slope_inter_applied_in_float32(tmp_path: Path, hu: np.ndarray) -> None:
    raw = (hu + 1024).astype(np.uint16)
    img = nib.Nifti1Image(raw, RAS_AFFINE)
    img.header.set_data_dtype(np.uint16)
    img.header.set_slope_inter(1.0, -1024.0)
    path = tmp_path / "u16.nii.gz"
    nib.save(img, path)
    assert nib.load(path).dataobj.inter == -1024.0  # the file really stores the scaling

    vol = read_volume(path)
    assert vol.array.dtype == np.float32
    assert np.array_equal(vol.array, hu)


def test_fractional_slope(tmp_path: Path) -> None:
    raw = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    img = nib.Nifti1Image(raw, RAS_AFFINE)
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(0.5, -1000.0)
    nib.save(img, tmp_path / "half.nii")
    vol = read_volume(tmp_path / "half.nii")
    assert vol.array.dtype == np.float32
    assert np.array_equal(vol.array, raw.astype(np.float32) * 0.5 - 1000)


def test_large_int16_read_makes_no_float64_copy(tmp_path: Path) -> None:
    shape = (256, 256, 40)
    raw = (np.arange(np.prod(shape)) % 3000 - 1000).astype(np.int16).reshape(shape)
    path = _save(raw, RAS_AFFINE, tmp_path / "big.nii")
    n = raw.size
    del raw

    tracemalloc.start()
    try:
        vol = read_volume(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert vol.array.dtype == np.float32
    # raw int16 + float32 result (+ small temporaries); a float64 copy alone would be 8n bytes.
    assert peak < 2 * n + 1.6 * 4 * n


# --- orientation ------------------------------------------------------------------------------


def test_orientation_canonicalized(tmp_path: Path, hu: np.ndarray) -> None:
    nx, ny, nz = SHAPE
    permute = np.array(  # stored axes (z, x, y) -> canonical (x, y, z)
        [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float
    )
    variants = {
        "ras": (hu, RAS_AFFINE),
        "flip_x": (hu[::-1], RAS_AFFINE @ _flip(0, nx)),
        "flip_z": (hu[:, :, ::-1], RAS_AFFINE @ _flip(2, nz)),
        "lps": (hu[::-1, ::-1], RAS_AFFINE @ _flip(0, nx) @ _flip(1, ny)),
        "permuted": (hu.transpose(2, 0, 1), RAS_AFFINE @ permute),
        "permuted_flipped": (
            hu[::-1].transpose(2, 0, 1),
            RAS_AFFINE @ _flip(0, nx) @ permute,
        ),
    }
    lps = variants["lps"][1]
    assert lps[0, 0] < 0 and lps[1, 1] < 0  # voxel axes run towards L and P
    vols = {}
    for name, (arr, aff) in variants.items():
        path = tmp_path / f"{name}.nii.gz"
        spacing = tuple(np.linalg.norm(aff[:3, :3], axis=0))  # along the stored axes
        write_volume(Volume(np.ascontiguousarray(arr), spacing, aff, name), path)
        vols[name] = read_volume(path)

    ref = vols["ras"]
    assert np.array_equal(ref.array, hu)
    for name, vol in vols.items():
        assert np.array_equal(vol.array, ref.array), name
        assert vol.spacing == ref.spacing, name
        assert vol.spacing == pytest.approx(SPACING), name
        assert np.allclose(vol.affine, ref.affine, atol=1e-4), name


# --- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.nii.gz"
    with _raises(path, "file not found") as info:
        read_volume(path)
    assert info.value.path == str(path)
    assert info.value.reason == "file not found"
    assert isinstance(info.value, ValueError)


def test_text_file_named_nii_gz(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    path.write_text("this is not a scan\n")
    with _raises(path, "not a NIfTI file .*not gzip-compressed"):
        read_volume(path)


def test_gzip_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    path.write_bytes(gzip.compress(b"garbage " * 100))
    with _raises(path, "not a NIfTI file"):
        read_volume(path)


def test_wrong_extension(tmp_path: Path, hu: np.ndarray) -> None:
    path = tmp_path / "scan.txt"
    path.write_bytes(_save(hu, RAS_AFFINE, tmp_path / "scan.nii").read_bytes())
    with _raises(path, r"not a NIfTI, NRRD or MetaImage file, nor a DICOM folder \(expected a "
                       r"\.nii\.gz, \.nii, \.nrrd, \.nhdr, \.mha or \.mhd extension\)"):
        read_volume(path)


def test_truncated_gzip(tmp_path: Path, hu: np.ndarray) -> None:
    good = _save(hu.astype(np.int16), RAS_AFFINE, tmp_path / "good.nii.gz").read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(good[: len(good) // 2])
    with _raises(path, "gzip stream is truncated or corrupt") as info:
        read_volume(path)
    assert isinstance(info.value.__cause__, EOFError)


def test_truncated_uncompressed(tmp_path: Path, hu: np.ndarray) -> None:
    good = _save(hu.astype(np.int16), RAS_AFFINE, tmp_path / "good.nii").read_bytes()
    path = tmp_path / "cut.nii"
    path.write_bytes(good[: len(good) // 2])
    need = 352 + hu.size * 2
    with _raises(path, f"file is truncated: shape \\(20, 16, 6\\) of int16 needs {need} bytes, "
                       f"found {len(good) // 2}"):
        read_volume(path)


def test_2d_image(tmp_path: Path) -> None:
    path = _save(np.zeros((64, 64), np.int16), np.eye(4), tmp_path / "flat.nii.gz")
    with _raises(path, r"expected a 3D volume, found shape \(64, 64\)"):
        read_volume(path)


def test_5d_image(tmp_path: Path) -> None:
    path = _save(np.zeros((4, 4, 4, 1, 2), np.int16), np.eye(4), tmp_path / "5d.nii")
    with _raises(path, r"expected a 3D volume, found shape \(4, 4, 4, 1, 2\)"):
        read_volume(path)


def test_4d_with_three_volumes(tmp_path: Path, hu: np.ndarray) -> None:
    arr = np.stack([hu] * 3, axis=-1).astype(np.int16)
    path = _save(arr, RAS_AFFINE, tmp_path / "4d.nii.gz")
    with _raises(path, r"expected a 3D volume, found 4D with 3 volumes \(20, 16, 6, 3\)"):
        read_volume(path)


def test_4d_with_one_volume_is_squeezed(tmp_path: Path, hu: np.ndarray) -> None:
    path = _save(
        hu[..., None].astype(np.int16), RAS_AFFINE @ _flip(0, SHAPE[0]), tmp_path / "1.nii"
    )
    vol = read_volume(path)
    assert vol.shape == SHAPE
    assert np.array_equal(vol.array, hu[::-1])
    assert len(vol.spacing) == 3


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (np.nan, "non-finite values: 2 NaN and 0 infinite voxels"),
        (np.inf, "non-finite values: 0 NaN and 2 infinite voxels"),
    ],
)
def test_non_finite_values(tmp_path: Path, hu: np.ndarray, value: float, pattern: str) -> None:
    arr = hu.copy()
    arr[1, 2, 3] = arr[4, 5, 0] = value
    path = _save(arr, RAS_AFFINE, tmp_path / "bad.nii.gz")
    with _raises(path, pattern):
        read_volume(path)


def test_nifti2_gz_reads_like_nifti1(tmp_path: Path) -> None:
    data = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2) * 50 - 1000
    for image_class in (nib.Nifti1Image, nib.Nifti2Image):
        path = tmp_path / f"{image_class.__name__}.nii.gz"
        nib.save(image_class(data, np.diag([0.7, 0.7, 5.0, 1.0])), path)
        vol = read_volume(path)
        np.testing.assert_array_equal(vol.array, data.astype(np.float32))
        assert vol.spacing == pytest.approx((0.7, 0.7, 5.0))


def test_trailing_dimensions_of_size_one_are_dropped(tmp_path: Path, hu: np.ndarray) -> None:
    path = _save(hu[..., None, None].astype(np.int16), RAS_AFFINE, tmp_path / "5d.nii.gz")
    assert nib.load(path).shape == (*SHAPE, 1, 1)
    assert np.array_equal(read_volume(path).array, hu)


# --- files that are not readable scans ---------------------------------------------------------


@pytest.mark.parametrize("method", ["stat", "read_bytes"])
def test_permission_denied(
    tmp_path: Path, hu: np.ndarray, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    path = _save(hu.astype(np.int16), RAS_AFFINE, tmp_path / "locked.nii.gz")
    original = getattr(Path, method)

    def denied(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, method, denied)
    with _raises(path, "permission denied$") as info:
        read_volume(path)
    assert isinstance(info.value.__cause__, PermissionError)


def test_pipe_is_not_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "pipe.nii.gz"
    os.mkfifo(path)
    with _raises(path, r"not a regular file \(a pipe, socket or device\)"):
        read_volume(path)  # without the check, opening a pipe would block forever


def test_folder_goes_to_the_dicom_reader(tmp_path: Path) -> None:
    folder = tmp_path / "study.nii.gz"
    folder.mkdir()
    (folder / "notes.txt").write_text("no DICOM here")
    with pytest.raises(ScanError, match="no DICOM files") as info:
        read_volume(folder)
    assert info.value.path == str(folder)


def test_series_needs_a_folder(tmp_path: Path, hu: np.ndarray) -> None:
    path = _save(hu.astype(np.int16), RAS_AFFINE, tmp_path / "scan.nii")
    with _raises(path, "series='1.2.3' is for a DICOM folder; this is a file"):
        read_volume(path, series="1.2.3")


@pytest.mark.parametrize("name", ["empty.nii", "empty.nii.gz"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.touch()
    with _raises(path, r"empty file \(0 bytes\)"):
        read_volume(path)


@pytest.mark.parametrize("name", ["scan.dcm", "scan.npy", "scan.nii.zip", "scan.nrrd.gz"])
def test_other_formats_are_refused_by_name(tmp_path: Path, hu: np.ndarray, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(_save(hu, RAS_AFFINE, tmp_path / "scan.nii").read_bytes()))
    with _raises(path, r"not a NIfTI, NRRD or MetaImage file, nor a DICOM folder"):
        read_volume(path)


def test_gzip_named_nii(tmp_path: Path, hu: np.ndarray) -> None:
    good = _save(hu.astype(np.int16), RAS_AFFINE, tmp_path / "good.nii.gz")
    path = tmp_path / "renamed.nii"
    path.write_bytes(good.read_bytes())
    with _raises(path, r"not a NIfTI file \(gzip-compressed despite the \.nii suffix; "
                       r"rename it to \.nii\.gz\)"):
        read_volume(path)


def test_header_image_pair_magic(tmp_path: Path, hu: np.ndarray) -> None:
    data = bytearray(nib.Nifti1Image(hu.astype(np.int16), RAS_AFFINE).to_bytes())
    data[344:348] = b"ni1\0"
    path = tmp_path / "pair.nii"
    path.write_bytes(bytes(data))
    with _raises(path, r"not a single-file NIfTI \(magic b'ni1'; a \.hdr/\.img pair\?\)"):
        read_volume(path)


@pytest.mark.parametrize(
    ("dtype", "shown"),
    [(np.complex64, "complex64"), ([("R", "u1"), ("G", "u1"), ("B", "u1")], "\\[\\('R'")],
)
def test_unsupported_voxel_types(tmp_path: Path, dtype: object, shown: str) -> None:
    path = _save(np.zeros(SHAPE, dtype=dtype), RAS_AFFINE, tmp_path / "odd.nii")
    with _raises(path, f"unsupported voxel type {shown}"):
        read_volume(path)


def test_invalid_intercept(tmp_path: Path, hu: np.ndarray) -> None:
    img = nib.Nifti1Image(hu.astype(np.int16), RAS_AFFINE)
    img.header["scl_slope"], img.header["scl_inter"] = 2.0, np.nan
    path = tmp_path / "nan_inter.nii"
    path.write_bytes(img.header.binaryblock + b"\0" * 4 + hu.astype(np.int16).tobytes("F"))
    with _raises(path, r"not a NIfTI file \(invalid header: Valid slope but invalid intercept"):
        read_volume(path)


# --- checks on the values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype", "shown"),
    [(-1000, np.int16, "-1000"), (0, np.uint8, "0"), (0.25, np.float32, "0.25")],
)
def test_constant_volume(
    tmp_path: Path, value: float, dtype: type[np.generic], shown: str
) -> None:
    path = _save(np.full(SHAPE, value, dtype), RAS_AFFINE, tmp_path / "flat.nii.gz")
    with _raises(path, f"constant volume: every voxel is {shown}$"):
        read_volume(path)
    assert np.array_equal(read_volume(path, hu=False).array, np.full(SHAPE, value, np.float32))


def _scaled(hu: np.ndarray, kind: str) -> np.ndarray:
    """``hu`` (integer HU in [-1024, 2000)) as data normalised in one of the usual ways."""
    unit = (hu - hu.min()) / (hu.max() - hu.min())
    return {
        "uint8": np.rint(unit * 255).astype(np.uint8),
        "unit": unit.astype(np.float32),
        "symmetric": (2 * unit - 1).astype(np.float32),
        "zscore": ((hu - hu.mean()) / hu.std()).astype(np.float32),
        "per_mille": (hu / 1000).astype(np.float32),
        "no_intercept": (hu + 1024).astype(np.uint16),
        "huge": (hu * np.float32(1e30)).astype(np.float32),
    }[kind]


@pytest.mark.parametrize(
    "kind", ["uint8", "unit", "symmetric", "zscore", "per_mille", "no_intercept", "huge"]
)
def test_data_that_is_not_hounsfield_is_refused(
    tmp_path: Path, hu: np.ndarray, kind: str
) -> None:
    data = _scaled(hu, kind)
    path = _save(data, RAS_AFFINE, tmp_path / f"{kind}.nii.gz")
    lo, hi = float(data.min()), float(data.max())
    with _raises(path, re.escape(f"does not look like CT in Hounsfield units: values in "
                                 f"[{lo:g}, {hi:g}] (dtype {data.dtype.name}); ct3d expects HU "
                                 f"(air ≈ -1000, water 0")):
        read_volume(path)
    assert np.array_equal(read_volume(path, hu=False).array, data.astype(np.float32))


def test_hounsfield_rule_boundaries(tmp_path: Path) -> None:
    """The minimum must be at most -500 HU and every value within +-65536 HU."""
    base = np.zeros(SHAPE, np.float32)
    for lowest, highest, accepted in [(-500, 100, True), (-499, 100, False),
                                      (-1000, 65536, True), (-1000, 65537, False),
                                      (-65536, 0, True), (-65537, 0, False)]:
        arr = base.copy()
        arr[0, 0, 0], arr[1, 1, 1] = lowest, highest
        path = _save(arr, RAS_AFFINE, tmp_path / f"{lowest}_{highest}.nii")
        if accepted:
            vol = read_volume(path)
            assert vol.array.max() == highest
            assert vol.array.min() == max(lowest, -1024)
        else:
            with _raises(path, f"does not look like CT in Hounsfield units: values in "
                               f"\\[{lowest}, {highest}\\] \\(dtype float32\\)"):
                read_volume(path)


def test_scaling_shown_when_data_is_not_hounsfield(tmp_path: Path, hu: np.ndarray) -> None:
    img = nib.Nifti1Image(np.rint(hu + 1024).astype(np.int16), RAS_AFFINE)
    img.header.set_slope_inter(0.001, 0.0)
    path = tmp_path / "rescaled.nii"
    nib.save(img, path)
    with _raises(path, r"does not look like CT in Hounsfield units: values in \[0, 3.0\d*\] "
                       r"\(dtype int16, scl_slope 0.001, scl_inter 0\)"):
        read_volume(path)


@pytest.mark.parametrize("padding", [-2000, -2048, -3024, -32768])
def test_padding_below_air_reads_as_air(tmp_path: Path, hu: np.ndarray, padding: int) -> None:
    arr = hu.copy()
    arr[:5] = padding  # outside the field of view
    path = _save(arr.astype(np.int16), RAS_AFFINE, tmp_path / "padded.nii.gz")
    vol = read_volume(path)
    assert np.array_equal(vol.array[:5], np.full((5, *SHAPE[1:]), -1024, np.float32))
    assert np.array_equal(vol.array[5:], hu[5:])
    assert np.array_equal(read_volume(path, hu=False).array, arr)  # kept as stored


def test_values_beyond_float32_are_not_finite(tmp_path: Path, hu: np.ndarray) -> None:
    arr = hu.astype(np.float64)
    arr[0, 0, 0] = 1e39
    path = _save(arr, RAS_AFFINE, tmp_path / "f64.nii")
    with _raises(path, "non-finite values: 0 NaN and 1 infinite voxels"):
        read_volume(path)
