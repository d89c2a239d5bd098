"""MosMedData severity grades for synthetic scans: how much of the lungs is affected, and how.

MosMedData grades a chest CT by the share of lung volume affected by COVID-19 findings:
CT-0 none, CT-1 up to 25%, CT-2 25-50%, CT-3 50-75%, CT-4 75% and more. An abnormal phantom
of grade ``g`` draws a target share from inside ``GRADES[g].involvement`` and gets exactly
that share of its lung voxels as lesion: a smooth *disease field* over the lungs (foci placed
by the phantom, a subpleural term and a low-frequency diffuse term) is cut at the quantile
that leaves the target share above it. The field's weights follow the grade, as radiologists
describe COVID-19 on CT: CT-1 a few peripheral ground-glass patches, posterior and basal
first; CT-2/CT-3 bilateral, multilobar, confluent ground glass with crazy-paving and
consolidation; CT-4 diffuse involvement with consolidation.

Example:
    >>> GRADES["CT-2"].involvement, grade_of(0.31)
    ((0.25, 0.5), 'CT-2')
    >>> cohort_grades("CT-23")
    ['CT-2', 'CT-3']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "CT23_SHARE_CT2",
    "GRADES",
    "SEVERITIES",
    "Disease",
    "Grade",
    "cohort_grades",
    "disease",
    "grade_of",
]


@dataclass(frozen=True)
class Grade:
    """One severity grade: its share of affected lung and its lesion morphology.

    Attributes:
        involvement: the grade's range of lesion share of the lung volume, ``(low, high]``.
        target: range the per-scan target share is drawn from (inside ``involvement``).
        foci: number of lesion foci, both ends included.
        focus_mm: range of a focus' size (Gaussian sigma across the body).
        dependent: chance that a focus lies in the posterior half and low in the lung.
        consolidation: range of the share of the lesion volume that is consolidation.
        crazy_paving: chance of crazy-paving (septal lines over the ground glass).
        diffuse: weight of the diffuse, low-frequency part of the disease field.
        subpleural: how strongly lesions keep to the lung periphery (0: not at all, 1: only
            under the pleura).
    """

    involvement: tuple[float, float]
    target: tuple[float, float]
    foci: tuple[int, int]
    focus_mm: tuple[float, float]
    dependent: float
    consolidation: tuple[float, float]
    crazy_paving: float
    diffuse: float
    subpleural: float


GRADES: dict[str, Grade] = {
    "CT-1": Grade((0.0, 0.25), (0.03, 0.22), (2, 5), (8.0, 16.0), 0.85, (0.0, 0.08), 0.0, 0.05,
                  0.9),
    "CT-2": Grade((0.25, 0.5), (0.27, 0.48), (6, 12), (14.0, 26.0), 0.5, (0.05, 0.25), 0.5,
                  0.25, 0.6),
    "CT-3": Grade((0.5, 0.75), (0.52, 0.73), (10, 16), (18.0, 32.0), 0.35, (0.15, 0.4), 0.6,
                  0.3, 0.4),
    "CT-4": Grade((0.75, 1.0), (0.77, 0.95), (14, 20), (22.0, 36.0), 0.2, (0.35, 0.65), 0.4,
                  0.35, 0.3),
}
"""Severity grade name -> settings; CT-0 (no findings) is a normal scan."""

SEVERITIES = ("CT-1", "CT-2", "CT-3", "CT-4", "CT-23", "all")
"""What a synthetic cohort's abnormal scans can be: one grade, CT-2 and CT-3 mixed, or all."""

CT23_SHARE_CT2 = 125 / 170
"""Share of CT-2 among MosMedData's CT-2 and CT-3 scans (125 and 45 studies)."""


def cohort_grades(severity: str) -> list[str]:
    """The grades of a cohort's abnormal scans: one grade, ``CT-23`` (CT-2 and CT-3), or
    ``all`` (CT-1 to CT-4)."""
    if severity == "CT-23":
        return ["CT-2", "CT-3"]
    if severity == "all":
        return list(GRADES)
    if severity not in GRADES:
        raise ValueError(f"unknown severity {severity!r}; known: {', '.join(SEVERITIES)}")
    return [severity]


def grade_of(involvement: float) -> str:
    """The MosMedData grade of a lesion share of the lung volume (0 is CT-0)."""
    if involvement <= 0:
        return "CT-0"
    return next(name for name, g in GRADES.items() if involvement <= g.involvement[1])


@dataclass(frozen=True, eq=False)
class Disease:
    """The lesions of one scan, on the lung voxels (in ``np.flatnonzero(lungs)`` order).

    Attributes:
        lesion: bool, the lung voxels inside a lesion.
        consolidation: bool, the lesion voxels that are consolidation (the rest ground glass).
        hu: the HU of every lesion voxel (meaningful where ``lesion``).
        target: the drawn share of the lung volume; ``lesion.mean()`` meets it.
    """

    lesion: np.ndarray
    consolidation: np.ndarray
    hu: np.ndarray
    target: float


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: np.ndarray
                  ) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return field / max(float(field.std()), 1e-6)


def _coarse_field(
    rng: np.random.Generator, lungs: np.ndarray, spacing: np.ndarray, foci: np.ndarray,
    grade: Grade,
) -> np.ndarray:
    """The disease field on ``lungs`` (a coarse grid with ``spacing`` mm); ``foci`` (n, 3)
    in voxels of that grid: foci and fine texture, held to the periphery as the grade says
    (by the in-plane distance to the pleura), plus a diffuse part."""
    in_plane = (spacing[0], spacing[1], 1e4)
    depth = ndimage.distance_transform_edt(lungs, sampling=in_plane).astype(np.float32)
    envelope = 1.0 - grade.subpleural + grade.subpleural * np.exp(-depth / 10.0)
    field = 0.12 * _smooth_noise(rng, lungs.shape, 5.0 / spacing)  # ragged, patchy edges
    axes = [np.arange(n, dtype=np.float32) * s for n, s in zip(lungs.shape, spacing,
                                                               strict=True)]
    x, y, z = axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]
    for centre in foci * spacing:
        sigma = rng.uniform(*grade.focus_mm) * np.array(
            [rng.uniform(0.7, 1.2), rng.uniform(0.7, 1.2), rng.uniform(0.9, 1.6)])
        d2 = (((x - centre[0]) / sigma[0]) ** 2 + ((y - centre[1]) / sigma[1]) ** 2
              + ((z - centre[2]) / sigma[2]) ** 2)
        field += rng.uniform(0.6, 1.0) * np.exp(-0.5 * d2)
    return envelope * field + grade.diffuse * _smooth_noise(rng, lungs.shape, 25.0 / spacing)


def disease(
    rng: np.random.Generator, lungs: np.ndarray, spacing: tuple[float, float, float],
    foci: np.ndarray, grade: str,
) -> Disease:
    """Lesions covering a drawn share of ``lungs`` (bool, voxel ``spacing`` in mm), grown
    from ``foci`` ((n, 3) voxel coordinates inside the lungs, chosen by the caller: where
    the grade says lesions start).

    Example:
        >>> lungs = np.zeros((40, 40, 20), bool); lungs[5:35, 5:35, 2:18] = True
        >>> d = disease(np.random.default_rng(0), lungs, (2.0, 2.0, 4.0),
        ...             np.array([[8.0, 8.0, 5.0]]), "CT-1")
        >>> bool(0 < d.lesion.mean() <= 0.25), bool(abs(d.lesion.mean() - d.target) < 1e-3)
        (True, True)
    """
    g = GRADES[grade]
    target = float(rng.uniform(*g.target))
    sp = np.asarray(spacing, dtype=np.float64)
    step = max(1, int(round(2.5 / sp[0])))
    coarse = lungs[::step, ::step, :]
    coarse_sp = sp * np.array([step, step, 1])
    field = _coarse_field(rng, coarse, coarse_sp, np.asarray(foci) / [step, step, 1], g)
    idx = np.nonzero(lungs)
    coords = np.stack([idx[0] / step, idx[1] / step, idx[2]]).astype(np.float32)
    values = ndimage.map_coordinates(field, coords, order=1, mode="nearest")
    n = values.size
    k = int(round(target * n))
    lesion = np.zeros(n, bool)
    order = np.argsort(values, kind="stable")
    lesion[order[n - k:]] = True
    # depth into the lesion, 0 at its edge and 1 at its densest core, by rank
    rank = np.zeros(n, np.float32)
    rank[order[n - k:]] = np.linspace(0.0, 1.0, k, dtype=np.float32) if k else rank[:0]
    consolidation = lesion & (rank >= 1.0 - rng.uniform(*g.consolidation))
    hu = rng.uniform(-720.0, -580.0) + 220.0 * rank
    if rng.uniform() < g.crazy_paving:
        septa = _smooth_noise(rng, coarse.shape, 3.0 / coarse_sp)
        lines = ndimage.map_coordinates(septa, coords, order=1, mode="nearest")
        hu += np.where(np.abs(np.sin(2.5 * lines)) < 0.25, 160.0, 0.0).astype(np.float32)
    hu = np.where(consolidation, rng.uniform(-60.0, 30.0) + 40.0 * rank, np.minimum(hu, -300.0))
    return Disease(lesion, consolidation, hu.astype(np.float32), target)
