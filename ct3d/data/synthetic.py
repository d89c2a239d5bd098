"""Synthetic chest-CT phantoms in Hounsfield units: ct3d's embedded default data source.

Each scan is a chest-like phantom built from analytic shapes, rendered with vectorised
numpy: air around a body ellipse (skin fat over soft tissue), a patient table, two lungs
that taper towards apex and base, branching vessel and airway trees grown from the hila,
the trachea, a segmented spine, ribs, sternum and heart, then slight in-plane smoothing
and Gaussian scanner noise. Abnormal scans add COVID-19-like lesions: peripheral,
multifocal ground-glass opacities and consolidations in both lungs, with a lesion mask:
either by ``difficulty`` (a few lesions of set sizes) or by MosMedData severity ``grade``
(CT-1 to CT-4: the share of lung volume affected and the lesions' look follow the grade,
see :mod:`ct3d.data.severity`). A ``varied`` scanner adds what real cohorts vary in: slice
thickness, noise, reconstruction kernel, patient size, inspiration and field of view.

Geometry follows MosMedData (``mosmed`` preset: 512x512 in-plane, ~0.7 mm pixels, 8 mm
slices) or a small ``quick`` preset for tests and demos. Arrays are ``(x, y, slice)`` in
RAS+ order with a diagonal affine centred on the volume. Scan ``i`` of a cohort made with
``seed`` is ``generate_scan((seed, i), ...)``: byte-identical however many workers run.

Example:
    >>> from ct3d.data.synthetic import generate_scan
    >>> volume, mask = generate_scan(seed=1, abnormal=True)
    >>> volume.array.shape[:2], mask.dtype, bool(mask.any())
    ((128, 128), dtype('uint8'), True)
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import TypeVar

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from ct3d.data.lesion_stats import LESION_STATS, lesion_stats
from ct3d.data.severity import (
    CT23_SHARE_CT2,
    GRADES,
    cohort_grades,
    disease,
    focal_disease,
    focus_volumes,
)
from ct3d.io import write_volume
from ct3d.volume import Volume

__all__ = [
    "DIFFICULTIES",
    "PRESETS",
    "Difficulty",
    "Phantom",
    "MANIFEST",
    "SCANNERS",
    "Preset",
    "Scanner",
    "Tissue",
    "generate_cohort",
    "generate_scan",
    "render_phantom",
]

_T = TypeVar("_T")
Seed = int | Sequence[int]
Box = tuple[slice, slice, slice]
_FULL: Box = (slice(None), slice(None), slice(None))


@dataclass(frozen=True)
class Preset:
    """Scan geometry.

    Attributes:
        size: in-plane voxels (square slices).
        depth: slice count range, both ends included.
        pixel_mm: in-plane spacing range, drawn per scan.
        slice_mm: slice spacing (and thickness).
        min_vessel_mm: thinnest vessel radius drawn (finer ones would not show).
        min_airway_mm: thinnest airway lumen radius drawn.
    """

    size: int
    depth: tuple[int, int]
    pixel_mm: tuple[float, float]
    slice_mm: float
    min_vessel_mm: float
    min_airway_mm: float


@dataclass(frozen=True)
class Difficulty:
    """Lesion settings of abnormal scans.

    Attributes:
        lesions: lesion count range per scan, both ends included.
        radius_mm: range of a lesion's largest semi-axis (the others are 50-100% of it).
        ggo_hu: HU range of ground-glass opacities.
        consolidation_hu: HU range of consolidations.
        ggo_fraction: chance that a lesion is ground glass rather than consolidation.
    """

    lesions: tuple[int, int]
    radius_mm: tuple[float, float]
    ggo_hu: tuple[float, float]
    consolidation_hu: tuple[float, float]
    ggo_fraction: float


@dataclass(frozen=True)
class Scanner:
    """How a cohort's scans vary besides anatomy and lesions; each range is drawn per scan.

    Attributes:
        slice_mm: slice thicknesses (equal to the slice spacing) and their chances.
        noise_hu: range of the noise standard deviation.
        blur_mm: range of the reconstruction kernel's in-plane blur (Gaussian sigma).
        sharpen: range of a sharp kernel's edge enhancement (0: a soft kernel).
        body_scale: range of the patient size, as a factor on the body's width and depth.
        inspiration: range of the lung height factor; a deeper breath also darkens the lungs.
        fov_pad: range of the field of view's width over the body's width.
    """

    slice_mm: tuple[tuple[float, float], ...]
    noise_hu: tuple[float, float]
    blur_mm: tuple[float, float]
    sharpen: tuple[float, float]
    body_scale: tuple[float, float]
    inspiration: tuple[float, float]
    fov_pad: tuple[float, float]


SCANNERS: dict[str, Scanner | None] = {
    "uniform": None,
    "varied": Scanner(
        slice_mm=((1.0, 0.04), (2.0, 0.04), (5.0, 0.12), (8.0, 0.7), (10.0, 0.1)),
        noise_hu=(10.0, 45.0), blur_mm=(0.3, 1.2), sharpen=(0.0, 0.8),
        body_scale=(0.85, 1.15), inspiration=(0.88, 1.08), fov_pad=(1.08, 1.5),
    ),
}
"""``uniform``: the preset's own geometry, 15-25 HU noise, one kernel (the original
phantoms); ``varied``: MosMedData-like variety (mostly 8 mm slices, 1-10 mm in all)."""

PRESETS: dict[str, Preset] = {
    "mosmed": Preset(512, (36, 44), (0.62, 0.78), 8.0, min_vessel_mm=0.8, min_airway_mm=1.2),
    "quick": Preset(128, (28, 36), (2.48, 3.12), 10.0, min_vessel_mm=1.4, min_airway_mm=2.4),
}

DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty((6, 10), (16.0, 32.0), (-480.0, -300.0), (-40.0, 50.0), 0.5),
    "moderate": Difficulty((3, 6), (10.0, 22.0), (-620.0, -420.0), (-60.0, 30.0), 0.7),
    "hard": Difficulty((1, 3), (5.0, 11.0), (-680.0, -580.0), (-70.0, -20.0), 0.85),
}


class Tissue(IntEnum):
    """Labels of the phantom's tissue map (``Phantom.labels``)."""

    AIR = 0
    TABLE = 1
    FAT = 2
    SOFT = 3
    LUNG = 4
    VESSEL = 5
    AIRWAY = 6
    AIRWAY_WALL = 7
    CORTICAL = 8
    TRABECULAR = 9
    GGO = 10
    CONSOLIDATION = 11
    ORGAN = 12


_BASE_HU = np.array([-1000, 150, -100, 40, -850, 40, -1000, 0, 850, 450, -500, 0, 58],
                    np.float32)
_HU_RANGE = (-1024.0, 3071.0)


@dataclass(frozen=True, eq=False)
class Phantom:
    """A rendered phantom: the scan, its lesion mask and the ground truth it was built from.

    Attributes:
        volume: the scan, float32 HU with integer values.
        mask: uint8 lesion mask (1 inside lesions), all zeros for normal scans.
        labels: uint8 ``Tissue`` label of every voxel.
        lungs: bool lung region (parenchyma and the vessels, airways, lesions within it).
        grade: MosMedData severity grade of a graded phantom (``CT-0`` when normal), or ``""``
            for one made by ``difficulty``.
    """

    volume: Volume
    mask: np.ndarray
    labels: np.ndarray
    lungs: np.ndarray
    grade: str = ""

    @property
    def involvement(self) -> float:
        """Share of the lung volume in lesions (lesion voxels in the lungs / lung voxels)."""
        return float(np.count_nonzero(self.mask.astype(bool) & self.lungs)
                     / max(np.count_nonzero(self.lungs), 1))


@dataclass(frozen=True)
class _Grid:
    """Voxel grid in mm, centred on the origin, axes (x, y, slice) = (R, A, S)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def origin(self) -> np.ndarray:
        return -0.5 * (np.array(self.shape) - 1) * np.array(self.spacing)

    @property
    def affine(self) -> np.ndarray:
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = self.origin
        return affine

    def axis(self, i: int) -> np.ndarray:
        return (self.origin[i] + self.spacing[i] * np.arange(self.shape[i])).astype(np.float32)

    def plane(self) -> tuple[np.ndarray, np.ndarray]:
        """In-plane coordinates shaped (W, 1) and (1, H)."""
        return self.axis(0)[:, None], self.axis(1)[None, :]

    def mesh(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates of a box, shaped to broadcast to (w, h, d)."""
        x, y, z = (self.axis(i)[box[i]] for i in range(3))
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def box(self, lo: np.ndarray, hi: np.ndarray) -> Box | None:
        """Voxels whose centres lie in [lo, hi] mm, or None when there are none."""
        spacing = np.array(self.spacing)
        start = np.maximum(np.ceil((lo - self.origin) / spacing), 0).astype(int)
        stop = np.minimum(np.floor((hi - self.origin) / spacing) + 1, self.shape).astype(int)
        if np.any(stop <= start):
            return None
        return slice(start[0], stop[0]), slice(start[1], stop[1]), slice(start[2], stop[2])

    def contains(self, region: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Whether points (n, 3) in mm fall in a voxel of a 3D bool ``region``."""
        idx = np.rint((points - self.origin) / np.array(self.spacing)).astype(int)
        valid = np.all((idx >= 0) & (idx < self.shape), axis=1)
        found = np.zeros(len(points), bool)
        found[valid] = region[tuple(idx[valid].T)]
        return found


@dataclass(frozen=True, eq=False)
class _Anatomy:
    """Per-scan anatomy, all lengths in mm."""

    centre: tuple[float, float]
    body: tuple[float, float]
    fat: float
    wall: float
    lung_height: float
    lung_z: float
    lung_scale: tuple[float, float]
    vertebra_radius: float
    vertebra_pitch: float
    vertebra_phase: float
    rib_pitch: float
    rib_drop: float
    lut: np.ndarray
    noise_hu: float
    dome: float
    recess: float

    @property
    def cavity(self) -> tuple[float, float, float, float]:
        """Thoracic cavity ellipse (cx, cy, a, b); the posterior wall is thicker."""
        a = self.body[0] - self.fat - self.wall
        b = self.body[1] - self.fat - self.wall - 12.0
        return self.centre[0], self.centre[1] + 12.0, a, b

    def lung_ellipse(self, side: int) -> tuple[float, float, float, float]:
        """Widest cross-section (cx, cy, a, b) of the right (+1) or left (-1) lung."""
        cx, cy, a, b = self.cavity
        scale = self.lung_scale[0 if side > 0 else 1]
        return cx + side * 0.54 * a, cy - 0.05 * b, 0.44 * a * scale, b * scale

    def lung_span(self, side: int) -> tuple[float, float]:
        """(base z, height) of a lung; the right base sits higher, above the liver."""
        lift = 12.0 if side > 0 else 0.0
        return self.lung_z - 0.5 * self.lung_height + lift, self.lung_height - lift

    def apex_scale(self, z: np.ndarray) -> np.ndarray:
        """The lungs' cross-section scale at heights ``z``: 1 up to 40% of their height,
        shrinking to 0 at the apex."""
        top = self.lung_z + 0.5 * self.lung_height
        return np.sqrt(np.clip((top - z) / (0.6 * self.lung_height), 0, 1)).astype(np.float32)

    def lung_q(self, side: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A lung's widest cross-section, a rounded rectangle (superellipse of power 4):
        < 1 inside."""
        cx, cy, a, b = self.lung_ellipse(side)
        return ((x - cx) / a) ** 4 + ((y - cy) / b) ** 4

    def dome_z(self, side: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the diaphragm under a lung: ``dome`` above its recesses at the centre;
        the recesses rise by ``recess`` from the back to the front."""
        _, cy, _, b = self.lung_ellipse(side)
        base, _ = self.lung_span(side)
        front = np.clip((y - cy + b) / (2 * b), 0, 1)
        return base + self.recess * front + self.dome * np.clip(1 - self.lung_q(side, x, y), 0, 1)

    def cage(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cavity at heights ``z`` as (cy, a, b): the widest cavity's, narrowing with the
        lungs towards their apices, at the back."""
        cx, cy, a, b = self.cavity
        _, ly, la, lb = self.lung_ellipse(1)
        scale = self.apex_scale(z)
        half = np.minimum(a, 0.14 * a + 2 * la * scale)
        back = cy - b
        front = np.minimum(cy + b, ly - lb + 2 * lb * scale + 0.06 * b)
        return (back + front) / 2, half, (front - back) / 2

    def vertebra_y(self) -> float:
        cx, cy, a, b = self.cavity
        return cy - b + 0.5 * self.vertebra_radius

    def hilum(self, side: int) -> np.ndarray:
        cx, cy, a, b = self.lung_ellipse(side)
        base, height = self.lung_span(side)
        return np.array([cx - side * 0.8 * a, cy + 0.1 * b, base + 0.55 * height])


@dataclass(frozen=True)
class _Segment:
    start: np.ndarray
    end: np.ndarray
    radius: float


@dataclass(frozen=True, eq=False)
class _Lesion:
    centre: np.ndarray
    radii: np.ndarray
    rotation: np.ndarray
    waves: np.ndarray
    phases: np.ndarray
    hu: float
    hu_range: tuple[float, float]
    kind: Tissue


def _lookup(table: dict[str, _T], name: str, what: str) -> _T:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def _draw_grid(rng: np.random.Generator, preset: Preset) -> _Grid:
    depth = int(rng.integers(preset.depth[0], preset.depth[1], endpoint=True))
    pixel = float(rng.uniform(*preset.pixel_mm))
    return _Grid((preset.size, preset.size, depth), (pixel, pixel, preset.slice_mm))


def _draw_lut(rng: np.random.Generator) -> np.ndarray:
    lut = _BASE_HU.copy()
    for tissue, spread in ((Tissue.SOFT, 8), (Tissue.FAT, 15), (Tissue.LUNG, 15),
                           (Tissue.ORGAN, 6)):
        lut[tissue] += rng.uniform(-spread, spread)
    lut[Tissue.VESSEL] += rng.uniform(-10, 20)
    return lut


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    lung_height = rng.uniform(225, 275)
    return _Anatomy(
        centre=(rng.uniform(-8, 8), rng.uniform(-6, 10)),
        body=(rng.uniform(132, 150), rng.uniform(95, 112)),
        fat=rng.uniform(6, 18),
        wall=rng.uniform(12, 18),
        lung_height=lung_height,
        lung_z=rng.uniform(-12, 12),
        lung_scale=(rng.uniform(0.97, 1.03), rng.uniform(0.9, 0.97)),
        vertebra_radius=rng.uniform(14, 18),
        vertebra_pitch=rng.uniform(24, 30),
        vertebra_phase=rng.uniform(0, 30),
        rib_pitch=lung_height / rng.uniform(9.5, 11),
        rib_drop=rng.uniform(60, 95),
        lut=_draw_lut(rng),
        noise_hu=rng.uniform(15, 25),
        dome=rng.uniform(30, 45),
        recess=rng.uniform(15, 30),
    )


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Normalised squared radius: < 1 inside the ellipse."""
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2


def _body(grid: _Grid, anat: _Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """2D body and inner (inside the fat layer) masks."""
    x, y = grid.plane()
    (cx, cy), (a, b) = anat.centre, anat.body
    body = _ellipse(x, y, cx, cy, a, b) < 1
    inner = _ellipse(x, y, cx, cy, a - anat.fat, b - anat.fat) < 1
    return body, inner


def _table(grid: _Grid, anat: _Anatomy) -> np.ndarray:
    """2D mask of a patient table: a flat top plate and a curved lower plate."""
    x, y = grid.plane()
    top = anat.centre[1] - anat.body[1] - 3.0
    curve = top - 26.0 + 6e-4 * x**2
    flat = (y < top) & (y > top - 5.0) & (np.abs(x) < 170)
    lower = (y < curve + 4.0) & (y > curve) & (np.abs(x) < 150)
    return flat | lower


def _heart(grid: _Grid, anat: _Anatomy) -> np.ndarray:
    """3D ellipsoid heart, left-anterior in the lower mediastinum."""
    cx, cy, a, b = anat.cavity
    base, height = anat.lung_span(-1)
    x, y, z = grid.mesh(_FULL)
    q = _ellipse(x[:, :, 0], y[:, :, 0], cx - 0.15 * a, cy + 0.3 * b, 0.4 * a, 0.55 * b)
    return q[:, :, None] + ((z - (base + 0.3 * height)) / (0.28 * height)) ** 2 < 1


def _spine(grid: _Grid, anat: _Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """3D cortical and trabecular bone of the spine (bodies with discs, posterior arch)."""
    x, y = grid.plane()
    x = x - anat.centre[0]
    r, yv = anat.vertebra_radius, anat.vertebra_y()
    q = _ellipse(x, y, 0.0, yv, 1.15 * r, r)
    marrow = q < (1 - 2.2 / r) ** 2
    shell = (q < 1) & ~marrow
    yc, rc = yv - r - 7.0, 7.0
    canal = np.hypot(x, y - yc)
    arch = (canal > rc) & (canal < rc + 4.5) & (y < yc + 2.0)
    spinous = (np.abs(x) < 3.5) & (y < yc - rc) & (y > yc - rc - 16.0)
    transverse = (np.abs(y - yc) < 4.0) & (np.abs(x) > 0.5 * r) & (np.abs(x) < r + 14.0)
    z = grid.axis(2)
    disc = np.mod(z - anat.vertebra_phase, anat.vertebra_pitch) < 6.0
    cortical = (shell[:, :, None] & ~disc) | (arch | spinous | transverse)[:, :, None]
    trabecular = marrow[:, :, None] & ~disc
    return cortical, trabecular


def _ribs(grid: _Grid, anat: _Anatomy) -> np.ndarray:
    """3D ribs: oblique arcs just outside the cavity (narrowing with it towards the apices),
    descending from spine to sternum."""
    cx = anat.centre[0]
    cy, a, b = (c[None, None, :] + 5.0 for c in anat.cage(grid.axis(2)))
    cy = cy - 5.0
    x, y = grid.plane()
    x, y = x[:, :, None] - cx, y[:, :, None] - cy
    rho = np.hypot(x / a, y / b) + 1e-6
    gradient = np.hypot(x / a**2, y / b**2) / rho
    distance = (rho - 1) / gradient
    along = (np.arctan2(np.abs(x), -y) / np.pi - 0.12) / (0.8 - 0.12)
    shell = (np.abs(distance) < 3.5) & (along >= 0) & (along <= 1)
    top = anat.lung_z + 0.5 * anat.lung_height + 5.0
    z = np.broadcast_to(grid.axis(2)[None, None, :], grid.shape)
    u = (top - anat.rib_drop * along[shell] - z[shell]) / anat.rib_pitch
    rib = np.rint(u)
    ribs = np.zeros(grid.shape, bool)
    ribs[shell] = (np.abs(u - rib) * anat.rib_pitch < 5.0) & (rib >= 0) & (rib < 12)
    return ribs


def _sternum(grid: _Grid, anat: _Anatomy) -> np.ndarray:
    """3D sternum: a flat bar at the anterior midline over the upper chest."""
    cx, cy, a, b = anat.cavity
    x, y = grid.plane()
    bar = _ellipse(x, y, cx, cy + b + 6.0, 14.0, 5.0) < 1
    base, height = anat.lung_span(-1)
    z = grid.axis(2)
    return bar[:, :, None] & ((z > base + 0.3 * height) & (z < base + height))


def _lungs(grid: _Grid, anat: _Anatomy, excluded: np.ndarray) -> np.ndarray:
    """3D lungs: rounded rectangles filling the cavity, over domed bases, tapering towards
    apices at the back; minus heart, bone and whatever else is ``excluded``."""
    x, y = grid.plane()
    x, y = x[:, :, None], y[:, :, None]
    z = grid.axis(2)
    cy, a, b = (c[None, None, :] for c in anat.cage(z))
    cavity = ((x - anat.centre[0]) / (0.98 * a)) ** 2 + ((y - cy) / (0.98 * b)) ** 2 < 1
    scale = anat.apex_scale(z)[None, None, :] + np.float32(1e-3)
    lungs = np.zeros(grid.shape, bool)
    for side in (1, -1):
        lx, ly, la, lb = anat.lung_ellipse(side)
        ax, ay = lx - side * la * (1 - scale), ly - lb * (1 - scale)
        tapered = ((x - ax) / (la * scale)) ** 4 + ((y - ay) / (lb * scale)) ** 4 < 1
        lungs |= tapered & (z[None, None, :] > anat.dome_z(side, x, y))
    return lungs & cavity & ~excluded


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _children(
    rng: np.random.Generator, direction: np.ndarray, radius: float, outward: np.ndarray
) -> list[tuple[np.ndarray, float]]:
    """Two child branches: a major one bending a little, a thinner one bending more."""
    normal = _unit(np.cross(direction, rng.normal(size=3)))
    children = []
    for angle, ratio in ((rng.uniform(0.25, 0.5), 0.82), (-rng.uniform(0.5, 0.9), 0.65)):
        turned = np.cos(angle) * direction + np.sin(angle) * normal
        children.append((_unit(turned + 0.35 * outward), radius * ratio))
    return children


def _step(
    rng: np.random.Generator,
    start: np.ndarray,
    direction: np.ndarray,
    length: float,
    inside: Callable[[np.ndarray], bool],
) -> np.ndarray | None:
    """End of a branch from ``start``: as aimed, else a few bent tries that stay inside."""
    for bend in (0.0, 0.5, 0.8, 1.1):
        aim = _unit(direction + bend * rng.normal(size=3)) if bend else direction
        end = start + aim * length
        if inside(end) and inside(0.5 * (start + end)):
            return end
    return None


def _grow_tree(
    rng: np.random.Generator,
    root: np.ndarray,
    trunks: list[np.ndarray],
    radius: float,
    min_radius: float,
    inside: Callable[[np.ndarray], bool],
) -> list[_Segment]:
    """Branch segments grown from a root; a branch stops where it cannot stay in the lung."""
    stack = [(root, direction, radius) for direction in trunks]
    segments = []
    while stack:
        start, direction, r = stack.pop()
        end = _step(rng, start, direction, r * rng.uniform(5.0, 9.0), inside)
        if end is None:
            continue
        segments.append(_Segment(start, end, r))
        outward = _unit(end - root)
        stack.extend(
            (end, child, child_r)
            for child, child_r in _children(rng, _unit(end - start), r, outward)
            if child_r >= min_radius
        )
    return segments


def _trunks(rng: np.random.Generator, side: int, count: int) -> list[np.ndarray]:
    """Random trunk directions from a hilum: away from the midline, mostly up or down."""
    trunks: list[np.ndarray] = []
    while len(trunks) < count:
        direction = _unit(rng.normal(size=3) * np.array([1.0, 1.0, 1.6]))
        if side * direction[0] > -0.1:
            trunks.append(direction)
    return trunks


def _render_tubes(
    grid: _Grid, segments: list[_Segment], scale: float = 1.0, grow: float = 0.0
) -> np.ndarray:
    """3D mask of capsules around segments, radius ``scale * r + grow``.

    The slice direction is shortened by a part of the slice thickness, so a branch
    running within a thick slab still shows in it (a crude partial-volume model).
    """
    slab = 0.35 * grid.spacing[2]
    mask = np.zeros(grid.shape, bool)
    for seg in segments:
        r = scale * seg.radius + grow
        pad = np.array([r, r, r + slab])
        box = grid.box(np.minimum(seg.start, seg.end) - pad, np.maximum(seg.start, seg.end) + pad)
        if box is None:
            continue
        x, y, z = grid.mesh(box)
        (sx, sy, sz), (vx, vy, vz) = seg.start, seg.end - seg.start
        rx, ry, rz = x - sx, y - sy, z - sz
        t = np.clip((rx * vx + ry * vy + rz * vz) / (vx * vx + vy * vy + vz * vz), 0, 1)
        dz = np.maximum(np.abs(rz - t * vz) - slab, 0)
        mask[box] |= (rx - t * vx) ** 2 + (ry - t * vy) ** 2 + dz**2 < r * r
    return mask


def _inside(grid: _Grid, region: np.ndarray) -> Callable[[np.ndarray], bool]:
    def test(point: np.ndarray) -> bool:
        return bool(grid.contains(region, point[None])[0])

    return test


def _anchors(
    rng: np.random.Generator, grid: _Grid, anat: _Anatomy, lungs: np.ndarray, side: int, count: int
) -> np.ndarray:
    """About ``count`` evenly spread points inside one lung (k-means of random points)."""
    cx, cy, a, b = anat.lung_ellipse(side)
    base, height = anat.lung_span(side)
    lo, hi = np.array([cx - a, cy - b, base]), np.array([cx + a, cy + b, base + height])
    points = lo + (hi - lo) * rng.uniform(size=(600, 3))
    points = points[grid.contains(lungs, points)]
    if len(points) == 0:
        return points
    centres = points[:count]
    for _ in range(6):
        nearest = np.argmin(np.linalg.norm(points[:, None] - centres[None], axis=2), axis=1)
        centres = np.array([points[nearest == k].mean(axis=0) for k in np.unique(nearest)])
    return centres[grid.contains(lungs, centres)]


def _primary_tree(hilum: np.ndarray, anchors: np.ndarray, radius: float) -> list[_Segment]:
    """Branches joining anchors, nearest to the hilum first, each to its nearest joined node.

    Radii shrink from ``radius`` at the hilum to half of it at the farthest anchor.
    """
    if len(anchors) == 0:
        return []
    reach = np.linalg.norm(anchors - hilum, axis=1)
    nodes, segments = [hilum], []
    for i in np.argsort(reach):
        parent = min(nodes, key=lambda node: float(np.linalg.norm(node - anchors[i])))
        segments.append(_Segment(parent, anchors[i], radius * (1 - 0.5 * reach[i] / reach.max())))
        nodes.append(anchors[i])
    return segments


def _lung_tree(
    rng: np.random.Generator,
    grid: _Grid,
    anat: _Anatomy,
    lungs: np.ndarray,
    side: int,
    hilum: np.ndarray,
    radius: float,
    min_radius: float,
) -> list[_Segment]:
    """A primary tree spanning the lung, with a random branching tree at each of its ends."""
    inside = _inside(grid, lungs)
    primary = _primary_tree(hilum, _anchors(rng, grid, anat, lungs, side, 14), radius)
    segments = list(primary)
    for branch in primary:
        directions = _trunks(rng, side, 3)
        segments += _grow_tree(rng, branch.end, directions, 0.7 * branch.radius, min_radius, inside)
    return segments


def _vessels(
    rng: np.random.Generator, grid: _Grid, anat: _Anatomy, lungs: np.ndarray, preset: Preset
) -> list[_Segment]:
    """Pulmonary vessel trees of both lungs."""
    segments = []
    for side in (1, -1):
        radius = rng.uniform(4.5, 5.5)
        hilum = anat.hilum(side)
        segments += _lung_tree(rng, grid, anat, lungs, side, hilum, radius, preset.min_vessel_mm)
    return segments


def _airways(
    rng: np.random.Generator, grid: _Grid, anat: _Anatomy, lungs: np.ndarray, preset: Preset
) -> list[_Segment]:
    """Trachea, main bronchi and a bronchial tree in each lung."""
    y = anat.vertebra_y() + anat.vertebra_radius + 18.0
    carina = np.array([anat.centre[0], y, 0.5 * (anat.hilum(1)[2] + anat.hilum(-1)[2]) + 20.0])
    top = np.array([carina[0], y, grid.axis(2)[-1] + 20.0])
    segments = [_Segment(top, carina, rng.uniform(7.0, 9.0))]
    for side in (1, -1):
        hilum = anat.hilum(side) + np.array([0.0, 4.0, 6.0])
        segments.append(_Segment(carina, hilum, rng.uniform(5.0, 6.0)))
        radius = rng.uniform(3.0, 3.6)
        segments += _lung_tree(rng, grid, anat, lungs, side, hilum, radius, preset.min_airway_mm)
    return segments


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _lesion_centre(
    rng: np.random.Generator,
    grid: _Grid,
    anat: _Anatomy,
    lungs: np.ndarray,
    side: int,
    radius: float,
    dependent: bool = False,
) -> np.ndarray | None:
    """A subpleural point of one lung, favouring its lateral, posterior and lower parts
    (``dependent``: only its posterior half, and lower still).

    A ray from the lung's axis finds the pleura; the point lies a fraction of the
    lesion radius inside it.
    """
    cx, cy, a, b = anat.lung_ellipse(side)
    base, height = anat.lung_span(side)
    steps = np.arange(0.0, 1.5 * max(a, b), 0.5 * grid.spacing[0])
    for _ in range(50):
        angle = rng.uniform(-0.65, 0.0 if dependent else 0.65) * np.pi
        ray = np.array([side * np.cos(angle), np.sin(angle), 0.0])
        up = rng.beta(1.3, 3.0) if dependent else rng.beta(2.0, 2.5)
        origin = np.array([cx, cy, base + up * height])
        hits = np.flatnonzero(grid.contains(lungs, origin + steps[:, None] * ray))
        depth = rng.uniform(0.2, 0.7) * radius + 2.0
        if hits.size and steps[hits[-1]] > depth:
            centre = origin + (steps[hits[-1]] - depth) * ray
            if grid.contains(lungs, centre[None])[0]:
                return centre
    return None


def _draw_lesion(
    rng: np.random.Generator, centre: np.ndarray, radius: float, difficulty: Difficulty
) -> _Lesion:
    ggo = rng.uniform() < difficulty.ggo_fraction
    hu_range = difficulty.ggo_hu if ggo else difficulty.consolidation_hu
    return _Lesion(
        centre=centre,
        radii=radius * np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.5, 0.9)]),
        rotation=_random_rotation(rng),
        waves=rng.normal(0.0, 2.5, (5, 3)),
        phases=rng.uniform(0, 2 * np.pi, 5),
        hu=rng.uniform(*hu_range),
        hu_range=hu_range,
        kind=Tissue.GGO if ggo else Tissue.CONSOLIDATION,
    )


def _draw_lesions(
    rng: np.random.Generator, grid: _Grid, anat: _Anatomy, lungs: np.ndarray, difficulty: Difficulty
) -> list[_Lesion]:
    """Multifocal lesions, alternating between the lungs."""
    count = int(rng.integers(difficulty.lesions[0], difficulty.lesions[1], endpoint=True))
    first = rng.choice([1, -1])
    lesions = []
    for i in range(count):
        radius = rng.uniform(*difficulty.radius_mm)
        centre = _lesion_centre(rng, grid, anat, lungs, first * (-1) ** i, radius)
        if centre is not None:
            lesions.append(_draw_lesion(rng, centre, radius, difficulty))
    return lesions


def _foci(
    rng: np.random.Generator, grid: _Grid, anat: _Anatomy, lungs: np.ndarray, grade: str,
    volumes_ml: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel coordinates (n, 3) where a graded disease starts: subpleural, alternating
    between the lungs, in the dependent (posterior, basal) lung as often as the grade says;
    and each placed focus' volume (``volumes_ml``: one focus each, as deep under the pleura
    as its size; without it, the grade's count and sizes, volumes 0)."""
    g = GRADES[grade]
    first = rng.choice([1, -1])
    if volumes_ml is None:
        count = int(rng.integers(g.foci[0], g.foci[1], endpoint=True))
        volumes_ml = np.zeros(count)
        radii = [rng.uniform(*g.focus_mm) for _ in range(count)]
    else:
        radii = [(3.0 * v * 1000.0 / (4.0 * np.pi)) ** (1 / 3) for v in volumes_ml]
    foci, kept = [], []
    for i, (radius, volume) in enumerate(zip(radii, volumes_ml, strict=True)):
        dependent = bool(rng.uniform() < g.dependent)
        centre = _lesion_centre(rng, grid, anat, lungs, first * (-1) ** i, radius, dependent)
        if centre is not None:
            foci.append((centre - grid.origin) / np.array(grid.spacing))
            kept.append(volume)
    return np.array(foci, dtype=np.float64).reshape(-1, 3), np.array(kept, dtype=np.float64)


def _paint_disease(
    rng: np.random.Generator, grid: _Grid, anat: _Anatomy, grade: str,
    labels: np.ndarray, hu: np.ndarray, lungs: np.ndarray,
    stratum: tuple[int, int] | None = None,
) -> np.ndarray:
    """Lesions of a severity grade over lung parenchyma; return the uint8 lesion mask.

    CT-1 draws its foci's volumes (:func:`ct3d.data.severity.focus_volumes`, calibrated on
    MosMedData's CT-1 masks); the other grades cut a disease field at their share of lung."""
    volumes = focus_volumes(rng, grade, stratum)
    if volumes is not None:  # small lungs: a CT-1 volume stays under the grade's share
        most = GRADES[grade].target[1] * lungs.sum() * np.prod(grid.spacing) / 1000.0
        volumes = volumes * min(1.0, most / volumes.sum())
    foci, placed = _foci(rng, grid, anat, lungs, grade, volumes)
    if volumes is None:
        found = disease(rng, lungs, grid.spacing, foci, grade)
    else:
        found = focal_disease(rng, lungs, grid.spacing, foci, placed, grade)
    inside = np.flatnonzero(lungs)[found.lesion]
    mask = np.zeros(grid.shape, np.uint8)
    mask.flat[inside] = 1
    parenchyma = labels.flat[inside] == Tissue.LUNG
    where = inside[parenchyma]
    kind = np.where(found.consolidation[found.lesion][parenchyma], Tissue.CONSOLIDATION,
                    Tissue.GGO)
    labels.flat[where] = kind.astype(np.uint8)
    hu.flat[where] = found.hu[found.lesion][parenchyma]
    return mask


def _lesion_field(grid: _Grid, lesion: _Lesion) -> tuple[Box, np.ndarray] | None:
    """Box around a lesion and its shape field there: < 1 inside the lesion.

    The field is the ellipsoid's normalised radius perturbed by a few smooth waves.
    """
    reach = 1.4 * lesion.radii.max()
    box = grid.box(lesion.centre - reach, lesion.centre + reach)
    if box is None:
        return None
    offsets = [c - m for c, m in zip(grid.mesh(box), lesion.centre, strict=True)]
    local = [
        sum(lesion.rotation[j, i] * offsets[j] for j in range(3)) / lesion.radii[i]
        for i in range(3)
    ]
    field = np.sqrt(sum(c * c for c in local))
    for wave, phase in zip(lesion.waves, lesion.phases, strict=True):
        field += 0.06 * np.cos(wave[0] * local[0] + wave[1] * local[1] + wave[2] * local[2] + phase)
    return box, field


def _paint_lesions(
    grid: _Grid,
    lesions: list[_Lesion],
    labels: np.ndarray,
    hu: np.ndarray,
    lungs: np.ndarray,
) -> np.ndarray:
    """Write lesion labels and HU over lung parenchyma; return the uint8 lesion mask."""
    mask = np.zeros(grid.shape, np.uint8)
    for lesion in lesions:
        rendered = _lesion_field(grid, lesion)
        if rendered is None:
            continue
        box, field = rendered
        shape = (field < 1) & lungs[box]
        mask[box] |= shape
        paint = shape & (labels[box] == Tissue.LUNG)
        labels[box][paint] = lesion.kind
        values = np.clip(lesion.hu + 60.0 * (0.75 - field), *lesion.hu_range)
        hu[box][paint] = values[paint]
    return mask


def _dependent_gradient(grid: _Grid, anat: _Anatomy) -> np.ndarray:
    """2D HU offset of lung parenchyma: denser posteriorly (gravity-dependent)."""
    _, y = grid.plane()
    cx, cy, a, b = anat.cavity
    return np.clip(-20.0 * (y - cy) / b, -20, 20).astype(np.float32)


def _organs(grid: _Grid, anat: _Anatomy) -> np.ndarray:
    """3D liver (right) and spleen (left): the cavity under each dome, down to 6 cm below."""
    x, y = grid.plane()
    cx, cy, a, b = anat.cavity
    cavity = (_ellipse(x, y, cx, cy, a, b) < 1)[:, :, None]
    z = grid.axis(2)[None, None, :]
    found = np.zeros(grid.shape, bool)
    for side in (1, -1):
        base, _ = anat.lung_span(side)
        half = (side * (x - cx) > 0)[:, :, None]
        found |= half & (z < anat.dome_z(side, x, y)[:, :, None]) & (z > base - 60.0)
    return found & cavity


def _label_map(
    grid: _Grid,
    anat: _Anatomy,
    lungs: np.ndarray,
    bone: tuple[np.ndarray, np.ndarray],
    vessels: np.ndarray,
    airway: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Tissue labels, painted from the outside in; later layers win."""
    body, inner = _body(grid, anat)
    lumen, wall = airway
    labels = np.zeros(grid.shape, np.uint8)
    np.copyto(labels, np.uint8(Tissue.TABLE), where=_table(grid, anat)[:, :, None])
    np.copyto(labels, np.uint8(Tissue.FAT), where=body[:, :, None])
    np.copyto(labels, np.uint8(Tissue.SOFT), where=inner[:, :, None])
    np.copyto(labels, np.uint8(Tissue.ORGAN), where=_organs(grid, anat))
    np.copyto(labels, np.uint8(Tissue.LUNG), where=lungs)
    np.copyto(labels, np.uint8(Tissue.VESSEL), where=vessels & lungs)
    np.copyto(labels, np.uint8(Tissue.AIRWAY_WALL), where=wall & lungs)
    np.copyto(labels, np.uint8(Tissue.AIRWAY), where=lumen & inner[:, :, None])
    np.copyto(labels, np.uint8(Tissue.CORTICAL), where=bone[0])
    np.copyto(labels, np.uint8(Tissue.TRABECULAR), where=bone[1])
    return labels


@dataclass(frozen=True)
class _Kernel:
    """A scan's reconstruction: in-plane blur, edge enhancement, noise."""

    blur_mm: float = 0.5
    sharpen: float = 0.0
    noise_hu: float = 20.0


def _finish(rng: np.random.Generator, grid: _Grid, kernel: _Kernel, hu: np.ndarray
            ) -> np.ndarray:
    """In-plane smoothing (and edge enhancement), scanner noise, rounding to whole HU."""
    sigma = max(kernel.blur_mm / grid.spacing[0], 0.4)
    out = ndimage.gaussian_filter(hu, (sigma, sigma, 0), truncate=3.0)
    if kernel.sharpen > 0:
        out += kernel.sharpen * (out - ndimage.gaussian_filter(out, (2 * sigma, 2 * sigma, 0)))
    out += kernel.noise_hu * rng.standard_normal(grid.shape, dtype=np.float32)
    np.rint(out, out=out)
    return np.clip(out, *_HU_RANGE, out=out)


def _varied(
    rng: np.random.Generator, preset: Preset, anat: _Anatomy, scanner: Scanner
) -> tuple[_Grid, _Anatomy, _Kernel]:
    """A scan's grid, anatomy (resized, breath held deeper or not) and kernel, drawn from
    ``scanner``'s ranges; the slices cover what the preset's slices cover."""
    thickness, chance = np.array(scanner.slice_mm).T
    slice_mm = float(rng.choice(thickness, p=chance / chance.sum()))
    coverage = rng.uniform(*preset.depth) * preset.slice_mm
    scale, breath = rng.uniform(*scanner.body_scale), rng.uniform(*scanner.inspiration)
    lut = anat.lut.copy()
    lut[Tissue.LUNG] -= 250.0 * (breath - 1.0)
    anat = replace(anat, body=(anat.body[0] * scale, anat.body[1] * scale),
                   fat=anat.fat * scale, wall=anat.wall * scale,
                   lung_height=anat.lung_height * breath, rib_pitch=anat.rib_pitch * breath,
                   lut=lut)
    pixel = 2 * (anat.body[0] + abs(anat.centre[0])) * rng.uniform(*scanner.fov_pad) / preset.size
    grid = _Grid((preset.size, preset.size, max(8, round(coverage / slice_mm))),
                 (pixel, pixel, slice_mm))
    kernel = _Kernel(rng.uniform(*scanner.blur_mm), rng.uniform(*scanner.sharpen),
                     rng.uniform(*scanner.noise_hu))
    return grid, anat, kernel


def render_phantom(
    seed: Seed, abnormal: bool, preset: str = "quick", difficulty: str = "moderate",
    grade: str | None = None, scanner: str = "uniform", stratum: tuple[int, int] | None = None,
) -> Phantom:
    """Render one phantom with its ground truth (tissue labels, lungs, lesion mask).

    Anatomy, lesions, noise and scanner come from separate streams of ``seed``, so the
    normal and abnormal scans of one seed differ only by the lesions.

    Args:
        seed: an int, or ints such as ``(cohort_seed, index)``.
        abnormal: add lesions.
        preset: geometry, a key of ``PRESETS``.
        difficulty: lesion settings (a key of ``DIFFICULTIES``) when ``grade`` is None.
        grade: MosMedData severity grade of the lesions, ``CT-1`` to ``CT-4`` (a key of
            :data:`ct3d.data.severity.GRADES`): the lesions cover a share of the lungs drawn
            from the grade's range, and look as the grade says.
        scanner: ``uniform`` (the preset's fixed geometry) or ``varied`` (``SCANNERS``).
        stratum: ``(j, n)``: for a grade drawn by lesion volume (CT-1), draw it from the
            j-th of n equal strata of the grade's distribution (a cohort's n scans of the
            grade cover it evenly; :func:`generate_cohort` does this).

    Example:
        >>> p = render_phantom(3, abnormal=True)
        >>> bool(((p.mask == 1) <= p.lungs).all())
        True
        >>> p = render_phantom(3, abnormal=True, grade="CT-2", scanner="varied")
        >>> p.grade, 0.25 < p.involvement <= 0.5
        ('CT-2', True)
    """
    geometry = _lookup(PRESETS, preset, "preset")
    setting = _lookup(DIFFICULTIES, difficulty, "difficulty")
    variety = _lookup(SCANNERS, scanner, "scanner")
    if grade is not None:
        _lookup(GRADES, grade, "severity grade")
    anatomy_rng, lesion_rng, noise_rng, scanner_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    if variety is None:
        grid = _draw_grid(anatomy_rng, geometry)
        anat = _draw_anatomy(anatomy_rng)
        kernel = _Kernel(noise_hu=anat.noise_hu)
    else:
        grid, anat, kernel = _varied(scanner_rng, geometry, _draw_anatomy(anatomy_rng), variety)
    cortical, trabecular = _spine(grid, anat)
    cortical |= _ribs(grid, anat) | _sternum(grid, anat)
    bone = cortical | trabecular
    lungs = _lungs(grid, anat, _heart(grid, anat) | bone)
    vessels = _render_tubes(grid, _vessels(anatomy_rng, grid, anat, lungs, geometry))
    airway_tree = _airways(anatomy_rng, grid, anat, lungs, geometry)
    airway = _render_tubes(grid, airway_tree), _render_tubes(grid, airway_tree, 1.2, 0.5)
    labels = _label_map(grid, anat, lungs, (cortical, trabecular), vessels, airway)
    hu = anat.lut[labels]
    hu += np.where(labels == Tissue.LUNG, _dependent_gradient(grid, anat)[:, :, None], 0)
    if abnormal and grade is not None:
        mask = _paint_disease(lesion_rng, grid, anat, grade, labels, hu, lungs, stratum)
    else:
        lesions = _draw_lesions(lesion_rng, grid, anat, lungs, setting) if abnormal else []
        mask = _paint_lesions(grid, lesions, labels, hu, lungs)
    kind = "abnormal" if abnormal else "normal"
    lesion_kind = difficulty if grade is None else grade
    source = f"synthetic:{preset}:{lesion_kind}:{scanner}:{kind}:seed={seed}"
    volume = Volume(_finish(noise_rng, grid, kernel, hu), grid.spacing, grid.affine, source)
    shown = "" if grade is None else grade if abnormal else "CT-0"
    return Phantom(volume, mask, labels, lungs, shown)


def generate_scan(
    seed: Seed, abnormal: bool, preset: str = "quick", difficulty: str = "moderate",
    grade: str | None = None, scanner: str = "uniform",
) -> tuple[Volume, np.ndarray]:
    """Generate one synthetic chest CT and its lesion mask.

    Args:
        seed: an int, or ints such as ``(cohort_seed, index)``; equal seeds give equal scans.
        abnormal: add COVID-like lesions (the mask is all zeros otherwise).
        preset: geometry, a key of ``PRESETS`` (``"quick"`` or ``"mosmed"``).
        difficulty: lesion settings, a key of ``DIFFICULTIES`` (when ``grade`` is None).
        grade: MosMedData severity grade of the lesions, ``CT-1`` to ``CT-4``.
        scanner: ``uniform`` or ``varied`` (a key of ``SCANNERS``).

    Returns:
        The scan (float32 HU with integer values, RAS+ affine) and a uint8 mask of the
        same shape, 1 inside lesions.

    Example:
        >>> volume, mask = generate_scan(0, abnormal=False)
        >>> volume.spacing[2], int(mask.sum())
        (10.0, 0)
    """
    phantom = render_phantom(seed, abnormal, preset, difficulty, grade, scanner)
    return phantom.volume, phantom.mask


MANIFEST = "manifest.csv"
"""The cohort's table of scans, written beside the class folders (usable as a manifest
data source: its ``path`` and ``label`` columns are what ``data.source: manifest`` reads)."""
_COLUMNS = ("path", "label", "grade", "involvement", "slice_mm", "pixel_mm", "slices",
            *LESION_STATS)


@dataclass(frozen=True)
class _Study:
    path: Path
    seed: tuple[int, int]
    abnormal: bool
    preset: str
    difficulty: str
    grade: str | None
    scanner: str
    stratum: tuple[int, int] | None = None


def _write_study(study: _Study) -> dict[str, str]:
    """Generate one scan; write its mask, then the scan (so a scan always has its mask).
    Returns its manifest row (the path relative to the cohort folder)."""
    phantom = render_phantom(study.seed, study.abnormal, study.preset, study.difficulty,
                             study.grade, study.scanner, study.stratum)
    volume = phantom.volume
    mask_path = study.path.with_name(study.path.name.replace(".nii.gz", "_mask.nii.gz"))
    write_volume(volume.replace(array=phantom.mask), mask_path, dtype=np.uint8)
    write_volume(volume, study.path, dtype=np.int16)
    grade = phantom.grade or ("CT-0" if not study.abnormal else "")
    return {"path": f"{study.path.parent.name}/{study.path.name}",
            "label": study.path.parent.name, "grade": grade,
            "involvement": f"{phantom.involvement:.6f}",
            "slice_mm": f"{volume.spacing[2]:g}", "pixel_mm": f"{volume.spacing[0]:.4f}",
            "slices": str(volume.shape[2]),
            **{k: str(v) for k, v in lesion_stats(phantom.mask, volume.spacing).items()}}


def _grades(seed: int, severity: str | None, normal: int, abnormal: int
            ) -> list[tuple[str, str | None]]:
    """(folder, grade) of every scan: CT-0 first, then each abnormal folder in grade order.
    ``CT-23`` draws CT-2 or CT-3 per scan in MosMedData's proportions."""
    if severity is None:
        return [("CT-0", None)] * normal + [("CT-23", None)] * abnormal
    if severity == "CT-23":
        draw = np.random.default_rng([seed, 23]).uniform(size=abnormal)
        return [("CT-0", "CT-0")] * normal + [
            ("CT-23", "CT-2" if u < CT23_SHARE_CT2 else "CT-3") for u in draw]
    return [("CT-0", "CT-0")] * normal + [
        (g, g) for g in cohort_grades(severity) for _ in range(abnormal)]


def _plan(
    out: Path, normal: int, abnormal: int, seed: int, preset: str, difficulty: str,
    severity: str | None = None, scanner: str = "uniform",
) -> list[_Study]:
    grades = _grades(seed, severity, normal, abnormal)
    strata = _strata(seed, [grade for _, grade in grades])
    studies = []
    for i, (folder, grade) in enumerate(grades):
        path = out / folder / f"study_{i + 1:04d}.nii.gz"
        sick = folder != "CT-0"
        studies.append(_Study(path, (seed, i), sick, preset, difficulty,
                              grade if sick else None, scanner, strata[i]))
    return studies


def _strata(seed: int, grades: list[str | None]) -> list[tuple[int, int] | None]:
    """Per scan, its stratum of its grade's lesion volume (grades drawn by volume only):
    the grade's scans take strata 0..n-1 in a shuffled order the cohort seed fixes."""
    strata: list[tuple[int, int] | None] = [None] * len(grades)
    for name in sorted({g for g in grades if g is not None and GRADES.get(g)}):
        if not GRADES[name].volume_ml:
            continue
        scans = [i for i, g in enumerate(grades) if g == name]
        order = np.random.default_rng([seed, 26, int(name[-1])]).permutation(len(scans))
        for i, j in zip(scans, order, strict=True):
            strata[i] = (int(j), len(scans))
    return strata


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, _COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def generate_cohort(
    out: str | os.PathLike,
    normal: int,
    abnormal: int,
    seed: int = 0,
    preset: str = "mosmed",
    difficulty: str = "moderate",
    workers: int = 1,
    progress: bool = True,
    severity: str | None = None,
    scanner: str = "uniform",
) -> list[Path]:
    """Write a MosMedData-like cohort of synthetic scans with lesion masks.

    Normal scans go to ``OUT/CT-0/study_0001.nii.gz`` onwards, abnormal ones to
    ``OUT/CT-23/`` with numbering continuing after the normal ones; each scan's mask is
    written beside it as ``study_XXXX_mask.nii.gz``. Scan ``i`` (0-based, in that
    order) is ``generate_scan((seed, i), ...)``, so files are identical for any
    ``workers``. ``OUT/manifest.csv`` lists every scan with its grade, its measured
    involvement (lesion share of the lung volume) and its geometry.

    With a ``severity``, abnormal scans are graded as MosMedData grades them: ``CT-1`` …
    ``CT-4`` write ``CT-0/`` and that grade's folder; ``CT-23`` writes ``CT-0/`` and
    ``CT-23/`` (each scan CT-2 or CT-3, in MosMedData's proportions 125:45); ``all`` writes
    ``CT-0/`` to ``CT-4/`` with ``abnormal`` scans in each abnormal grade.

    Args:
        out: output folder (created if missing).
        normal: number of normal scans.
        abnormal: number of scans with lesions.
        seed: cohort seed.
        preset: geometry, a key of ``PRESETS``.
        difficulty: lesion settings, a key of ``DIFFICULTIES`` (without ``severity``).
        workers: processes; more than 1 uses a process pool.
        progress: show a tqdm progress bar.
        severity: MosMedData grade(s) of the abnormal scans (see above), or None.
        scanner: ``uniform`` or ``varied`` scanners (a key of ``SCANNERS``).

    Returns:
        The scan paths (not the masks), normal ones first.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as out:
        ...     paths = generate_cohort(out, normal=1, abnormal=1, preset="quick", progress=False)
        ...     [p.relative_to(out).as_posix() for p in paths]
        ['CT-0/study_0001.nii.gz', 'CT-23/study_0002.nii.gz']
    """
    _check_count("normal", normal)
    _check_count("abnormal", abnormal)
    _lookup(PRESETS, preset, "preset")
    _lookup(DIFFICULTIES, difficulty, "difficulty")
    _lookup(SCANNERS, scanner, "scanner")
    if severity is not None:
        cohort_grades(severity)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    studies = _plan(Path(out), normal, abnormal, seed, preset, difficulty, severity, scanner)
    for folder in {study.path.parent for study in studies}:
        folder.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(studies), disable=not progress, desc="synth", unit="scan")
    with bar:
        if workers == 1:
            rows = [_tick(bar, _write_study(study)) for study in studies]
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                rows = [_tick(bar, row) for row in pool.map(_write_study, studies)]
    if studies:
        _write_manifest(Path(out) / MANIFEST, rows)
    return [study.path for study in studies]


def _tick(bar: tqdm, row: dict[str, str]) -> dict[str, str]:
    bar.update()
    return row
