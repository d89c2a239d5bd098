"""Tests of the synthetic chest-CT generator (quick preset unless geometry is the point)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from ct3d.data.synthetic import (
    DIFFICULTIES,
    PRESETS,
    Tissue,
    generate_cohort,
    generate_scan,
    render_phantom,
)


@pytest.fixture(scope="module")
def phantoms():
    """Abnormal easy phantoms: many lesions of both kinds, so every tissue is present."""
    return [render_phantom(seed, abnormal=True, difficulty="easy") for seed in range(3)]


def values(phantoms, *tissues: Tissue) -> np.ndarray:
    """HU of all voxels labelled with any of ``tissues``, over all phantoms."""
    return np.concatenate([p.volume.array[np.isin(p.labels, tissues)] for p in phantoms])


def test_same_seed_gives_identical_scans():
    (a, mask_a), (b, mask_b) = generate_scan(7, True), generate_scan(7, True)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(mask_a, mask_b)
    np.testing.assert_array_equal(a.affine, b.affine)


def test_different_seeds_give_different_scans():
    a, mask_a = generate_scan(1, True)
    b, mask_b = generate_scan(2, True)
    assert a.shape != b.shape or not np.array_equal(a.array, b.array)
    assert mask_a.shape != mask_b.shape or not np.array_equal(mask_a, mask_b)


def test_sequence_seeds_are_distinct_from_their_parts():
    a, _ = generate_scan((0, 1), False)
    b, _ = generate_scan((0, 2), False)
    assert a.shape != b.shape or not np.array_equal(a.array, b.array)


def test_scan_is_float32_whole_hu_with_uint8_mask():
    volume, mask = generate_scan(3, True)
    hu = volume.array
    assert hu.dtype == np.float32
    np.testing.assert_array_equal(hu, np.rint(hu))
    assert hu.min() >= -1024 and hu.max() <= 3071
    assert mask.dtype == np.uint8 and mask.shape == hu.shape
    assert set(np.unique(mask)) <= {0, 1}


@pytest.mark.parametrize("preset", ["quick", "mosmed"])
def test_geometry_follows_the_preset(preset):
    spec = PRESETS[preset]
    volume, _ = generate_scan(11, False, preset=preset)
    width, height, depth = volume.shape
    assert width == height == spec.size
    assert spec.depth[0] <= depth <= spec.depth[1]
    assert spec.pixel_mm[0] <= volume.spacing[0] == volume.spacing[1] <= spec.pixel_mm[1]
    assert volume.spacing[2] == spec.slice_mm


def test_affine_is_diagonal_ras_and_centred():
    volume, _ = generate_scan(4, False)
    affine = volume.affine
    np.testing.assert_allclose(np.diag(affine)[:3], volume.spacing)
    np.testing.assert_allclose(affine[:3, :3], np.diag(volume.spacing))
    centre = affine @ np.array([*((np.array(volume.shape) - 1) / 2), 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)


def test_tissue_hu_ranges(phantoms):
    assert -1010 <= np.median(values(phantoms, Tissue.AIR)) <= -990
    assert -900 <= np.median(values(phantoms, Tissue.LUNG)) <= -800
    assert 0 <= np.median(values(phantoms, Tissue.SOFT)) <= 80
    assert -130 <= np.median(values(phantoms, Tissue.FAT)) <= -70
    bone = values(phantoms, Tissue.CORTICAL, Tissue.TRABECULAR)
    assert 400 <= bone.max() <= 1000 + 6 * 25
    assert np.median(values(phantoms, Tissue.VESSEL)) > -300


def test_lesion_hu_ranges(phantoms):
    assert -700 <= np.median(values(phantoms, Tissue.GGO)) <= -300
    assert -100 <= np.median(values(phantoms, Tissue.CONSOLIDATION)) <= 50


def test_lesions_lie_inside_the_lungs(phantoms):
    for p in phantoms:
        lesion = p.mask.astype(bool)
        assert lesion.any()
        assert not (lesion & ~p.lungs).any()
        assert not (np.isin(p.labels, [Tissue.GGO, Tissue.CONSOLIDATION]) & ~lesion).any()


def test_lesions_are_multifocal_in_both_lungs(phantoms):
    for p in phantoms:
        _, count = ndimage.label(p.mask)
        assert count >= 2
        x = np.nonzero(p.mask)[0] * p.volume.spacing[0] + p.volume.affine[0, 3]
        assert (x > 0).any() and (x < 0).any()


@pytest.mark.parametrize("difficulty", sorted(DIFFICULTIES))
def test_mask_empty_for_normal_and_filled_for_abnormal(difficulty):
    for seed in range(3):
        assert not generate_scan(seed, False, difficulty=difficulty)[1].any()
        assert generate_scan(seed, True, difficulty=difficulty)[1].any()


def test_normal_and_abnormal_of_a_seed_differ_only_at_lesions():
    normal, _ = generate_scan(5, False)
    abnormal, mask = generate_scan(5, True)
    near_lesion = ndimage.binary_dilation(mask, np.ones((5, 5, 1), bool))
    np.testing.assert_array_equal(normal.array[~near_lesion], abnormal.array[~near_lesion])
    assert not np.array_equal(normal.array[near_lesion], abnormal.array[near_lesion])


def test_easier_means_more_lesion_volume():
    def mean_volume(difficulty: str) -> float:
        return np.mean([generate_scan(s, True, difficulty=difficulty)[1].sum() for s in range(4)])

    assert mean_volume("easy") > mean_volume("moderate") > mean_volume("hard")


def read(path: Path) -> nib.Nifti1Image:
    return nib.load(str(path))


def test_cohort_layout_files_and_masks(tmp_path, capsys):
    paths = generate_cohort(tmp_path, normal=2, abnormal=2, seed=3, preset="quick", progress=False)
    names = [p.relative_to(tmp_path).as_posix() for p in paths]
    assert names == [
        "CT-0/study_0001.nii.gz",
        "CT-0/study_0002.nii.gz",
        "CT-23/study_0003.nii.gz",
        "CT-23/study_0004.nii.gz",
    ]
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    masks = [n.replace(".nii.gz", "_mask.nii.gz") for n in names]
    assert files == sorted([*names, *masks, "manifest.csv"])
    assert capsys.readouterr().err == ""
    for i, path in enumerate(paths):
        volume, mask = generate_scan((3, i), abnormal=i >= 2, preset="quick")
        scan, mask_image = read(path), read(path.with_name(masks[i].split("/")[1]))
        assert scan.get_data_dtype() == np.int16
        assert int(scan.header["qform_code"]) == int(scan.header["sform_code"]) == 1
        np.testing.assert_allclose(scan.affine, volume.affine)
        np.testing.assert_allclose(mask_image.affine, volume.affine)
        np.testing.assert_array_equal(np.asanyarray(scan.dataobj), volume.array)
        np.testing.assert_array_equal(np.asanyarray(mask_image.dataobj), mask)
        assert mask.any() == (i >= 2)


def test_two_workers_write_identical_files(tmp_path):
    kwargs = {"normal": 2, "abnormal": 2, "seed": 1, "preset": "quick", "progress": False}
    one = generate_cohort(tmp_path / "one", workers=1, **kwargs)
    two = generate_cohort(tmp_path / "two", workers=2, **kwargs)
    assert [p.relative_to(tmp_path / "one") for p in one] == [
        p.relative_to(tmp_path / "two") for p in two
    ]
    for a in sorted((tmp_path / "one").rglob("*.nii.gz")):
        assert a.read_bytes() == (tmp_path / "two" / a.relative_to(tmp_path / "one")).read_bytes()


def test_empty_cohort_writes_nothing(tmp_path):
    assert generate_cohort(tmp_path, 0, 0, preset="quick", progress=False) == []
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "huge"}, "unknown preset 'huge'; known: mosmed, quick"),
        ({"difficulty": "extreme"}, "unknown difficulty 'extreme'; known: easy, hard, moderate"),
    ],
)
def test_unknown_names_are_rejected(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_scan(0, True, **kwargs)
    with pytest.raises(ValueError, match=message):
        generate_cohort(tmp_path, 1, 1, progress=False, **kwargs)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"normal": -1, "abnormal": 1}, "normal must be >= 0, got -1"),
        ({"normal": 1, "abnormal": -3}, "abnormal must be >= 0, got -3"),
        ({"normal": 1, "abnormal": 1, "workers": 0}, "workers must be >= 1, got 0"),
    ],
)
def test_bad_counts_are_rejected(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_cohort(tmp_path, preset="quick", progress=False, **kwargs)
