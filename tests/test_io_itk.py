"""Tests for ct3d.io.itk: NRRD and MetaImage scans read into the same RAS+ Volume as NIfTI, and
broken ones refused with a ScanError naming the file and the problem.

The scan is stored with its axes permuted and one reversed, a non-zero origin and anisotropic
voxels, so that a wrong LPS / RAS conversion or axis order fails the comparison."""

from __future__ import annotations

import re
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ct3d.io import SCAN_SUFFIXES, ScanError, read_volume, scan_format, write_volume
from ct3d.volume import Volume

SHAPE = (6, 5, 4)  # canonical (RAS+) x, y, z
AFFINE = np.array([[0.7, 0.0, 0.0, -12.5],
                   [0.0, 0.9, 0.0, 30.0],
                   [0.0, 0.0, 2.5, -101.25],
                   [0.0, 0.0, 0.0, 1.0]])
STORED = np.array([[0.0, 1.0, 0.0, 0.0],  # stored voxel (i, j, k) is canonical (j, k, 3 - i)
                   [0.0, 0.0, 1.0, 0.0],
                   [-1.0, 0.0, 0.0, SHAPE[2] - 1.0],
                   [0.0, 0.0, 0.0, 1.0]])
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture
def reference() -> Volume:
    """The scan as read_volume must give it: RAS+ order, canonical affine."""
    array = np.random.default_rng(0).integers(-1024, 2000, SHAPE).astype(np.float32)
    return Volume(array, (0.7, 0.9, 2.5), AFFINE, "reference")


def _stored(ref: Volume) -> Volume:
    """The same anatomy stored as (z reversed, x, y): the volume a file holds."""
    array = np.ascontiguousarray(np.flip(ref.array, 2).transpose(2, 0, 1))
    return Volume(array, (2.5, 0.7, 0.9), AFFINE @ STORED, "stored")


def itk_image(stored: Volume, array: np.ndarray | None = None) -> sitk.Image:
    """``stored`` (values as int16) as a SimpleITK image with its geometry in LPS, as ITK
    holds it; ``array``, in ITK's (z, y, x) order, replaces the values."""
    values = stored.array.astype(np.int16) if array is None else array
    image = sitk.GetImageFromArray(values.T if array is None else values)  # ITK: (z, y, x)
    lps = LPS @ stored.affine
    image.SetSpacing(stored.spacing)
    image.SetOrigin(lps[:3, 3].tolist())
    image.SetDirection((lps[:3, :3] / np.array(stored.spacing)).ravel().tolist())
    return image


def _ras_nrrd(path: Path, stored: Volume) -> Path:
    """A NRRD in right-anterior-superior space, written by hand: no ITK involved."""
    directions = " ".join("(" + ",".join(f"{v:.17g}" for v in stored.affine[:3, a]) + ")"
                          for a in range(3))
    origin = ",".join(f"{v:.17g}" for v in stored.affine[:3, 3])
    header = (f"NRRD0004\ntype: short\ndimension: 3\nspace: right-anterior-superior\n"
              f"sizes: {' '.join(map(str, stored.shape))}\nspace directions: {directions}\n"
              f"kinds: domain domain domain\nendian: little\nencoding: raw\n"
              f"space origin: ({origin})\n\n")
    path.write_bytes(header.encode() + stored.array.astype("<i2").tobytes(order="F"))
    return path


def _write_all(folder: Path, ref: Volume) -> dict[str, Path]:
    """The scan in every format and encoding, by name."""
    stored = _stored(ref)
    image = itk_image(stored)
    paths = {"nifti": write_volume(stored, folder / "scan.nii.gz")}
    for name, file, compress in [("nrrd raw", "raw.nrrd", False), ("nrrd gzip", "gz.nrrd", True),
                                 ("nhdr detached gzip", "detached.nhdr", True),
                                 ("mha raw", "raw.mha", False), ("mha zlib", "zlib.mha", True),
                                 ("mhd + raw", "detached.mhd", False)]:
        sitk.WriteImage(image, str(folder / file), useCompression=compress)
        paths[name] = folder / file
    paths["nrrd ras"] = _ras_nrrd(folder / "ras.nrrd", stored)
    return paths


def test_every_format_reads_like_nifti(tmp_path: Path, reference: Volume) -> None:
    paths = _write_all(tmp_path, reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "detached.mhd", "detached.nhdr", "detached.raw", "detached.raw.gz", "gz.nrrd",
        "ras.nrrd", "raw.mha", "raw.nrrd", "scan.nii.gz", "zlib.mha"]
    assert b"space: left-posterior-superior" in paths["nrrd raw"].read_bytes()
    assert b"encoding: gzip" in paths["nrrd gzip"].read_bytes()
    assert b"CompressedData = True" in paths["mha zlib"].read_bytes()

    nifti = read_volume(paths["nifti"])
    np.testing.assert_array_equal(nifti.array, reference.array)
    for name, path in paths.items():
        vol = read_volume(path)
        assert vol.array.dtype == np.float32, name
        np.testing.assert_array_equal(vol.array, nifti.array, err_msg=name)
        assert vol.spacing == pytest.approx(nifti.spacing, rel=1e-6), name
        np.testing.assert_allclose(vol.affine, nifti.affine, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(vol.affine, reference.affine, atol=1e-12 if name != "nifti"
                                   else 1e-5, err_msg=name)
        assert vol.source == str(path)


def test_scan_formats_by_name() -> None:
    assert SCAN_SUFFIXES == (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
    assert [scan_format(f"s{suffix.upper()}") for suffix in SCAN_SUFFIXES] == [
        "NIfTI", "NIfTI", "NRRD", "NRRD", "MetaImage", "MetaImage"]


def test_4d_file_with_one_volume_is_squeezed(tmp_path: Path, reference: Volume) -> None:
    stored = _stored(reference)
    image = sitk.JoinSeries([itk_image(stored)])
    assert image.GetDimension() == 4
    sitk.WriteImage(image, str(tmp_path / "one.nrrd"))
    vol = read_volume(tmp_path / "one.nrrd")
    np.testing.assert_array_equal(vol.array, reference.array)


def test_hu_check_names_the_format(tmp_path: Path, reference: Volume) -> None:
    stored = _stored(reference)
    unsigned = (stored.array + 1024).astype(np.uint16).T  # no intercept in the file
    sitk.WriteImage(itk_image(stored, unsigned), str(tmp_path / "u.mha"))
    low, high = int(reference.array.min()) + 1024, int(reference.array.max()) + 1024
    with _raises(tmp_path / "u.mha", re.escape(f"does not look like CT in Hounsfield units: "
                                               f"values in [{low}, {high}] (MetaImage, dtype "
                                               f"uint16)")):
        read_volume(tmp_path / "u.mha")
    np.testing.assert_array_equal(read_volume(tmp_path / "u.mha", hu=False).array,
                                  reference.array + 1024)


# --- broken files -----------------------------------------------------------------------------


def _raises(path: Path, pattern: str) -> AbstractContextManager[pytest.ExceptionInfo[ScanError]]:
    return pytest.raises(ScanError, match=re.escape(str(path)) + ": " + pattern)


def _cut(path: Path, n: int = 10) -> None:
    path.write_bytes(path.read_bytes()[:-n])


def _garble(path: Path) -> None:
    """Overwrite 8 bytes in the middle of the compressed data (the header stays intact)."""
    data = bytearray(path.read_bytes())
    data[-40:-32] = b"\xff" * 8
    path.write_bytes(bytes(data))


BROKEN = {
    "raw.nrrd": (_cut, "cannot read the voxel data: the file is truncated or corrupt "
                       r"\(fread got only 115 2-sized things, not 120 \(95.8333% of expected\)\)"),
    "gz.nrrd": (_cut, "cannot read the voxel data: the file is truncated or corrupt "
                      r"\(expected 240 bytes but received \d+\)"),
    "corrupt.nrrd": (_garble, "cannot read the voxel data: the file is truncated or corrupt "),
    "raw.mha": (_cut, "cannot read the voxel data: the file is truncated or corrupt$"),
    "zlib.mha": (_cut, r"the zlib-compressed voxel data in zlib\.mha is truncated \(the stream "
                       r"ends early\)"),
    "corrupt.mha": (_garble, r"the zlib-compressed voxel data in corrupt\.mha is corrupt \(.+\)"),
    "header.nrrd": (lambda p: p.write_bytes(b"NRRD0004\ntype: bogus\n\n"),
                    r"not a NRRD file, or its header is corrupt \(.*bogus.*\)"),
    "text.nrrd": (lambda p: p.write_text("not a scan\n"),
                  r"not a NRRD file, or its header is corrupt \(.*not a scan.*\)"),
    "text.mha": (lambda p: p.write_text("not a scan\n"),
                 "not a MetaImage file, or its header is corrupt$"),
    "empty.mha": (lambda p: p.write_bytes(b""), r"empty file \(0 bytes\)"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_file_named(tmp_path: Path, reference: Volume, name: str) -> None:
    path = tmp_path / name
    sitk.WriteImage(itk_image(_stored(reference)), str(path),
                    useCompression=name.startswith(("gz", "zlib", "corrupt")))
    damage, pattern = BROKEN[name]
    damage(path)
    with _raises(path, pattern):
        read_volume(path)


@pytest.mark.parametrize(("name", "data"), [("scan.nhdr", "scan.raw.gz"),
                                            ("scan.mhd", "scan.zraw")])
def test_missing_detached_data_file(tmp_path: Path, reference: Volume, name: str,
                                    data: str) -> None:
    sitk.WriteImage(itk_image(_stored(reference)), str(tmp_path / name), useCompression=True)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(tmp_path / data, moved / data)
    with _raises(tmp_path / name, re.escape(f"the detached data file '{data}' named in the "
                                            f"header is missing (looked for {tmp_path / data})")):
        read_volume(tmp_path / name)
    shutil.move(moved / data, tmp_path / data)
    np.testing.assert_array_equal(read_volume(tmp_path / name).array, reference.array)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_not_one_3d_volume(tmp_path: Path, suffix: str) -> None:
    flat = tmp_path / f"flat{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((5, 6), -1000, np.int16)), str(flat))
    with _raises(flat, re.escape("expected a 3D volume, found shape (6, 5)")):
        read_volume(flat)

    series = tmp_path / f"series{suffix}"
    volume = sitk.GetImageFromArray(np.full((4, 5, 6), -1000, np.int16))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(series))
    with _raises(series, re.escape("expected a 3D volume, found 4D with 2 volumes "
                                   "(6, 5, 4, 2)")):
        read_volume(series)

    vector = tmp_path / f"vector{suffix}"
    rgb = sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(vector))
    with _raises(vector, re.escape("a vector or complex image (3 values per voxel, vector of "
                                   "8-bit unsigned integer): expected one value per voxel")):
        read_volume(vector)


def test_no_usable_geometry(tmp_path: Path, reference: Volume) -> None:
    path = tmp_path / "flat.mha"
    sitk.WriteImage(itk_image(_stored(reference)), str(path))
    data = path.read_bytes()
    assert b"TransformMatrix = 0 0 -1 -1 0 0 0 -1 0" in data
    path.write_bytes(data.replace(b"TransformMatrix = 0 0 -1 -1 0 0 0 -1 0",
                                  b"TransformMatrix = 0 0 -1 0 0 -1 0 -1 0"))
    with _raises(path, "no usable geometry: spacing"):
        read_volume(path)
