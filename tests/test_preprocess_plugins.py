"""Preprocessor plugins at full strength: slice_trim, resample, lung_crop, standardize, chains."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import build_step, random_volume, same_world_values
from scipy import ndimage

from ct3d.data.synthetic import Phantom, Tissue, generate_scan, render_phantom
from ct3d.preprocess import build_preprocess
from ct3d.preprocess.intensity import standardize
from ct3d.preprocess.lung import body_mask, lung_mask
from ct3d.volume import Volume


def _crop_box(before: Volume, after: Volume) -> tuple[slice, ...]:
    """Where ``after`` (a crop of ``before``) lies in ``before``'s voxel grid."""
    start = np.rint(np.linalg.inv(before.affine) @ after.affine[:, 3])[:3].astype(int)
    return tuple(slice(a, a + n) for a, n in zip(start, after.shape, strict=True))


def _dice(found: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (found & truth).sum() / (found.sum() + truth.sum()))


def _padded(phantom: Phantom, value: float) -> Volume:
    """The scan with every voxel outside the largest centred cylinder set to ``value``."""
    hu = phantom.volume.array.copy()
    w, h, _ = hu.shape
    x, y = np.ogrid[:w, :h]
    hu[(x - (w - 1) / 2) ** 2 + (y - (h - 1) / 2) ** 2 > (min(w, h) / 2) ** 2] = value
    return phantom.volume.replace(array=hu)


def _attached_hollow_table(phantom: Phantom) -> tuple[Volume, int]:
    """The scan with its table replaced by a hollow box joined to the body by a mattress.

    The air in the box is enclosed in every slice and larger than a lung. Returns the
    volume and the body's lowest row (y index).
    """
    hu = phantom.volume.array.copy()
    hu[phantom.labels == Tissue.TABLE] = -1000
    body = ((phantom.labels != Tissue.AIR) & (phantom.labels != Tissue.TABLE)).any(axis=2)
    columns = np.flatnonzero(body.any(axis=1))
    bottom = np.argmax(body, axis=1)
    low, first, last = bottom[columns].min(), columns[0], columns[-1]
    for i in columns:
        hu[i, low - 1:bottom[i]] = -100
    hu[first:last + 1, low - 16:low - 1] = 150
    hu[first + 2:last - 1, low - 14:low - 3] = -1000
    return phantom.volume.replace(array=hu), int(low)


# slice_trim


def test_slice_trim_replace_copies_the_neighbouring_slices() -> None:
    v = random_volume((10, 8, 12))
    out = build_step("preprocess", "slice_trim", head=3, tail=2)(v)
    order = [3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 8, 9]
    np.testing.assert_array_equal(out.array, v.array[..., order])
    np.testing.assert_array_equal(out.affine, v.affine)
    assert out.spacing == v.spacing and out.array is not v.array
    default = build_step("preprocess", "slice_trim")
    tall = random_volume((4, 4, 32))
    expected = tall.array[..., [*range(12, 24), *range(12, 24), *range(16, 24)]]
    np.testing.assert_array_equal(default(tall).array, expected)
    with pytest.raises(ValueError, match=re.escape("has shape (4, 4, 31)")):
        default(random_volume((4, 4, 31)))


def test_slice_trim_crop_drops_slices_and_moves_the_affine() -> None:
    v = random_volume((10, 8, 12))
    out = build_step("preprocess", "slice_trim", mode="crop", head=3, tail=2)(v)
    np.testing.assert_array_equal(out.array, v.array[..., 3:10])
    np.testing.assert_allclose(out.affine[:3, 3], v.affine[:3, 3] + [0, 0, 15.0])
    same_world_values(v, out, np.array([[0, 0, 0], [9, 7, 6], [4, 2, 3]]))
    with pytest.raises(ValueError, match=re.escape("test has shape (10, 8, 12)")):
        build_step("preprocess", "slice_trim", mode="crop", head=6, tail=6)(v)
    with pytest.raises(ValueError, match="received mode='crop', head=-1, tail=8"):
        build_step("preprocess", "slice_trim", mode="crop", head=-1)


# resample


def test_resample_keeps_a_linear_ramp_in_world_coordinates() -> None:
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = rotation @ np.diag([0.7, 0.8, 5.0]), [30.0, -12.0, 7.0]
    grid = np.stack(np.indices((20, 17, 9)), axis=-1).astype(float)
    world = grid @ affine[:3, :3].T + affine[:3, 3]
    ramp = (world @ [1.0, -2.0, 0.5] + 3.0).astype(np.float32)
    v = Volume(ramp, (0.7, 0.8, 5.0), affine, "ramp")
    out = build_step("preprocess", "resample", spacing=(1.5, 0.5, 2.0))(v)
    assert out.shape == (9, 27, 22) and out.array.dtype == np.float32
    assert out.spacing == (1.5, 0.5, 2.0)
    np.testing.assert_allclose(np.linalg.norm(out.affine[:3, :3], axis=0), out.spacing)
    new_voxels = np.c_[np.indices(out.shape).reshape(3, -1).T, np.ones(out.array.size)]
    new_world = new_voxels @ out.affine.T
    old_index = (new_world @ np.linalg.inv(affine).T)[:, :3]
    inside = np.all((old_index >= 0) & (old_index <= np.array(v.shape) - 1), axis=1)
    assert inside.mean() > 0.7
    np.testing.assert_allclose(out.array.ravel()[inside],
                               (new_world[:, :3] @ [1.0, -2.0, 0.5] + 3.0)[inside], atol=1e-3)
    np.testing.assert_allclose(out.affine @ [4.0, 13.0, 10.5, 1.0],
                               affine @ [9.5, 8.0, 4.0, 1.0], atol=1e-9)  # the centres


def test_resample_to_the_same_spacing_is_the_identity_and_checks_parameters() -> None:
    v = random_volume((10, 8, 12))
    out = build_step("preprocess", "resample", spacing=v.spacing, order=3)(v)
    np.testing.assert_allclose(out.array, v.array, atol=1e-3)
    np.testing.assert_allclose(out.affine, v.affine)
    with pytest.raises(ValueError, match=r"received spacing=\(1.0, 0.0, 1.0\), order=1"):
        build_step("preprocess", "resample", spacing=(1.0, 0.0, 1.0))


# lung segmentation and lung_crop


@pytest.mark.parametrize("padding", [None, -2048.0, -3024.0])
@pytest.mark.parametrize("seed", [0, 5])
def test_lung_crop_keeps_the_lungs_in_a_much_smaller_box(padding: float | None, seed: int) -> None:
    phantom = render_phantom(seed, abnormal=True)
    v = phantom.volume if padding is None else _padded(phantom, padding)
    out = build_step("preprocess", "lung_crop")(v)
    box = _crop_box(v, out)
    assert phantom.lungs[box].sum() >= 0.99 * phantom.lungs.sum()
    assert out.array.size < 0.5 * v.array.size
    same_world_values(v, out, np.array([[0, 0, 0], [s - 1 for s in out.shape], [3, 5, 2]]))
    assert _dice(lung_mask(v), phantom.lungs) >= 0.9


def test_lung_crop_does_not_depend_on_the_memory_order() -> None:
    v = render_phantom(8, abnormal=True).volume
    fortran = v.replace(array=np.asfortranarray(v.array))
    crop = build_step("preprocess", "lung_crop")
    np.testing.assert_array_equal(crop(fortran).array, crop(v).array)
    np.testing.assert_array_equal(lung_mask(fortran), lung_mask(v))


def test_lung_crop_on_a_mosmed_size_scan() -> None:
    phantom = render_phantom(2, abnormal=True, preset="mosmed")
    v = _padded(phantom, -2048.0)
    out = build_step("preprocess", "lung_crop", margin_mm=5.0)(v)
    assert phantom.lungs[_crop_box(v, out)].sum() >= 0.99 * phantom.lungs.sum()
    assert out.array.size < 0.4 * v.array.size


@pytest.mark.parametrize("abnormal", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lung_mask_matches_the_true_lungs(seed: int, abnormal: bool) -> None:
    phantom = render_phantom(seed, abnormal)
    assert _dice(lung_mask(phantom.volume), phantom.lungs) >= 0.9


def test_air_between_body_and_table_is_not_lung() -> None:
    phantom = render_phantom(4, abnormal=False)
    v, body_bottom = _attached_hollow_table(phantom)
    found = lung_mask(v)
    assert not found[:, :body_bottom].any()
    assert _dice(found, phantom.lungs) >= 0.9
    assert _crop_box(v, build_step("preprocess", "lung_crop")(v))[1].start >= body_bottom
    assert not body_mask(v)[:, :body_bottom - 3].any()  # the box's air and lower plate


def test_body_mask_holds_the_body_and_lungs_but_not_table_or_air() -> None:
    phantom = render_phantom(6, abnormal=True)
    body = body_mask(_padded(phantom, -3024.0))
    truth = (phantom.labels != Tissue.AIR) & (phantom.labels != Tissue.TABLE)
    assert _dice(body, truth) >= 0.99
    assert body[phantom.lungs].all()
    assert not body[phantom.labels == Tissue.TABLE].any()


@pytest.mark.parametrize("fill", [40.0, -1000.0, -3024.0])
def test_lung_crop_without_lungs_warns_and_returns_the_volume(fill: float) -> None:
    rng = np.random.default_rng(0)
    array = (fill + 20 * rng.standard_normal((64, 64, 20))).astype(np.float32)
    v = Volume(array, (2.5, 2.5, 10.0), np.diag([2.5, 2.5, 10.0, 1.0]), "scan/no-lungs.nii.gz")
    with pytest.warns(UserWarning, match="no lungs found in scan/no-lungs.nii.gz"):
        out = build_step("preprocess", "lung_crop")(v)
    assert out is v
    np.testing.assert_array_equal(out.array, array)
    assert not lung_mask(v).any()


def test_lung_plugins_check_their_parameters() -> None:
    with pytest.raises(ValueError, match="received margin_mm=-1.0"):
        build_step("preprocess", "lung_crop", margin_mm=-1)
    with pytest.raises(ValueError, match="received threshold_hu=-2000.0"):
        build_step("preprocess", "lung_crop", threshold_hu=-2000)
    with pytest.raises(ValueError, match="received threshold_hu=100.0"):
        build_step("preprocess", "standardize", region="lungs", threshold_hu=100)


# standardize


@pytest.mark.parametrize("region", ["volume", "body", "lungs"])
def test_standardize_gives_zero_mean_unit_std_over_the_region(region: str) -> None:
    phantom = render_phantom(7, abnormal=True)
    v = phantom.volume
    out = build_step("preprocess", "standardize", region=region)(v)
    assert out.array.dtype == np.float32 and out.shape == v.shape
    mask = {"volume": np.ones(v.shape, bool), "body": body_mask(v), "lungs": lung_mask(v)}[region]
    assert mask.sum() > 0.03 * mask.size
    values = out.array[mask].astype(np.float64)
    assert abs(values.mean()) < 1e-4 and abs(values.std() - 1) < 1e-4
    hu = v.array[mask].astype(np.float64)
    np.testing.assert_allclose(out.array, (v.array - hu.mean()) / hu.std(), atol=1e-4)


def test_standardize_rejects_a_constant_or_empty_region() -> None:
    v = Volume(np.full((8, 8, 4), 40.0, np.float32), (1.0, 1.0, 1.0), np.eye(4), "flat.nii")
    with pytest.raises(ValueError, match="flat.nii has 256 voxels in region 'volume'"):
        build_step("preprocess", "standardize")(v)
    with pytest.raises(ValueError, match="flat.nii has 0 voxels in region 'lungs'"):
        build_step("preprocess", "standardize", region="lungs")(v)
    with pytest.raises(ValueError, match="received region='skin'"):
        standardize(region="skin")  # type: ignore[arg-type]


# keras_example


def test_keras_example_matches_the_reference_scipy_preprocessing() -> None:
    volume, _ = generate_scan(3, abnormal=True, preset="quick")
    ours = build_preprocess([{"name": "keras_example", "params": {}}])(volume)
    ref = (np.clip(volume.array, -1000.0, 400.0) + 1000.0) / 1400.0
    ref = ndimage.rotate(ref, 90, reshape=False)
    ref = ndimage.zoom(ref, np.array((128, 128, 64)) / np.array(ref.shape), order=1)
    assert ours.shape == (128, 128, 64) and ours.array.dtype == np.float32
    np.testing.assert_allclose(ours.array, ref, atol=1e-5)
    steps = build_preprocess(["hu_window", "rotate90", "resize"])
    np.testing.assert_array_equal(ours.array, steps(volume).array)
    np.testing.assert_allclose(ours.affine, steps(volume).affine)
    with pytest.raises(ValueError, match="received low=0.0, high=0.0"):
        build_step("preprocess", "keras_example", low=0, high=0)
