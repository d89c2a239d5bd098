"""Bad input everywhere scans are read: each case is handled, or a ScanError naming the file.

Covers header corruption (geometry, dimensions), field-of-view padding, the HU rule on
realistic scans, tiny and large volumes through the preprocess chains, a dataset run that
skips and lists bad scans, and a property-based test over random files.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import math
import re
import tempfile
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from ct3d.data.sources import load_scans
from ct3d.data.synthetic import DIFFICULTIES, PRESETS, Phantom, Tissue, render_phantom
from ct3d.engine import run
from ct3d.io import MAX_VOXELS, ScanError, read_volume, write_volume
from ct3d.preprocess import build_preprocess
from ct3d.preprocess.geometry import resize, slice_trim
from ct3d.preprocess.intensity import standardize
from ct3d.preprocess.lung import body_mask, lung_crop, lung_mask
from ct3d.scenario import Scenario
from ct3d.volume import Volume

SMALL = (8, 8, 6)
QUICK_CHAIN = Scenario.preset("quick").with_overrides(
    {"preprocess.2.params.shape": list(SMALL)}).preprocess
THESIS_CHAIN = Scenario.preset("thesis").preprocess


def write_raw(
    path: Path, array: np.ndarray, affine: np.ndarray | None = None, *,
    zooms: tuple[float, float, float] | None = None, slope: float = np.nan, inter: float = 0.0,
    shape: tuple[int, ...] | None = None, qform: np.ndarray | None = None,
) -> Path:
    """Write ``array`` as NIfTI-1 with exactly this header (nibabel would refuse or fix some).

    ``affine`` goes into the sform (code 1) unchecked; ``zooms`` default to its column norms;
    ``shape`` may claim other dimensions than the data has; ``qform`` (code 1) is optional.
    """
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    header = nib.Nifti1Header()
    header.set_data_dtype(array.dtype)
    header.set_data_shape(array.shape if shape is None else shape)
    if qform is not None:
        header.set_qform(qform, code=1)
    header.set_sform(affine, code=1)
    with np.errstate(invalid="ignore"):
        header["pixdim"][1:4] = (np.linalg.norm(affine[:3, :3], axis=0) if zooms is None
                                 else zooms)
    header["scl_slope"], header["scl_inter"] = slope, inter
    header["vox_offset"] = 352
    payload = header.binaryblock + b"\0" * 4 + array.tobytes(order="F")
    path.write_bytes(gzip.compress(payload, 1) if path.name.endswith(".gz") else payload)
    return path


def _ct(shape: tuple[int, ...] = (20, 16, 6), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1024, 2000, shape).astype(np.int16)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


# --- geometry in the header --------------------------------------------------------------------


def test_degenerate_sform_falls_back_to_the_qform(tmp_path: Path) -> None:
    qform = np.diag([-0.7, -0.7, 5.0, 1.0])  # LPS: read flips x and y
    degenerate = np.diag([0.7, 0.0, 5.0, 1.0])
    ct = _ct()
    path = write_raw(tmp_path / "s.nii.gz", ct, degenerate, zooms=(0.7, 0.7, 5.0), qform=qform)
    with pytest.warns(UserWarning, match=re.escape(f"{path}: degenerate or non-finite affine "
                                                   f"in the header; using the qform")):
        vol = read_volume(path)
    assert np.array_equal(vol.array, ct[::-1, ::-1])
    assert vol.spacing == pytest.approx((0.7, 0.7, 5.0))
    assert np.allclose(np.diag(vol.affine)[:3], [0.7, 0.7, 5.0])


@pytest.mark.parametrize("kind", ["zero_column", "all_zero", "nan", "inf", "collinear"])
def test_degenerate_affine_falls_back_to_voxel_sizes(tmp_path: Path, kind: str) -> None:
    affine = {
        "zero_column": np.diag([0.7, 0.7, 0.0, 1.0]),
        "all_zero": np.zeros((4, 4)),
        "nan": np.diag([np.nan, 0.7, 5.0, 1.0]),
        "inf": np.diag([0.7, np.inf, 5.0, 1.0]),
        "collinear": np.array([[0.7, 0.7, 0, 0], [0, 0, 0.7, 0], [0, 0, 0, 0], [0, 0, 0, 1.0]]),
    }[kind]
    ct = _ct()
    path = write_raw(tmp_path / f"{kind}.nii", ct, affine, zooms=(0.7, 0.8, 5.0))
    with pytest.warns(UserWarning, match="using the voxel sizes, axes as stored"):
        vol = read_volume(path)
    assert np.array_equal(vol.array, ct)
    assert vol.spacing == pytest.approx((0.7, 0.8, 5.0))
    assert np.allclose(vol.affine, np.diag([0.7, 0.8, 5.0, 1.0]))


def test_no_usable_geometry(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "lost.nii", _ct(), np.zeros((4, 4)), zooms=(np.nan, 1.0, 1.0))
    with pytest.raises(ScanError, match=re.escape(
            f"{path}: no usable geometry: the affine is degenerate or not finite and the voxel "
            f"sizes are [nan, 1.0, 1.0]")):
        read_volume(path)


def test_bad_voxel_sizes_come_from_a_good_affine(tmp_path: Path) -> None:
    affine = np.diag([0.6, 0.9, 2.5, 1.0])
    path = write_raw(tmp_path / "nan_zooms.nii", _ct(), affine, zooms=(np.nan, 0.9, 2.5))
    vol = read_volume(path)
    assert vol.spacing == pytest.approx((0.6, 0.9, 2.5))
    assert np.allclose(vol.affine, affine)


# --- dimensions in the header ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 16, 6), (20, 0, 6), (20, 16, 0), (20, 16, 0, 1)])
def test_zero_size_dimension(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = write_raw(tmp_path / "none.nii.gz", np.zeros(shape, np.int16))
    with pytest.raises(ScanError, match=re.escape(
            f"{path}: empty volume: shape {shape[:3]} has no voxels")):
        read_volume(path)


def _refused_without_allocating(path: Path, message: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ScanError, match=re.escape(f"{path}: {message}")):
            read_volume(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_huge_header_dimensions_are_refused_before_allocating(tmp_path: Path) -> None:
    shape = (32767, 32767, 3000)
    path = write_raw(tmp_path / "huge.nii.gz", _ct(), shape=shape)
    _refused_without_allocating(
        path, f"shape {shape} in the header has 3.22e+12 voxels (1.2e+04 GiB as float32); "
              f"ct3d reads at most {MAX_VOXELS} (2**31)")


def test_dimensions_beyond_the_data_are_refused_before_allocating(tmp_path: Path) -> None:
    shape = (1000, 1000, 1000)  # 2 GB of int16 claimed, 3840 bytes stored; within MAX_VOXELS
    path = write_raw(tmp_path / "short.nii", _ct(), shape=shape)
    _refused_without_allocating(
        path, f"file is truncated: shape {shape} of int16 needs 2000000352 bytes, found 4192")


# --- field-of-view padding ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_fov_padding_does_not_change_masks_crops_or_statistics(tmp_path: Path, seed: int) -> None:
    """A circular field of view padded with -3024 outside gives the same lungs and body."""
    phantom = render_phantom(seed, abnormal=True)
    w, h, _ = phantom.volume.shape
    x, y = np.ogrid[:w, :h]
    outside = ((x - (w - 1) / 2) ** 2 + (y - (h - 1) / 2) ** 2 > (w / 2) ** 2)[:, :, None]
    assert outside.mean() > 0.2  # the corners, with part of the table
    padded = phantom.volume.replace(array=np.where(outside, np.float32(-3024),
                                                   phantom.volume.array))
    plain = read_volume(write_volume(phantom.volume, tmp_path / "plain.nii.gz"))
    read = read_volume(write_volume(padded, tmp_path / "padded.nii.gz"))
    assert read.array.min() == -1024
    inside = np.broadcast_to(~outside, read.shape)

    lungs = lung_mask(read)
    assert np.array_equal(lungs, lung_mask(plain))
    assert np.array_equal(lungs, lung_mask(padded))  # raw -3024 also counts as air
    assert _dice(lungs, phantom.lungs) > 0.98
    assert np.array_equal(body_mask(read)[inside], body_mask(plain)[inside])
    assert not body_mask(read)[~inside].any()
    crop, crop_plain = lung_crop()(read), lung_crop()(plain)
    assert crop.shape == crop_plain.shape and np.array_equal(crop.affine, crop_plain.affine)
    for region in ("body", "lungs"):
        assert np.array_equal(standardize(region)(read).array[inside],
                              standardize(region)(plain).array[inside]), region
    thesis = build_preprocess(THESIS_CHAIN[:2])  # hu_window, rotate90: the padding is windowed to 0
    np.testing.assert_array_equal(thesis(read).array,
                                  thesis(read.replace(array=np.where(
                                      outside, np.float32(-1000), read.array))).array)


# --- the HU rule on realistic scans ------------------------------------------------------------


@pytest.mark.parametrize("difficulty", sorted(DIFFICULTIES))
@pytest.mark.parametrize("abnormal", [False, True])
def test_hu_rule_accepts_phantoms(tmp_path: Path, difficulty: str, abnormal: bool) -> None:
    phantom = render_phantom(3, abnormal, "quick", difficulty)
    path = write_volume(phantom.volume, tmp_path / "p.nii.gz")
    np.testing.assert_array_equal(read_volume(path).array, phantom.volume.array)


def test_hu_rule_accepts_the_mosmed_preset(tmp_path: Path) -> None:
    assert sorted(PRESETS) == ["mosmed", "quick"]
    phantom = render_phantom(0, True, "mosmed", "hard")
    path = write_volume(phantom.volume, tmp_path / "mosmed.nii.gz")
    assert read_volume(path).shape == phantom.volume.shape


def _small_field(phantom: Phantom, tmp_path: Path, box: tuple[slice, ...], name: str) -> Path:
    array = phantom.volume.array[box]
    return write_volume(Volume(np.ascontiguousarray(array), phantom.volume.spacing,
                               phantom.volume.affine, name), tmp_path / f"{name}.nii.gz")


def test_hu_rule_on_small_fields_of_view(tmp_path: Path) -> None:
    """No outside air and a sliver of lung is CT; soft tissue alone cannot be told from it."""
    phantom = render_phantom(2, abnormal=False)
    xs = np.flatnonzero(phantom.lungs.any(axis=(1, 2)))
    ys = np.flatnonzero(phantom.lungs.any(axis=(0, 2)))
    zs = np.flatnonzero(phantom.lungs.any(axis=(0, 1)))
    yc = (ys[0] + ys[-1]) // 2
    sliver = (slice(xs[-1] - 1, xs[-1] + 8), slice(yc - 8, yc + 8), slice(zs[0], zs[-1] + 1))
    assert Tissue.AIR not in phantom.labels[sliver] and phantom.lungs[sliver].mean() < 0.05
    vol = read_volume(_small_field(phantom, tmp_path, sliver, "sliver"))
    assert -950 < vol.array.min() < -500

    lungs_only = lung_crop(margin_mm=0.0)(phantom.volume)
    path = write_volume(lungs_only, tmp_path / "lungs_only.nii.gz")
    assert read_volume(path).shape == lungs_only.shape

    mid = phantom.volume.shape[0] // 2  # the mediastinum, below the trachea: no air at all
    centre = (slice(mid - 2, mid + 2), slice(ys[0] + 20, ys[0] + 30), slice(zs[0], zs[-1]))
    assert set(np.unique(phantom.labels[centre])) <= {Tissue.FAT, Tissue.SOFT, Tissue.VESSEL,
                                                      Tissue.ORGAN}
    path = _small_field(phantom, tmp_path, centre, "mediastinum")
    with pytest.raises(ScanError, match="does not look like CT in Hounsfield units"):
        read_volume(path)


# --- tiny volumes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(1, 1, 2), (2, 2, 2), (4, 4, 1), (4, 4, 2), (4, 4, 3), (4, 4, 4), (64, 64, 1),
              (1, 64, 64)]
)
def test_tiny_volumes_through_the_default_chain(tmp_path: Path, shape: tuple[int, ...]) -> None:
    ct = np.where(np.indices(shape).sum(axis=0) % 2 == 0, -1000, 40).astype(np.int16)
    path = write_volume(Volume(ct.astype(np.float32), (0.7, 0.7, 5.0),
                               np.diag([0.7, 0.7, 5.0, 1.0]), "tiny"), tmp_path / "t.nii.gz")
    vol = read_volume(path)
    for chain in (QUICK_CHAIN, THESIS_CHAIN):
        out = build_preprocess(chain)(vol)
        target = tuple(chain[2].params["shape"])
        assert out.shape == target and out.array.dtype == np.float32
        assert np.isfinite(out.array).all() and 0 <= out.array.min() <= out.array.max() <= 1
        assert min(out.spacing) > 0 and abs(np.linalg.det(out.affine)) > 0


def test_resize_spreads_a_single_slice_over_its_thickness() -> None:
    affine = np.diag([0.7, 0.7, 5.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    vol = Volume(np.full((4, 4, 1), -500.0, np.float32), (0.7, 0.7, 5.0), affine, "one")
    out = resize((4, 4, 10))(vol)
    assert out.spacing == pytest.approx((0.7, 0.7, 0.5))
    z = (out.affine @ np.array([[0, 0, k, 1.0] for k in range(10)]).T)[2]
    np.testing.assert_allclose(z, 30 - 2.25 + 0.5 * np.arange(10))  # centred on the slice
    np.testing.assert_array_equal(out.array, -500.0)


def test_tiny_volumes_in_lung_crop_and_slice_trim() -> None:
    for shape in [(1, 1, 1), (4, 4, 4), (3, 50, 50), (50, 50, 1)]:
        vol = Volume(np.where(np.indices(shape).sum(axis=0) % 2 == 0, -1000, 40)
                     .astype(np.float32), (0.7, 0.7, 5.0), np.eye(4), "tiny.nii.gz")
        with pytest.warns(UserWarning, match="no lungs found in tiny.nii.gz"):
            out = lung_crop()(vol)
        assert out.shape == shape and np.array_equal(out.array, vol.array)
        if shape[2] >= 32:
            assert slice_trim()(vol).shape == shape
            assert slice_trim("crop")(vol).shape == (*shape[:2], shape[2] - 20)
            continue
        with pytest.raises(ValueError, match=re.escape(
                f"needs at least 32 slices; tiny.nii.gz has shape {shape}")):
            slice_trim()(vol)
        with pytest.raises(ValueError, match=re.escape(
                f"needs at least 21 slices; tiny.nii.gz has shape {shape}")):
            slice_trim("crop")(vol)


def test_lung_masks_stay_small_for_absurd_voxel_sizes() -> None:
    """A voxel size of 1 um (a header in the wrong unit) must not blow up the reduced grid."""
    phantom = render_phantom(0, abnormal=False)
    tiny = phantom.volume.replace(spacing=(1e-3, 1e-3, 1e-3))
    tracemalloc.start()
    try:
        masks = lung_mask(tiny), body_mask(tiny)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * phantom.volume.array.nbytes  # unbounded: 2000x2000 blocks, 35x more
    assert all(m.shape == phantom.volume.shape for m in masks)


# --- large volumes -----------------------------------------------------------------------------


def test_large_padded_scan_through_the_thesisbuild_preprocess(tmp_path: Path) -> None:
    """512x512x64 int16 with a scaling and -3024 padding equals the straightforward recipe."""
    rng = np.random.default_rng(5)
    stored = rng.integers(0, 2500, (512, 512, 64)).astype(np.int16)
    x, y = np.ogrid[:512, :512]
    stored[(x - 255.5) ** 2 + (y - 255.5) ** 2 > 256**2] = -2000  # -3024 HU after the intercept
    img = nib.Nifti1Image(stored, np.diag([0.7, 0.7, 5.0, 1.0]))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, tmp_path / "large.nii.gz")
    out = build_preprocess(THESIS_CHAIN)(read_volume(tmp_path / "large.nii.gz"))

    hu = np.maximum(stored.astype(np.float64) - 1024, -1024)
    expected = np.rot90((np.clip(hu, -1000, 400) + 1000) / 1400, 1, axes=(0, 1))
    expected = ndimage.zoom(expected, (0.25, 0.25, 1.0), order=1, prefilter=False)
    assert out.shape == (128, 128, 64)
    np.testing.assert_allclose(out.array, expected, atol=1e-5)


# --- a dataset with one bad scan of each kind --------------------------------------------------


def _bad_scans(folder: Path, good: Path) -> dict[Path, str]:
    """Write one bad scan of each kind; return each with (a part of) the reason expected."""
    folder.mkdir()
    ct = nib.load(good).get_fdata().astype(np.float32)
    affine = nib.load(good).affine
    bad: dict[Path, str] = {}

    def save(name: str, array: np.ndarray, reason: str) -> None:
        bad[_nifti(folder / name, array, affine)] = reason

    (folder / "text.nii.gz").write_text("not a scan")
    bad[folder / "text.nii.gz"] = "not gzip-compressed despite the .gz suffix"
    (folder / "scan.mha").write_bytes(b"ObjectType = Image\n")
    bad[folder / "scan.mha"] = "not a MetaImage file, or its header is corrupt"
    (folder / "scan.npy").write_bytes(b"\x93NUMPY")
    bad[folder / "scan.npy"] = "not a NIfTI, NRRD or MetaImage file, nor a DICOM folder"
    (folder / "empty.nii.gz").touch()
    bad[folder / "empty.nii.gz"] = "empty file (0 bytes)"
    (folder / "no_dicom").mkdir()
    (folder / "no_dicom" / "readme.txt").write_text("nothing")
    bad[folder / "no_dicom"] = "no DICOM files"
    bad[_nifti(folder / "locked.nii.gz", ct, affine)] = "permission denied"
    unit = (ct - ct.min()) / (ct.max() - ct.min())
    save("uint8.nii.gz", np.rint(unit * 255).astype(np.uint8),
         "does not look like CT in Hounsfield units: values in [0, 255] (dtype uint8)")
    save("unit.nii.gz", unit, "does not look like CT in Hounsfield units: values in [0, 1]")
    save("constant.nii.gz", np.full(ct.shape, -1000, np.int16),
         "constant volume: every voxel is -1000")
    nan = ct.copy()
    nan[3, 4, 5] = np.nan
    save("nan.nii.gz", nan, "non-finite values: 1 NaN and 0 infinite voxels")
    save("4d.nii.gz", np.stack([ct, ct], axis=-1).astype(np.int16),
         "expected a 3D volume, found 4D with 2 volumes")
    bad[write_raw(folder / "zero.nii.gz", np.zeros((0, 8, 8), np.int16))] = "empty volume"
    gz = _nifti(folder / "cut.nii.gz", ct.astype(np.int16), affine).read_bytes()
    (folder / "cut.nii.gz").write_bytes(gz[: len(gz) // 2])
    bad[folder / "cut.nii.gz"] = "gzip stream is truncated or corrupt"
    bad[write_raw(folder / "huge.nii.gz", ct[:4, :4, :4].astype(np.int16),
                  shape=(32767, 32767, 32767))] = "ct3d reads at most 2147483648 (2**31)"
    bad[write_raw(folder / "lost.nii", ct.astype(np.int16), np.zeros((4, 4)),
                  zooms=(0.0, np.nan, 1.0))] = "no usable geometry"
    return bad


def _nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def _handled_scans(folder: Path, good: Path) -> list[Path]:
    """Scans that are odd but usable: tiny, FOV-padded, and with a degenerate sform."""
    folder.mkdir()
    img = nib.load(good)
    ct = np.asarray(img.dataobj).astype(np.int16)
    tiny = np.where(np.indices((4, 4, 2)).sum(axis=0) % 2 == 0, -1000, 40).astype(np.int16)
    padded = ct.copy()
    padded[:10] = -3024
    return [
        _nifti(folder / "tiny.nii.gz", tiny, img.affine),
        _nifti(folder / "padded.nii.gz", padded, img.affine),
        write_raw(folder / "degenerate.nii.gz", ct, np.diag([1.0, 0.0, 1.0, 1.0]),
                  zooms=img.header.get_zooms()[:3]),
    ]


@pytest.mark.slow
def test_dataset_run_skips_and_lists_each_bad_scan(
    cohort_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    make_scenario: Callable[..., Scenario],
) -> None:
    data = make_scenario(cohort_root, tmp_path / "unused").data
    cohort = load_scans(data.source, data.root, data.labels, dataclasses.asdict(data.synthetic),
                        progress=False)
    bad = _bad_scans(tmp_path / "bad", Path(cohort[0].path))
    handled = _handled_scans(tmp_path / "odd", Path(cohort[-1].path))
    locked = tmp_path / "bad" / "locked.nii.gz"
    read_bytes = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)  # workers=1: reads in this process
    manifest = tmp_path / "scans.csv"
    rows = ([(s.path, s.cls) for s in cohort]
            + [(str(p), ("normal", "abnormal")[i % 2]) for i, p in enumerate([*bad, *handled])])
    with manifest.open("w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    scenario = make_scenario(cohort_root, tmp_path / "run", **{
        "data.source": "manifest", "data.root": str(manifest), "data.workers": 1,
        "train.epochs": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the degenerate sform's fallback
        result = run(scenario, verbose=0)

    skipped = result.metrics["skipped"]
    assert sorted(skipped) == sorted(str(p) for p in bad)
    for path, reason in bad.items():
        assert skipped[str(path)].startswith(f"{path}: "), skipped[str(path)]
        assert reason in skipped[str(path)], (path, skipped[str(path)])
    assert sum(part["n"] for part in result.metrics["parts"].values()) == (
        len(cohort) + len(handled))
    with (tmp_path / "run" / "split.csv").open(newline="") as f:
        split = {row["path"]: row["skipped"] for row in csv.DictReader(f)}
    assert {p: split[p] for p in skipped} == skipped
    assert all(split[str(p)] == "" for p in handled)


# --- property-based: any file, read and preprocessed, gives the target or a ScanError ----------

DTYPES = [np.uint8, np.int16, np.int32, np.float32, np.float64]
CT_VALUES = ["ct", "padded"]
BAD_VALUES = ["unit", "symmetric", "zscore", "byte", "constant", "nan", "inf", "huge",
              "extremes"]
GOOD_AFFINES = ["ras", "lps", "oblique", "random", "tiny", "huge", "zero_column"]
BAD_AFFINES = ["zeros", "nan"]
GOOD_SCALINGS = [(np.nan, 0.0), (1.0, -1024.0)]  # NaN slope: no scaling
BAD_SCALINGS = [(0.001, 0.0), (1e30, 0.0), (2.0, np.inf)]
MAX_DIM = {1: 32, 2: 32, 3: 32, 4: 12, 5: 6}  # at most 32**3 voxels


def _dims(n: int, low: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(low, MAX_DIM[n]), min_size=n, max_size=n).map(tuple)


# Half the files are plausible CT (3D, or 4D with one volume) that must come out preprocessed,
# half anything at all: other dimensions (0 included), dtypes, values, affines and scalings.
plausible = st.fixed_dictionaries({
    "shape": st.one_of(_dims(3, 2), _dims(3, 2).map(lambda s: (*s, 1))),
    "dtype": st.sampled_from([np.int16, np.int32, np.float32, np.float64]),
    "values": st.sampled_from(CT_VALUES), "affine": st.sampled_from(GOOD_AFFINES),
    "scaling": st.sampled_from(GOOD_SCALINGS),
})
anything = st.fixed_dictionaries({
    "shape": st.sampled_from([3, 3, 3, 4, 1, 2, 5]).flatmap(lambda n: _dims(n, 0)),
    "dtype": st.sampled_from(DTYPES),
    "values": st.sampled_from(CT_VALUES + BAD_VALUES),
    "affine": st.sampled_from(GOOD_AFFINES + BAD_AFFINES),
    "scaling": st.sampled_from(GOOD_SCALINGS + BAD_SCALINGS),
})
cases = st.tuples(st.one_of(plausible, anything), st.sampled_from([".nii", ".nii.gz"]),
                  st.integers(0, 2**32 - 1))


def _values(kind: str, shape: tuple[int, ...], dtype: type, rng: np.random.Generator) -> np.ndarray:
    ct = rng.integers(-1024, 3000, shape).astype(np.float64)
    if kind == "padded":
        ct[: max(1, shape[0] // 3)] = -3024
    elif kind == "nan" and ct.size:
        ct.flat[rng.integers(ct.size)] = np.nan
    elif kind == "inf" and ct.size:
        ct.flat[rng.integers(ct.size)] = rng.choice([np.inf, -np.inf])
    values = {
        "unit": rng.random(shape), "symmetric": rng.uniform(-1, 1, shape),
        "zscore": rng.standard_normal(shape), "byte": rng.integers(0, 256, shape),
        "constant": np.full(shape, rng.choice([-1000.0, 0.0, 0.5])),
        "huge": rng.uniform(-1, 1, shape) * 1e30,
    }.get(kind, ct)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if kind == "extremes":
            values = rng.choice([info.min, info.max, 0], shape)
        values = np.clip(np.nan_to_num(values, posinf=info.max, neginf=info.min), info.min,
                         info.max)
    elif kind == "extremes":
        values = rng.choice([np.finfo(dtype).min, np.finfo(dtype).max, 0.0], shape)
    return np.asarray(values).astype(dtype)


def _affine(kind: str, rng: np.random.Generator) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, 3] = rng.uniform(-200, 200, 3)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    affine[:3, :3] = {
        "ras": np.diag([0.7, 0.8, 5.0]), "lps": np.diag([-0.7, -0.7, 2.5]),
        "oblique": rotation * [0.7, 0.7, 5.0], "random": rng.standard_normal((3, 3)),
        "zero_column": np.diag([0.7, 0.7, 0.0]), "zeros": np.zeros((3, 3)),
        "nan": np.diag([np.nan, 1.0, 1.0]), "tiny": np.diag([1e-6, 1e-6, 1e-6]),
        "huge": np.diag([1e6, 1e6, 1e6]),
    }[kind]
    return affine


def _case(shape: tuple[int, ...], dtype: type, values: str, affine: str = "ras",
          scaling: tuple[float, float] = GOOD_SCALINGS[0]) -> dict:
    return {"shape": shape, "dtype": dtype, "values": values, "affine": affine,
            "scaling": scaling}


@settings(max_examples=60, deadline=None, database=None)
@given(case=cases)
@example(case=(_case((0, 4, 4), np.int16, "ct"), ".nii.gz", 0))
@example(case=(_case((1, 1, 1), np.int16, "ct"), ".nii", 0))
@example(case=(_case((2, 3, 4, 1), np.float32, "padded", "lps"), ".nii.gz", 0))
@example(case=(_case((4, 4, 4, 2), np.int16, "ct"), ".nii", 0))
@example(case=(_case((5, 5, 2), np.uint8, "byte", "oblique"), ".nii", 1))
def test_any_file_reads_and_preprocesses_or_raises_scan_error(
    case: tuple[dict, str, int],
) -> None:
    spec, suffix, seed = case
    rng = np.random.default_rng(seed)
    array = _values(spec["values"], spec["shape"], spec["dtype"], rng)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # geometry fallbacks
        path = write_raw(Path(tmp) / f"scan{suffix}", array, _affine(spec["affine"], rng),
                         slope=spec["scaling"][0], inter=spec["scaling"][1])
        try:
            out = build_preprocess(QUICK_CHAIN)(read_volume(path))
        except ScanError as exc:
            assert exc.path == str(path) and exc.reason
            event(f"ScanError: {re.sub(r'[:(].*', '', re.sub(r'[0-9]+', 'N', exc.reason))}")
            return
    event("preprocessed")
    shape = spec["shape"]
    assert out.shape == SMALL and out.array.dtype == np.float32
    assert np.isfinite(out.array).all() and 0 <= out.array.min() <= out.array.max() <= 1
    assert len(shape) >= 3 and all(n == 1 for n in shape[3:]) and math.prod(shape) > 1


GOOD_FILE = nib.Nifti1Image(_ct((12, 10, 6)), np.diag([0.7, 0.7, 5.0, 1.0])).to_bytes()


@settings(max_examples=60, deadline=None, database=None)
@given(edits=st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), min_size=1,
                      max_size=6),
       keep=st.one_of(st.none(), st.integers(0, len(GOOD_FILE) - 1)),
       suffix=st.sampled_from([".nii", ".nii.gz"]))
def test_corrupted_headers_read_or_raise_scan_error(
    edits: list[tuple[int, int]], keep: int | None, suffix: str
) -> None:
    """Random bytes in a good file's header (and a cut) never raise anything but ScanError."""
    data = bytearray(GOOD_FILE)
    for position, value in edits:
        data[position] = value
    data = data[:keep]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        path = Path(tmp) / f"scan{suffix}"
        path.write_bytes(gzip.compress(bytes(data)) if suffix == ".nii.gz" else bytes(data))
        try:
            out = build_preprocess(QUICK_CHAIN)(read_volume(path))
        except ScanError as exc:
            assert exc.path == str(path) and exc.reason
            event("ScanError")
            return
    event("preprocessed")
    assert out.shape == SMALL and np.isfinite(out.array).all()
