"""The lung beyond its air: what lies between the lungs' air and the rib cage.

Consolidation, ground glass and dense nodules against the chest wall hold no air, so the
lungs' air (:mod:`ct3d.preprocess.airlung`) stops short of them. This module adds them back
on the reduced grid, per lung (right and left split per slice) and per slice, by looking
outwards from the lung along rays, as a radiologist follows the lung's outline to the ribs:

1. rays: from the centroid of the lung's air in the slice (pieces under 1 cm2 left out:
   air left in a consolidation), ``_RAYS`` rays pointing from
   straight ahead round the lateral side to 45 degrees past straight behind (never towards
   the mediastinum and the heart); along each, the gap between the last air of the lung
   and the first bone beyond it (a rib, the spine); a ray that meets no bone within
   ``_REACH_MM`` (between two ribs, or above the rib cage) has no gap;
2. the gaps are smoothed over neighbouring rays and slices with a median, where at least a
   third of them are known: the space between two ribs takes its neighbours' gap, and a
   gap only a few rays wide (the descending aorta between the lung and the spine) is
   dropped, while a consolidation along the chest wall keeps its own;
3. fill: along each ray, the blocks beyond the last air and short of the smoothed gap's end
   less the chest wall's own thickness inside the ribs (the lung's typical gap),
   unless they are bone, fat (-200 to -40 HU), or fluid: soft tissue whose mean over about
   4 mm is below 15 HU (a pleural effusion; consolidated lung is denser);
4. what was filled, where it is at least 1 cm thick, is carried down slice by slice where
   it stays fillable, to at most
   ``_CARRY_MM`` below the lowest slice holding the lung's air: a consolidated base holds
   less and less air towards the posterior recess, which lies lower than the air in front.

What it cannot tell apart: fluid denser than 15 HU (blood, pus) is taken for lung and a
consolidation below 15 HU for fluid; an anterior consolidation against costal cartilage
that has not calcified (no bone there) is not filled; a lung base consolidated lower than
``_CARRY_MM`` under the last air is cut there, and under a consolidated base the fill takes
in the top of the liver or spleen (without contrast they look alike); an apex consolidated
above its air is not filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from ct3d.preprocess.airlung import Coarse

_SLICE_LINKS = np.pad(ndimage.generate_binary_structure(2, 1)[:, :, None], ((0, 0), (0, 0), (1, 1)))

__all__ = ["Tissue", "beyond_air", "carry_down", "tissue"]

_RAYS = 90
"""Rays per lung and slice (4 degrees apart)."""
_MEDIAL_DEG = 45.0
"""Rays point from straight ahead round the lateral side to this far past straight behind."""
_RAY_AIR_SHARE = 0.1
"""Rays are cast in the slices where a lung holds at least this share of its most air."""
_NODULE_MM = 12.0
"""Bites of up to twice this into a lung's air, against its chest wall, are closed."""
_PASSES = 2
"""Rays are cast again from the lungs' air and what the first pass filled."""
_SPINE_MM = 30.0
_SPECK_MM2 = 100.0
"""Pieces of a lung's air smaller than this in their slice are passed through by the rays."""
_REACH_MM = 80.0
"""The farthest a rib may lie beyond the lung's air for the gap between them to be filled."""
_SMOOTH_RAYS = 9
"""The gaps are smoothed over this many neighbouring rays (36 degrees)..."""
_SMOOTH_MM = 5.0
"""... and over the slices within this distance (at least the slice above and below)."""
_WALL_PERCENTILE = 30.0
_WALL_MM = 10.0
"""The chest wall's own thickness inside the ribs (pleura, fascia, the innermost muscle)
is the 30th percentile of a lung's gaps, at most 10 mm: most rays meet a healthy wall."""
_FAT_HU = (-200.0, -40.0)
_FLUID_HU = 15.0
"""Soft tissue whose mean HU is below this is fluid (a pleural effusion)."""
_SOFT_MM = 4.0
"""Half-width of the square the soft tissue's local mean HU is taken over."""
_MATCH_HU = 15.0
"""A fill is carried down into tissue at most this much denser than itself (not the liver
or the spleen, denser than consolidated lung with or without contrast)."""
_THIN_MM = 10.0
"""Only fill at least this thick is carried down (not the chest wall's rind)."""
_CARRY_MM = 30.0
"""A consolidated base is carried at most this far below the lung's lowest air."""


@dataclass(frozen=True, eq=False)
class Tissue:
    """Where a lung may reach beyond its air, on the reduced grid.

    Attributes:
        allowed: blocks inside the body's hulls that are not air, bone, fat (-200 to -40
            HU) or in front of the vertebral bodies (step 3 of the module doc).
        local: the soft tissue's mean HU over about 4 mm around each block (NaN where
            there is little soft tissue).
        stops: where a ray stops: bone, and the blocks in front of the vertebral bodies.
        edge: the image's border within the body's hulls: a ray that meets it before a
            stop fills nothing (the field of view cuts the chest).
    """

    allowed: np.ndarray
    local: np.ndarray
    stops: np.ndarray
    edge: np.ndarray


def tissue(coarse: Coarse, lungs: np.ndarray, other_air: np.ndarray) -> Tissue:
    """The :class:`Tissue` of a scan whose lungs' air is ``lungs`` (``other_air``: the air
    inside the body that is not lung)."""
    mean = coarse.mean
    soft = (mean > -100.0) & (mean < 150.0) & ~coarse.bone
    size = [2 * max(round(_SOFT_MM / s), 1) + 1 for s in coarse.block_mm[:2]] + [1]
    weight = ndimage.uniform_filter(soft.astype(np.float32), size)
    total = ndimage.uniform_filter(np.where(soft, mean, np.float32(0.0)), size)
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(weight > 0.25, total / weight, np.nan).astype(np.float32)
    fat = (mean > _FAT_HU[0]) & (mean < _FAT_HU[1])
    corridor = _prevertebral(coarse)
    allowed = coarse.inside & ~coarse.bone & ~fat & ~lungs & ~other_air & ~corridor
    edge = np.zeros(mean.shape, bool)
    for face in (edge[0], edge[-1], edge[:, 0], edge[:, -1]):
        face[...] = True
    edge &= coarse.inside
    return Tissue(allowed, local, corridor | (coarse.bone & coarse.inside), edge)


def _polar_table(shape: tuple[int, int], block_mm: tuple[float, float, float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) and ray of every offset (dx, dy) in ``(-W, W) x (-H, H)`` blocks."""
    w, h = shape
    dx = np.arange(-(w - 1), w, dtype=np.float32)[:, None] * np.float32(block_mm[0])
    dy = np.arange(-(h - 1), h, dtype=np.float32)[None, :] * np.float32(block_mm[1])
    ray = np.floor((np.arctan2(dy, dx) + np.pi) * (_RAYS / (2 * np.pi))).astype(np.int32)
    return np.hypot(dx, dy), np.minimum(ray, _RAYS - 1)


def _smoothed(values: np.ndarray, depth: int) -> np.ndarray:
    """NaN-aware median of ``values`` (slices, rays) over ``depth`` slices either side and
    ``_SMOOTH_RAYS`` rays around; NaN where fewer than a third of them are known."""
    half = _SMOOTH_RAYS // 2
    padded = np.pad(np.pad(values, ((0, 0), (half, half)), mode="wrap"),
                    ((depth, depth), (0, 0)), constant_values=np.nan)
    windows = np.sort(sliding_window_view(padded, (2 * depth + 1, _SMOOTH_RAYS))
                      .reshape(*values.shape, -1), axis=-1)  # NaN sorts last
    known = np.isfinite(windows).sum(axis=-1)
    low = np.take_along_axis(windows, np.maximum(known - 1, 0)[..., None] // 2, axis=-1)[..., 0]
    high = np.take_along_axis(windows, (known // 2)[..., None], axis=-1)[..., 0]
    return np.where(3 * known >= windows.shape[-1], (low + high) / 2, np.nan)


def _lateral(side: int, ray: np.ndarray) -> np.ndarray:
    """Each ray's angle (degrees) from a lung's lateral direction (right: ``side`` 1, left:
    -1), positive forwards, negative backwards."""
    angle = (ray + 0.5) * (2 * np.pi / _RAYS) - np.pi
    return np.degrees(np.arctan2(np.sin(angle), side * np.cos(angle)))


def _outward(side: int) -> np.ndarray:
    """The rays of a lung that may be filled: from straight ahead round the lateral side
    to ``_MEDIAL_DEG`` past straight behind (the paravertebral gutter), not towards the
    mediastinum and the heart."""
    lateral = _lateral(side, np.arange(_RAYS))
    return (lateral <= 90.0) & (lateral >= -90.0 - _MEDIAL_DEG)


def _closed(mask: np.ndarray, block_mm: tuple[float, float, float], half_mm: float
            ) -> np.ndarray:
    """In-plane closing with a square of half-width ``half_mm``."""
    size = [2 * math.ceil(half_mm / s) + 1 for s in block_mm[:2]]
    grown = ndimage.maximum_filter(mask.view(np.uint8), (*size, 1))
    return ndimage.minimum_filter(grown, (*size, 1)).view(bool)


def _prevertebral(coarse: Coarse) -> np.ndarray:
    """The blocks straight in front of the vertebral bodies (the oesophagus, the aorta's
    inner half, the heart): in each slice, the columns of the vertebral body's front, from
    its front edge forwards. A ray meeting them stops there without a gap.

    The vertebral body is, in each slice, the largest piece of bone within ``_SPINE_MM`` of
    the middle of the body's hull, in its back half; its front is the foremost over the
    slices within about 2 cm (an intervertebral disc holds no bone).
    """
    w, h, d = coarse.bone.shape
    columns = coarse.inside.any(axis=1)
    centre = (np.argmax(columns, axis=0) + w - 1 - np.argmax(columns[::-1], axis=0)) / 2
    x = np.arange(w)[:, None, None] - centre[None, None, :]
    rows = coarse.inside.any(axis=0)
    middle = (np.argmax(rows, axis=0) + h - 1 - np.argmax(rows[::-1], axis=0)) / 2
    y = np.arange(h)[None, :, None]
    labels, count = ndimage.label(
        coarse.bone & (np.abs(x) * coarse.block_mm[0] < _SPINE_MM) & (y < middle),
        _SLICE_LINKS)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    slice_of = np.zeros(count + 1, int)
    slice_of[labels.ravel()] = np.broadcast_to(np.arange(d), labels.shape).ravel()
    best = np.zeros(d, int)
    for label in np.argsort(sizes)[::-1][: count]:  # largest first; keep each slice's first
        if sizes[label] and not best[slice_of[label]]:
            best[slice_of[label]] = label
    body = (labels == best[None, None, :]) & (best[None, None, :] > 0)
    found = body.any(axis=(0, 1))
    front = np.where(found, h - 1 - np.argmax(body.any(axis=0)[::-1], axis=0), -1)
    near = body & (y >= front - round(10.0 / coarse.block_mm[1]))
    xs = np.arange(w)[:, None]
    cols = near.any(axis=1)
    low = np.where(found, np.argmax(cols, axis=0), w)
    high = np.where(found, w - 1 - np.argmax(cols[::-1], axis=0), -1)
    span = 2 * max(1, round(20.0 / coarse.block_mm[2])) + 1
    front = ndimage.maximum_filter1d(front, span, mode="nearest")
    low = ndimage.minimum_filter1d(low, span, mode="nearest")
    high = ndimage.maximum_filter1d(high, span, mode="nearest")
    return ((front >= 0) & (y >= front)) & ((xs >= low) & (xs <= high))[:, None, :]


def _main_air(coarse: Coarse, air: np.ndarray) -> np.ndarray:
    """``air`` less the pieces of it smaller than ``_SPECK_MM2`` in their slice (air left in
    a consolidation, or a thick slice's partial volume at a lesion's edge)."""
    labels, count = ndimage.label(air, _SLICE_LINKS)
    sizes = np.bincount(labels.ravel(), minlength=count + 1) * math.prod(coarse.block_mm[:2])
    keep = sizes >= _SPECK_MM2
    keep[0] = False
    return keep[labels]


def _fluid(mean: np.ndarray, segment: np.ndarray, ray: np.ndarray, shape: tuple[int, int],
           depth: int) -> np.ndarray:
    """Rays whose fill is fluid: the soft tissue (-100 to 150 HU) on their segment has a
    mean below ``_FLUID_HU``, smoothed over neighbouring rays and slices like the gaps."""
    soft = segment & (mean > -100.0) & (mean < 150.0)
    size = shape[0] * shape[1]
    count = np.bincount(ray[soft], minlength=size)
    total = np.bincount(ray[soft], weights=mean[soft], minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(count > 0, total / count, np.nan)
    return np.nan_to_num(_smoothed(density.reshape(shape), depth).ravel(), nan=np.inf) < _FLUID_HU


def _side(coarse: Coarse, air: np.ndarray, found: Tissue,
          table: tuple[np.ndarray, np.ndarray], side: int) -> np.ndarray:
    """The fill of one lung (steps 1-3 of the module doc); ``air`` is that lung's air,
    small pieces left out (:func:`_main_air`)."""
    w, h, d = air.shape
    counts = air.sum(axis=(0, 1))
    fill = np.zeros(air.shape, bool)
    if not counts.any():
        return fill
    levels = np.flatnonzero(counts >= _RAY_AIR_SHARE * counts.max())
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    cx = np.rint((air.sum(axis=1) * xs[:, None]).sum(axis=0)[levels] / counts[levels])
    cy = np.rint((air.sum(axis=0) * ys[:, None]).sum(axis=0)[levels] / counts[levels])
    ix = (w - 1 - cx.astype(int))[None, :] + np.arange(w)[:, None]
    iy = (h - 1 - cy.astype(int))[None, :] + np.arange(h)[:, None]
    dist = table[0][ix[:, None, :], iy[None, :, :]]
    ray = table[1][ix[:, None, :], iy[None, :, :]] + _RAYS * np.arange(levels.size)
    sub_air, stop = air[:, :, levels], found.stops[:, :, levels]
    last = np.full(levels.size * _RAYS, -1.0, np.float32)
    np.maximum.at(last, ray[sub_air], dist[sub_air])
    past = (dist > last[ray]) & (last[ray] >= 0)
    first = np.full(levels.size * _RAYS, np.inf, np.float32)
    np.minimum.at(first, ray[stop & past], dist[stop & past])
    edge = np.full(levels.size * _RAYS, np.inf, np.float32)
    border = found.edge[:, :, levels] & past
    np.minimum.at(edge, ray[border], dist[border])
    outward = np.tile(_outward(side), levels.size) & ~(edge < first)
    first[~((first - last <= _REACH_MM) & outward)] = np.nan
    shape = (levels.size, _RAYS)
    depth = max(1, round(_SMOOTH_MM / coarse.block_mm[2]))
    gap = np.nan_to_num(_smoothed((first - last).reshape(shape), depth).ravel())
    wall_at = _smoothed(first.reshape(shape), depth).ravel()
    known = (first - last)[np.isfinite(first)]
    wall = min(float(np.percentile(known, _WALL_PERCENTILE)), _WALL_MM) if known.size else 0.0
    inside = (dist > last[ray]) & (last[ray] >= 0) & found.allowed[:, :, levels]
    lateral = np.tile(np.abs(_lateral(side, np.arange(_RAYS))) <= 90.0, levels.size)
    bites = _closed(sub_air, coarse.block_mm, _NODULE_MM) & inside & lateral[ray]
    bitten = np.zeros(last.shape, bool)
    bitten[ray[bites]] = True
    outer = np.where(outward & ((gap > wall + _THIN_MM) | bitten), wall_at - wall, last)
    outer[np.isnan(outer)] = last[np.isnan(outer)]
    fluid = _fluid(coarse.mean[:, :, levels], inside & (dist < outer[ray]), ray, shape, depth)
    outer[fluid] = last[fluid]
    fill[:, :, levels] = (inside & (dist < outer[ray])) | bites
    return fill


def beyond_air(coarse: Coarse, lungs: np.ndarray, found: Tissue, split: np.ndarray,
               passes: int = _PASSES) -> np.ndarray:
    """What the lungs hold between their air and the ribs, on the reduced grid (steps 1-3
    of the module doc).

    Args:
        coarse: the scan on the reduced grid.
        lungs: the lungs' air there (:func:`ct3d.preprocess.airlung.air_lungs`).
        found: the scan's :class:`Tissue`.
        split: per slice, the column between the right and the left lung.
        passes: how many times rays are cast (again from the air and what was filled).
    """
    table = _polar_table(lungs.shape[:2], coarse.block_mm)
    right = np.arange(lungs.shape[0])[:, None, None] > split[None, None, :]
    air = _main_air(coarse, lungs)
    fill = np.zeros(lungs.shape, bool)
    for _ in range(passes):
        known = air | fill
        fill |= (_side(coarse, known & right, found, table, 1)
                 | _side(coarse, known & ~right, found, table, -1))
    return fill


def carry_down(coarse: Coarse, dense: np.ndarray, found: Tissue, lowest: int) -> np.ndarray:
    """Step 4: ``dense`` (lung that holds no air) where at least ``_THIN_MM`` thick, carried
    into the slice below where that is allowed, not fluid and not denser than the slice
    above (by more than ``_MATCH_HU`` over its median), from the top down to ``_CARRY_MM``
    below slice
    ``lowest`` (the lowest holding the lungs' air). Returns what was carried."""
    bottom = max(lowest - math.ceil(_CARRY_MM / coarse.block_mm[2]), 0)
    width = [max(2 * round(_THIN_MM / 2 / s) + 1, 3) for s in coarse.block_mm[:2]]
    thick = ndimage.maximum_filter(ndimage.minimum_filter(dense.view(np.uint8), (*width, 1)),
                                   (*width, 1)).view(bool)
    carried = np.zeros(dense.shape, bool)
    for k in range(dense.shape[2] - 2, bottom - 1, -1):
        density = found.local[:, :, k + 1][thick[:, :, k + 1]]
        density = density[np.isfinite(density)]
        if density.size:
            local = found.local[:, :, k]
            near = ~((local > np.median(density) + _MATCH_HU) | (local < _FLUID_HU))
            room = thick[:, :, k + 1] & found.allowed[:, :, k]
            kept = ndimage.binary_closing(room & near, np.ones((3, 3), bool)) & room
            carried[:, :, k] = kept & ~dense[:, :, k]
            thick[:, :, k] |= kept
    return carried
