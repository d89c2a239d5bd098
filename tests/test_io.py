"""Tests for ct3d.io: NIfTI reading/writing, scaling, orientation and error reporting."""

from __future__ import annotations

import gzip
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
    assert np.array_equal(read_volume(out).array[0, 0, :4], [32767, -32768, 2, -2])

    out8 = write_volume(Volume(arr, SPACING, RAS_AFFINE, "x"), tmp_path / "u8.nii", np.uint8)
    assert np.array_equal(read_volume(out8).array[0, 0, :4], [255, 0, 2, 0])

    out_f = write_volume(Volume(arr, SPACING, RAS_AFFINE, "x"), tmp_path / "f.nii", np.float32)
    assert np.array_equal(read_volume(out_f).array, arr)


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
    with _raises(path, r"not a NIfTI file \(expected a \.nii or \.nii\.gz extension\)"):
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
    with _raises(path, "file is truncated or corrupt") as info:
        read_volume(path)
    assert info.value.__cause__ is not None


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
    data = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    for image_class in (nib.Nifti1Image, nib.Nifti2Image):
        path = tmp_path / f"{image_class.__name__}.nii.gz"
        nib.save(image_class(data, np.diag([0.7, 0.7, 5.0, 1.0])), path)
        vol = read_volume(path)
        np.testing.assert_array_equal(vol.array, data.astype(np.float32))
        assert vol.spacing == pytest.approx((0.7, 0.7, 5.0))
