"""Preprocessors: values, geometry, and the affine kept in step with the array."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build_step, random_volume, same_world_values
from scipy import ndimage

from ct3d.preprocess import build_preprocess
from ct3d.registry import UnknownPlugin
from ct3d.volume import Volume


def test_hu_window_clips_and_scales() -> None:
    v = Volume(np.array([-2048, -1000, -300, 400, 3000], np.float32).reshape(5, 1, 1),
               (1.0, 1.0, 1.0), np.eye(4), "x")
    out = build_step("preprocess", "hu_window")(v).array
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [0, 0, 0.5, 1, 1], atol=1e-7)
    with pytest.raises(ValueError, match="high > low; received low=10.0, high=0.0"):
        build_step("preprocess", "hu_window", low=10, high=0)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_rotate90_is_exact_and_keeps_world_geometry(k: int) -> None:
    v = random_volume()
    out = build_step("preprocess", "rotate90", k=k)(v)
    np.testing.assert_array_equal(out.array, np.rot90(v.array, k, axes=(0, 1)))
    assert out.spacing == ((0.7, 0.8, 5.0) if k % 2 == 0 else (0.8, 0.7, 5.0))
    corners = np.array([[0, 0, 0], [out.shape[0] - 1, 0, 1], [2, out.shape[1] - 1, 5]])
    same_world_values(v, out, corners)


def test_rotate90_matches_the_reference_spline_rotation() -> None:
    v = random_volume((12, 12, 4))
    reference = ndimage.rotate(v.array, 90, reshape=False)
    np.testing.assert_allclose(build_step("preprocess", "rotate90")(v).array, reference, atol=1e-3)


def test_resize_shape_linearity_spacing_and_corners() -> None:
    ramp = np.broadcast_to(np.arange(10, dtype=np.float32)[:, None, None], (10, 8, 6)).copy()
    v = random_volume().replace(array=ramp)
    out = build_step("preprocess", "resize", shape=(19, 4, 6))(v)
    assert out.shape == (19, 4, 6) and out.array.dtype == np.float32
    np.testing.assert_allclose(out.array[:, 0, 0], np.arange(19) * 9 / 18, atol=1e-5)
    assert out.spacing == pytest.approx((0.7 * 9 / 18, 0.8 * 7 / 3, 5.0))
    rnd = random_volume()
    same_world_values(rnd, build_step("preprocess", "resize", shape=(19, 4, 6))(rnd),
                       np.array([[0, 0, 0], [18, 3, 5], [0, 3, 0]]))
    with pytest.raises(ValueError, match="positive shape"):
        build_step("preprocess", "resize", shape=(0, 4, 4))


def test_antialiased_resize_averages_what_it_shrinks_and_keeps_the_geometry() -> None:
    rng = np.random.default_rng(0)
    noise = Volume(rng.normal(0, 30, (128, 128, 8)).astype(np.float32), (0.7, 0.7, 5.0),
                   np.eye(4), "noise")
    plain = build_step("preprocess", "resize", shape=(16, 16, 8))(noise)
    smooth = build_step("preprocess", "resize", shape=(16, 16, 8), antialias=True)(noise)
    assert plain.array.std() > 18 and smooth.array.std() < 6  # averaging about 8x8 voxels
    np.testing.assert_allclose(smooth.affine, plain.affine)
    flat = noise.replace(array=np.full((128, 128, 8), -850.0, np.float32))
    np.testing.assert_allclose(
        build_step("preprocess", "resize", shape=(16, 16, 8), antialias=True)(flat).array, -850.0)
    grow = random_volume((6, 6, 4))
    np.testing.assert_array_equal(  # nothing shrinks: nothing is smoothed
        build_step("preprocess", "resize", shape=(12, 12, 4), antialias=True)(grow).array,
        build_step("preprocess", "resize", shape=(12, 12, 4))(grow).array)


def test_thesis_chain_matches_straightforward_scipy() -> None:
    v = random_volume((40, 40, 12))
    chain = build_preprocess(["hu_window", "rotate90",
                              {"name": "resize", "params": {"shape": [16, 16, 8]}}])
    ours = chain(v).array
    ref = (np.clip(v.array, -1000, 400) + 1000) / 1400
    ref = ndimage.rotate(ref, 90, reshape=False)
    ref = ndimage.zoom(ref, (16 / 40, 16 / 40, 8 / 12), order=1)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_chain_with_unknown_step() -> None:
    with pytest.raises(UnknownPlugin, match="unknown preprocess plugin 'resise'"):
        build_preprocess([{"name": "resise", "params": {}}])
