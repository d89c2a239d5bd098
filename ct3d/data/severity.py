"""MosMedData severity grades for synthetic scans: how much of the lungs is affected, and how.

MosMedData grades a chest CT by the share of lung volume affected by COVID-19 findings:
CT-0 none, CT-1 up to 25%, CT-2 25-50%, CT-3 50-75%, CT-4 75% and more.

- CT-1 lesions are drawn by volume, as measured on MosMedData's 50 CT-1 masks (median
  66 ml, :data:`CT1_VOLUME_ML`): :func:`focus_volumes` draws the scan's lesion volume and
  splits it among a few foci, and :func:`focal_disease` grows each focus, under the pleura,
  to its volume.
- CT-2 to CT-4 are drawn by share: an abnormal phantom draws a target share from inside
  ``GRADES[g].involvement`` and gets exactly that share of its lung voxels as lesion
  (:func:`disease`): a smooth *disease field* over the lungs (foci placed by the phantom, a
  subpleural term and a low-frequency diffuse term) is cut at the quantile that leaves the
  target share above it.

The look follows the grade, as radiologists describe COVID-19 on CT: CT-1 a few peripheral
ground-glass patches, posterior and basal first; CT-2/CT-3 bilateral, multilobar, confluent
ground glass with crazy-paving and consolidation; CT-4 diffuse involvement with
consolidation.

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
    "CT1_VOLUME_ML",
    "CT23_SHARE_CT2",
    "GRADES",
    "SEVERITIES",
    "Disease",
    "Grade",
    "cohort_grades",
    "disease",
    "focal_disease",
    "focus_volumes",
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
        volume_ml: for a grade drawn by lesion volume rather than by share of lung (CT-1),
            the quantiles ``(p, ml)`` of the per-scan lesion volume it is drawn from
            (log-linear between them); empty for the others.
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
    volume_ml: tuple[tuple[float, float], ...] = ()


_FOCI_PER_LOG_ML = 3.0
_SPLIT = 1.3
CT1_VOLUME_ML = ((0.0, 0.4), (0.25, 26.0), (0.5, 66.0), (0.75, 109.0), (1.0, 536.0))
"""Per-scan lesion volume of MosMedData's 50 CT-1 masks: (quantile, ml), min to max."""

GRADES: dict[str, Grade] = {
    "CT-1": Grade((0.0, 0.25), (0.03, 0.22), (2, 5), (8.0, 16.0), 0.85, (0.0, 0.08), 0.0, 0.05,
                  0.9, CT1_VOLUME_ML),
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
    lines = None
    if rng.uniform() < g.crazy_paving:
        septa = _smooth_noise(rng, coarse.shape, 3.0 / coarse_sp)
        lines = ndimage.map_coordinates(septa, coords, order=1, mode="nearest")
    return _look(rng, g, lesion, rank, lines, target)


def _look(rng: np.random.Generator, g: Grade, lesion: np.ndarray, rank: np.ndarray,
          lines: np.ndarray | None, target: float) -> Disease:
    """HU and consolidation of lesion voxels by ``rank`` (0 at a lesion's edge, 1 at its
    densest core): ground glass from -720/-580 HU rising with rank (capped at -300), crazy
    paving where ``lines`` (a smooth field) crosses zero, consolidation in the densest
    share the grade draws."""
    consolidation = lesion & (rank >= 1.0 - rng.uniform(*g.consolidation))
    hu = rng.uniform(-720.0, -580.0) + 220.0 * rank
    if lines is not None:
        hu += np.where(np.abs(np.sin(2.5 * lines)) < 0.25, 160.0, 0.0).astype(np.float32)
    hu = np.where(consolidation, rng.uniform(-60.0, 30.0) + 40.0 * rank, np.minimum(hu, -300.0))
    return Disease(lesion, consolidation, hu.astype(np.float32), target)


def focus_volumes(rng: np.random.Generator, grade: str,
                  stratum: tuple[int, int] | None = None) -> np.ndarray | None:
    """The volumes (ml) of a scan's lesion foci, for a grade drawn by volume (CT-1); None
    for a grade drawn by share of lung.

    The scan's lesion volume is drawn from the grade's quantiles (log-linear between them:
    MosMedData's CT-1 masks, median 66 ml, some under 5 ml), within quantiles ``[j / n,
    (j + 1) / n)`` for ``stratum=(j, n)``, so that the n scans of a cohort cover the
    distribution evenly; the number of foci grows with
    it (1 + Poisson(3 ln(V / 1.5 ml))), and a Dirichlet (1.3) splits it among them, so
    that a few foci hold most of it, as on the real masks.

    Example:
        >>> volumes = focus_volumes(np.random.default_rng(0), "CT-1")
        >>> len(volumes) >= 1 and bool(volumes.sum() > 0)
        True
        >>> focus_volumes(np.random.default_rng(0), "CT-2") is None
        True
    """
    g = GRADES[grade]
    if not g.volume_ml:
        return None
    quantiles, volumes = zip(*g.volume_ml, strict=True)
    u = rng.uniform()
    if stratum is not None:
        u = (stratum[0] + u) / stratum[1]
    total = float(np.exp(np.interp(u, quantiles, np.log(volumes))))
    mean = np.clip(_FOCI_PER_LOG_ML * np.log(max(total / 1.5, 1.0)), 0.0, 16.0)
    count = 1 + int(rng.poisson(mean))
    return total * rng.dirichlet(np.full(count, _SPLIT))


def focal_disease(
    rng: np.random.Generator, lungs: np.ndarray, spacing: tuple[float, float, float],
    foci: np.ndarray, volumes_ml: np.ndarray, grade: str,
) -> Disease:
    """Lesions of set volumes (ml) grown around ``foci`` ((n, 3) voxel coordinates inside
    ``lungs``): each the lung voxels where a bump elongated along the body, held to the
    pleura as the grade says and with ragged edges, is highest, up to its volume (less
    where the lungs run out).

    Example:
        >>> lungs = np.zeros((40, 40, 20), bool); lungs[5:35, 5:35, 2:18] = True
        >>> d = focal_disease(np.random.default_rng(0), lungs, (2.0, 2.0, 4.0),
        ...                   np.array([[8.0, 8.0, 5.0], [30.0, 30.0, 12.0]]),
        ...                   np.array([1.6, 0.8]), "CT-1")
        >>> int(d.lesion.sum())  # 1.6 ml and 0.8 ml of 0.016 ml voxels
        150
    """
    g = GRADES[grade]
    sp = np.asarray(spacing, dtype=np.float64)
    voxel_ml = float(np.prod(sp)) / 1000.0
    found = np.zeros(lungs.shape, bool)
    rank = np.zeros(lungs.shape, np.float32)
    for centre, volume in zip(np.asarray(foci), np.asarray(volumes_ml), strict=True):
        k = int(round(volume / voxel_ml))
        if k == 0:
            continue
        radius = (3.0 * volume * 1000.0 / (4.0 * np.pi)) ** (1 / 3)
        sigma = radius * np.array([rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0),
                                   rng.uniform(0.7, 1.2)])
        lo = np.maximum(np.floor(centre - 3.0 * sigma / sp), 0).astype(int)
        hi = np.minimum(np.ceil(centre + 3.0 * sigma / sp) + 1, lungs.shape).astype(int)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        axes = [(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, centre, sp, strict=True)]
        d2 = sum(((ax / sg) ** 2).reshape([-1 if i == j else 1 for j in range(3)])
                 for i, (ax, sg) in enumerate(zip(axes, sigma, strict=True)))
        edge = _smooth_noise(rng, tuple(hi - lo), np.maximum(2.0 / sp, 0.5))
        depth = ndimage.distance_transform_edt(lungs[box], sampling=(sp[0], sp[1], 1e4))
        envelope = 1.0 - g.subpleural + g.subpleural * np.exp(-depth / 10.0)
        field = np.exp(-0.5 * d2) * envelope * (1.0 + 0.25 * edge)
        free = lungs[box] & ~found[box]
        values = field[free]
        take = min(k, values.size)
        if take == 0:
            continue
        order = np.argsort(values, kind="stable")[values.size - take:]
        where = tuple(ix[order] for ix in np.nonzero(free))
        local = (found[box], rank[box])
        local[0][where] = True
        local[1][where] = np.linspace(0.0, 1.0, take, dtype=np.float32)
    lesion = found[lungs]
    return _look(rng, g, lesion, rank[lungs], None, float(lesion.mean()) if lesion.size else 0.0)
