"""MosMedData-graded synthetic scans: involvement in the grade's range, morphology by grade,
scanner variety, graded cohorts and their manifest."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import ndimage

from ct3d.data.severity import GRADES, cohort_grades, disease, grade_of
from ct3d.data.synthetic import PRESETS, SCANNERS, Tissue, generate_cohort, render_phantom

SEEDS = range(8)


@pytest.fixture(scope="module")
def graded():
    """Quick-preset phantoms of every grade, ``varied`` scanners, 8 seeds each."""
    return {g: [render_phantom((11, s), True, grade=g, scanner="varied") for s in SEEDS]
            for g in GRADES}


def test_disease_meets_its_target_inside_the_grade_over_many_seeds():
    lungs = np.zeros((48, 40, 24), bool)
    lungs[4:44, 4:36, 2:22] = True
    foci = np.array([[10.0, 10.0, 6.0], [30.0, 20.0, 12.0]])
    for grade, g in GRADES.items():
        low, high = g.involvement
        for seed in range(40):
            d = disease(np.random.default_rng(seed), lungs, (2.5, 2.5, 5.0), foci, grade)
            share = d.lesion.mean()
            assert low < share <= high, (grade, seed, share)
            assert abs(share - d.target) <= 1 / lungs.sum()
            assert g.target[0] <= d.target <= g.target[1]
            assert not (d.consolidation & ~d.lesion).any()


@pytest.mark.parametrize("scanner", ["uniform", "varied"])
def test_every_phantom_lies_in_its_grade(scanner, graded):
    phantoms = graded if scanner == "varied" else {
        g: [render_phantom((12, s), True, grade=g) for s in range(4)] for g in GRADES}
    for grade, items in phantoms.items():
        low, high = GRADES[grade].involvement
        for p in items:
            assert p.grade == grade
            assert low < p.involvement <= high, (grade, p.involvement)
            assert grade_of(p.involvement) == grade
            assert ((p.mask == 1) <= p.lungs).all()


def test_mosmed_geometry_meets_the_grades_too():
    for i, grade in enumerate(GRADES):
        p = render_phantom((13, i), True, preset="mosmed", grade=grade, scanner="varied")
        low, high = GRADES[grade].involvement
        assert low < p.involvement <= high


def test_normal_scan_of_a_graded_cohort_is_ct0_and_clean():
    p = render_phantom(4, False, grade="CT-3", scanner="varied")
    assert p.grade == "CT-0" and p.involvement == 0.0 and not p.mask.any()
    assert not np.isin(p.labels, [Tissue.GGO, Tissue.CONSOLIDATION]).any()


def _depth_mm(p) -> np.ndarray:
    """In-plane distance to the pleura of every lung voxel."""
    return np.stack([ndimage.distance_transform_edt(p.lungs[:, :, k], p.volume.spacing[:2])
                     for k in range(p.lungs.shape[2])], axis=-1)


def test_ct1_is_peripheral_posterior_and_basal(graded):
    """Mild disease starts under the pleura, in the dependent (posterior) and lower lung."""
    ratios = []
    for p in graded["CT-1"]:
        depth = _depth_mm(p)
        ratios.append(np.median(depth[p.mask.astype(bool)]) / np.median(depth[p.lungs]))
    assert max(ratios) < 0.9 and np.mean(ratios) < 0.7
    shifts = []
    for p in graded["CT-1"]:
        _, y, z = (np.argwhere(p.mask.astype(bool)).mean(axis=0)
                   - np.argwhere(p.lungs).mean(axis=0))
        shifts.append((y, z))
    y_shift, z_shift = np.mean(shifts, axis=0)
    assert y_shift < 0 and z_shift < 0  # voxel axes are (R, A, S): posterior and inferior


def test_moderate_grades_are_bilateral(graded):
    for grade in ("CT-2", "CT-3"):
        for p in graded[grade]:
            x = np.argwhere(p.mask.astype(bool))[:, 0]
            mid = p.volume.shape[0] / 2
            assert min((x < mid).mean(), (x >= mid).mean()) > 0.05


def _consolidation_share(p) -> float:
    lesion_parenchyma = np.isin(p.labels, [Tissue.GGO, Tissue.CONSOLIDATION])
    return float((p.labels == Tissue.CONSOLIDATION).sum() / max(lesion_parenchyma.sum(), 1))


def test_consolidation_grows_with_the_grade(graded):
    shares = {g: np.mean([_consolidation_share(p) for p in graded[g]]) for g in GRADES}
    assert shares["CT-1"] < 0.1 < shares["CT-2"] < shares["CT-3"] < shares["CT-4"]
    assert shares["CT-4"] > 0.35


def test_lesions_are_denser_than_lung_and_ground_glass_below_soft_tissue(graded):
    for p in graded["CT-3"]:
        hu = p.volume.array
        ggo = hu[p.labels == Tissue.GGO]
        assert -800 < np.median(ggo) < -300
        assert np.median(hu[p.labels == Tissue.CONSOLIDATION]) > -150
        assert np.median(hu[p.labels == Tissue.LUNG]) < np.median(ggo) - 150


def test_varied_scanners_vary_within_their_ranges():
    scanner = SCANNERS["varied"]
    preset = PRESETS["quick"]
    thickness = [t for t, _ in scanner.slice_mm]
    volumes = [render_phantom((14, s), False, scanner="varied").volume for s in range(24)]
    slices = [v.spacing[2] for v in volumes]
    assert set(slices) <= set(thickness) and len(set(slices)) >= 2
    assert max(set(slices), key=slices.count) == 8.0
    for v in volumes:
        coverage = v.shape[2] * v.spacing[2]
        assert preset.depth[0] * preset.slice_mm - v.spacing[2] <= coverage
        assert coverage <= preset.depth[1] * preset.slice_mm + v.spacing[2]
        border = np.concatenate([v.array[0].ravel(), v.array[-1].ravel()])
        assert np.median(border) < -900  # the body fits in the field of view
    pixels = [v.spacing[0] for v in volumes]
    assert max(pixels) / min(pixels) > 1.2
    noise = [np.std(v.array[:8, -8:, :]) for v in volumes]  # air in a corner: noise only
    assert max(noise) / min(noise) > 1.5


def test_uniform_scanner_keeps_the_preset_geometry():
    v = render_phantom(5, True, grade="CT-2").volume
    assert v.spacing[2] == PRESETS["quick"].slice_mm
    assert PRESETS["quick"].depth[0] <= v.shape[2] <= PRESETS["quick"].depth[1]


def _manifest(folder) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_cohort_all_writes_five_folders_with_a_manifest(tmp_path):
    paths = generate_cohort(tmp_path, normal=1, abnormal=1, seed=2, preset="quick",
                            severity="all", scanner="varied", progress=False)
    assert [p.parent.name for p in paths] == ["CT-0", "CT-1", "CT-2", "CT-3", "CT-4"]
    assert all(p.with_name(p.name.replace(".nii.gz", "_mask.nii.gz")).is_file() for p in paths)
    rows = _manifest(tmp_path)
    assert [r["path"] for r in rows] == [p.relative_to(tmp_path).as_posix() for p in paths]
    for i, row in enumerate(rows):
        assert row["label"] == row["grade"] == paths[i].parent.name
        p = render_phantom((2, i), i > 0, "quick",
                           grade=row["grade"] if i else None, scanner="varied")
        assert float(row["involvement"]) == pytest.approx(p.involvement, abs=1e-6)
        assert grade_of(float(row["involvement"])) == row["grade"]
        assert float(row["slice_mm"]) == p.volume.spacing[2]


def test_cohort_ct23_mixes_ct2_and_ct3(tmp_path):
    generate_cohort(tmp_path, normal=1, abnormal=12, seed=0, preset="quick",
                    severity="CT-23", progress=False)
    rows = _manifest(tmp_path)
    assert sorted({r["label"] for r in rows}) == ["CT-0", "CT-23"]
    grades = [r["grade"] for r in rows if r["label"] == "CT-23"]
    assert set(grades) == {"CT-2", "CT-3"} and grades.count("CT-2") > grades.count("CT-3")
    for r in rows[1:]:
        assert 0.25 < float(r["involvement"]) <= 0.75


def test_cohort_ct1_writes_ct0_and_ct1(tmp_path):
    paths = generate_cohort(tmp_path, normal=1, abnormal=2, preset="quick", severity="CT-1",
                            progress=False)
    assert [p.parent.name for p in paths] == ["CT-0", "CT-1", "CT-1"]


def test_unknown_severity_and_scanner_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown severity 'CT-9'; known: CT-1, CT-2"):
        generate_cohort(tmp_path, 1, 1, preset="quick", severity="CT-9", progress=False)
    with pytest.raises(ValueError, match="unknown scanner 'odd'; known: uniform, varied"):
        render_phantom(0, True, scanner="odd")
    with pytest.raises(ValueError, match="unknown severity grade 'CT-5'"):
        render_phantom(0, True, grade="CT-5")
    assert not any(tmp_path.iterdir())
    assert cohort_grades("all") == ["CT-1", "CT-2", "CT-3", "CT-4"]
    assert [grade_of(v) for v in (0.0, 0.25, 0.2501, 0.5, 0.75, 0.9)] == [
        "CT-0", "CT-1", "CT-2", "CT-2", "CT-3", "CT-4"]


def test_a_cohort_recorded_before_severities_is_still_recognised(tmp_path):
    import json

    from ct3d.data.sources import ensure_synthetic

    params = {"normal": 1, "abnormal": 1, "preset": "quick", "difficulty": "easy",
              "severity": "none", "scanner": "uniform", "seed": 0}
    folder = ensure_synthetic(tmp_path, params, progress=False)
    old = {k: v for k, v in params.items() if k not in ("severity", "scanner")}
    (folder / "cohort.json").write_text(json.dumps(old))
    stamp = (folder / "CT-0" / "study_0001.nii.gz").stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, params, progress=False) == folder
    assert (folder / "CT-0" / "study_0001.nii.gz").stat().st_mtime_ns == stamp
