"""lung_mask and lung_crop on chest phantoms built to break them.

Each phantom is a chest CT drawn from analytic shapes at a real voxel size (0.7-1 mm
pixels, 1.25-5 mm slices; the matrix is 256 x 256, so the chest is a small adult's): body
with fat, muscle and ribs, spine, heart, trachea and main bronchi, oesophagus, two
tapering lungs with domed bases (the right one higher), vessels, a gravity-dependent
density gradient, a patient table, a gas bubble in the stomach under the left dome, a
slight blur, noise and, optionally, FOV padding. The lungs are divided into lobes (right:
upper, middle, lower; left: upper, lower) by the oblique and horizontal fissures; where
slices are at most 2.5 mm thick the fissures show, one voxel thick, sharp and complete,
so that the air of each lobe is a component of its own, as on thin-slice scans. Each case
then adds one difficulty that real scans have.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from helpers import build_step
from scipy import ndimage

from ct3d.preprocess.lung import UNEQUAL_LUNG_RATIO, lung_mask
from ct3d.volume import Volume

BODY = (115.0, 82.0)
"""Semi-axes (x, y) of the body's cross-section (mm)."""
BODY_Y = 6.0
"""The body's centre lies this far anterior of the scan's centre (mm), above the table."""
HEIGHT = 180.0
"""Apex-to-base height of the left lung (mm); the right base lies RIGHT_LIFT higher."""
RIGHT_LIFT = 12.0
DOME = 25.0
"""Height of the diaphragm's dome above the costophrenic recesses (mm)."""
BELOW, ABOVE = 45.0, 15.0
"""The scan reaches this far below the left base and above the apices (mm)."""
LOBES = {"right upper": 1, "right middle": 2, "right lower": 3, "left upper": 4,
         "left lower": 5}


@dataclass(frozen=True)
class Chest:
    """One phantom's scan geometry and findings (lengths in mm; x right, y anterior)."""

    name: str
    pixel_mm: float = 0.98
    slice_mm: float = 2.5
    wall_mm: float = 16.0
    shift_mm: float = 0.0
    roll_deg: float = 0.0
    tilt_deg: float = 0.0
    bridge: bool = False
    emphysema: bool = False
    consolidated: str = ""
    left_size: float = 1.0
    padding: float | None = -2048.0


@dataclass(frozen=True, eq=False)
class Scan:
    """A rendered phantom: the scan and its truth masks.

    Attributes:
        volume: HU, RAS+ ``(W, H, D)``.
        lungs: both lungs, with the vessels, fissures and lesions inside them.
        aerated: ``lungs`` less a consolidated lobe: what holds air.
        stomach: the gas in the stomach.
        airways: trachea and main bronchi (lumen and wall) outside the lungs.
        air_ml: (right, left) volume of the lungs' air (below -400 HU).
    """

    volume: Volume
    lungs: np.ndarray
    aerated: np.ndarray
    stomach: np.ndarray
    airways: np.ndarray
    air_ml: tuple[float, float]


def _frame(chest: Chest) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World x, y (in-plane, centred) and z, and the affine."""
    xy = ((np.arange(256) - 127.5) * chest.pixel_mm).astype(np.float32)
    z = np.arange(-BELOW, HEIGHT + ABOVE, chest.slice_mm, dtype=np.float32)
    affine = np.diag([chest.pixel_mm, chest.pixel_mm, chest.slice_mm, 1.0])
    affine[:3, 3] = xy[0], xy[0], z[0]
    return xy, xy, z, affine


def _body_axes(chest: Chest, x: np.ndarray, y: np.ndarray,
               z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The patient's own in-plane axes (u to the right, v anterior), rolled and tilted.

    Shaped (W, H, 1) when the patient is not tilted, (W, H, D) when it is.
    """
    roll, lean = np.radians(chest.roll_deg), np.tan(np.radians(chest.tilt_deg))
    dx = x[:, None, None] - chest.shift_mm - lean * (z[None, None, :] - HEIGHT / 2)
    if lean == 0:
        dx = dx[:, :, :1]
    dy = y[None, :, None] - BODY_Y
    return (np.cos(roll) * dx + np.sin(roll) * dy).astype(np.float32), \
        (np.cos(roll) * dy - np.sin(roll) * dx).astype(np.float32)


def _tube(u: np.ndarray, v: np.ndarray, z: np.ndarray, a: tuple[float, float, float],
          b: tuple[float, float, float], radii: tuple[float, float],
          window: tuple[slice, slice]) -> np.ndarray:
    """Voxels within each of ``radii`` of the segment a-b (patient axes): shape (2, W, H, D).

    Only the in-plane ``window`` is looked at.
    """
    found = np.zeros((2, u.shape[0], u.shape[1], z.size), bool)
    span = np.flatnonzero((z >= min(a[2], b[2]) - radii[1]) & (z <= max(a[2], b[2]) + radii[1]))
    if span.size == 0:
        return found
    box = (*window, slice(span[0], span[-1] + 1))
    near = box if u.shape[2] > 1 else window
    d = np.subtract(b, a)
    pu, pv, pz = u[near] - a[0], v[near] - a[1], (z[box[2]] - a[2])[None, None, :]
    t = np.clip((pu * d[0] + pv * d[1] + pz * d[2]) / (d @ d), 0.0, 1.0)
    squared = (pu - t * d[0]) ** 2 + (pv - t * d[1]) ** 2 + (pz - t * d[2]) ** 2
    for i, radius in enumerate(radii):
        found[(i, *box)] = squared < radius**2
    return found


def _lung_ellipse(chest: Chest, side: int) -> tuple[float, float, float, float]:
    """Widest cross-section (centre u, v; semi-axes) of the right (+1) or left (-1) lung.

    Its medial edge lies 15% of the chest's half-width from the midline, however small.
    """
    a, b = BODY[0] - chest.wall_mm, BODY[1] - chest.wall_mm
    size = 1.0 if side > 0 else chest.left_size
    la, lb = 0.42 * a * size, 0.86 * b * size
    return side * (0.15 * a + la), -0.02 * b, la, lb


def _lobes(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """uint8 lobe of each lung voxel (``LOBES``), 0 elsewhere."""
    a, b = BODY[0] - chest.wall_mm, BODY[1] - chest.wall_mm
    inside = (u / (0.97 * a)) ** 2 + (v / (0.97 * b)) ** 2 < 1
    heart = (((u + 0.12 * a) / (0.36 * a)) ** 2 + ((v - 0.22 * b) / (0.5 * b)) ** 2
             + ((z - 0.3 * HEIGHT) / (0.3 * HEIGHT))[None, None, :] ** 2 < 1)
    lobes = np.zeros((u.shape[0], u.shape[1], z.size), np.uint8)
    for side in (1, -1):
        cu, cv, la, lb = _lung_ellipse(chest, side)
        base = RIGHT_LIFT if side > 0 else 0.0
        height = HEIGHT - base
        taper = np.clip((HEIGHT - z) / (0.6 * height), 0, 1)[None, None, :]
        q = ((u - cu) / la) ** 2 + ((v - cv) / lb) ** 2
        lung = (q < taper) & (z > base + DOME * np.clip(1 - q, 0, 1)) & inside & ~heart
        oblique = base + 0.65 * height * (1 - (v - cv + lb) / (2 * lb))
        lower = z[None, None, :] < oblique
        horizontal = base + 0.5 * height - 0.25 * (v - cv)
        upper = ~lower & ((z[None, None, :] > horizontal) if side > 0 else True)
        names = ("right upper", "right lower", "right middle") if side > 0 else \
            ("left upper", "left lower", "left upper")
        labels = [LOBES[n] for n in names]
        lobes[lung] = np.select([upper, lower], labels[:2], labels[2])[lung]
    return lobes


def _fissures(lobes: np.ndarray) -> np.ndarray:
    """One voxel thick boundaries between lobes of the same lung (face-connected, closed)."""
    marked = np.zeros(lobes.shape, bool)
    for axis in range(3):
        a = np.moveaxis(lobes, axis, 0)
        m = np.moveaxis(marked, axis, 0)
        lo, hi = a[:-1], a[1:]
        edge = (lo > 0) & (hi > 0) & (lo != hi) & ((lo <= 3) == (hi <= 3))
        m[:-1] |= edge & (lo > hi)
        m[1:] |= edge & (hi > lo)
    return marked


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_mm: float,
                  spacing: tuple[float, float, float]) -> np.ndarray:
    """Gaussian random field with unit variance, correlated over ``sigma_mm``."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32),
                                    [sigma_mm / s for s in spacing], truncate=2.5)
    return field / field.std()


def _emphysema(chest: Chest, rng: np.random.Generator, u: np.ndarray, v: np.ndarray,
               z: np.ndarray, lobes: np.ndarray, hu: np.ndarray) -> None:
    """Low attenuation, holes in the upper lobes and a walled bulla in the right apex."""
    lungs = lobes > 0
    spacing = (chest.pixel_mm, chest.pixel_mm, chest.slice_mm)
    hu[lungs] -= 70
    holes = (_smooth_field(rng, hu.shape, 2.5, spacing) > 1.0) & np.isin(lobes, (1, 4))
    hu[holes] = -995
    a, b = BODY[0] - chest.wall_mm, BODY[1] - chest.wall_mm
    sphere = (u - 0.55 * a) ** 2 + (v + 0.05 * b) ** 2 + (z - 0.7 * HEIGHT)[None, None, :] ** 2
    bulla = (sphere < 18.0**2) & lungs
    hu[bulla] = -1000
    hu[bulla & ~ndimage.binary_erosion(bulla)] = 0


def _airways(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray,
             window: tuple[slice, slice]) -> np.ndarray:
    """Trachea, main bronchi and oesophagus: (lumen, wall) masks, shape (2, W, H, D)."""
    a = BODY[0] - chest.wall_mm
    carina, top = (0.0, 0.0, 0.62 * HEIGHT), (0.0, 0.0, HEIGHT + 2 * ABOVE)
    found = _tube(u, v, z, carina, top, (8.0, 10.0), window)
    for side in (1, -1):
        hilum = (side * 0.42 * a, -3.0, 0.55 * HEIGHT)
        found |= _tube(u, v, z, carina, hilum, (5.0, 6.5), window)
    gullet = (6.0, -30.0, -10.0), (6.0, -30.0, HEIGHT + 2 * ABOVE)
    return found | _tube(u, v, z, *gullet, (3.0, 5.0), window)


def _table(chest: Chest, x: np.ndarray, y: np.ndarray, body: np.ndarray) -> np.ndarray:
    """2D mask of the table: a flat plate under the body and a curved lower plate."""
    top = y[np.flatnonzero(body.any(axis=(0, 2)))[0]] - 0.5
    xs, ys = x[:, None], y[None, :]
    plate = (ys < top) & (ys > top - 5) & (np.abs(xs) < 110)
    curve = top - 24 + 6e-4 * xs**2
    return plate | ((ys < curve + 4) & (ys > curve) & (np.abs(xs) < 100))


def _ribs(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Ribs in the chest wall, sloping down from the spine to the front every 25 mm."""
    a, b = BODY[0] - chest.wall_mm, BODY[1] - chest.wall_mm
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    front = np.clip((v + b) / (2 * b), 0, 1)
    phase = np.mod(z[None, None, :] + 60 * front, 25.0)
    return (rho > 1.01) & (rho < 1.01 + 6 / b) & (np.abs(phase - 12.5) < 5) & (np.abs(u) > 20)


def _volume_ml(mask: np.ndarray, chest: Chest) -> float:
    return float(mask.sum() * chest.pixel_mm**2 * chest.slice_mm / 1000)


@functools.lru_cache(maxsize=3)
def render(chest: Chest) -> Scan:
    """The phantom ``chest`` (cached: tests share it, and must not modify it)."""
    rng = np.random.default_rng(sum(map(ord, chest.name)))
    x, y, z, affine = _frame(chest)
    spacing = (chest.pixel_mm, chest.pixel_mm, chest.slice_mm)
    u, v = _body_axes(chest, x, y, z)
    a, b = BODY
    fat = min(8.0, chest.wall_mm / 2)
    shape = (x.size, y.size, z.size)
    near = np.flatnonzero(np.abs(x) < 100)
    window = (slice(near[0], near[-1] + 1),) * 2
    body = (u / a) ** 2 + (v / b) ** 2 < 1
    hu = np.full(shape, -1000, np.float32)
    np.copyto(hu, -100, where=body)
    np.copyto(hu, 40, where=(u / (a - fat)) ** 2 + (v / (b - fat)) ** 2 < 1)
    lobes = _lobes(chest, u, v, z)
    lungs = lobes > 0
    if chest.bridge:
        across = 0.45 * (a - chest.wall_mm)
        ends = (-across, 20.0, 0.72 * HEIGHT), (across, 20.0, 0.72 * HEIGHT)
        lungs |= _tube(u, v, z, *ends, (3.0, 3.0), window)[0]
    spine = (u / 16) ** 2 + ((v + b - chest.wall_mm - 14) / 14) ** 2 < 1
    lungs &= ~spine
    np.copyto(hu, 400, where=(spine | _ribs(chest, u, v, z)) & body)
    depth = np.clip((-v - 0.3 * b) / (0.7 * b), 0, 1)
    np.copyto(hu, -860 + 90 * depth**2, where=lungs)
    hu[lungs & (_smooth_field(rng, shape, 1.2, spacing) > 1.8)] = 40
    if chest.emphysema:
        _emphysema(chest, rng, u, v, z, lobes, hu)
    lumen, wall = _airways(chest, u, v, z, window)
    hu[wall & ~lumen] = 40
    hu[lumen] = -1000
    cu, cv, la, _ = _lung_ellipse(chest, -1)
    stomach = ((((u - cu) / (0.7 * la)) ** 2 + ((v - cv) / (0.7 * la)) ** 2
                + ((z - DOME + 30) / 16)[None, None, :] ** 2) < 1) & body
    hu[stomach] = -1000
    consolidated = lobes == LOBES.get(chest.consolidated, -1)
    hu[consolidated] = 30
    np.copyto(hu, 150, where=_table(chest, x, y, body)[:, :, None] & ~body)
    hu = ndimage.gaussian_filter(hu, (0.4, 0.4, 0), truncate=2.0)
    if chest.slice_mm <= 2.5:
        hu[_fissures(lobes) & ~consolidated] = -100
    hu += 25 * rng.standard_normal(hu.shape, dtype=np.float32)
    if chest.padding is not None:
        outside = np.hypot(x[:, None], y[None, :]) > 128 * chest.pixel_mm
        hu[outside] = chest.padding
    source = f"phantom/{chest.name}"
    air = lungs & (hu < -400)
    right = u > 0
    scan = Scan(Volume(hu, spacing, affine, source), lungs, lungs & ~consolidated,
                stomach, (lumen | wall) & ~lungs,
                (_volume_ml(air & right, chest), _volume_ml(air & ~right, chest)))
    for mask in (scan.volume.array, scan.lungs, scan.aerated, scan.stomach, scan.airways):
        mask.flags.writeable = False
    return scan


def dice(found: np.ndarray, scan: Scan) -> float:
    """Dice of ``found`` and the aerated lungs, the airways outside the lungs left out."""
    found = found & ~scan.airways
    return float(2 * (found & scan.aerated).sum() / (found.sum() + scan.aerated.sum()))


def kept_share(before: Volume, after: Volume, truth: np.ndarray) -> float:
    """Share of ``truth`` voxels of ``before`` inside the crop ``after``."""
    start = np.rint(np.linalg.inv(before.affine) @ after.affine[:, 3])[:3].astype(int)
    box = tuple(slice(s, s + n) for s, n in zip(start, after.shape, strict=True))
    return float(truth[box].sum() / truth.sum())


CHESTS = {
    "lobes": Chest("lobes", slice_mm=1.25),
    "thick": Chest("thick", slice_mm=5.0),
    "bridge": Chest("bridge", bridge=True),
    "fov": Chest("fov", pixel_mm=0.7, shift_mm=14.0, padding=None),
    "tilt": Chest("tilt", pixel_mm=0.95, roll_deg=20.0, tilt_deg=8.0, padding=-3024.0),
    "emphysema": Chest("emphysema", wall_mm=7.0, emphysema=True),
    "consolidation": Chest("consolidation", consolidated="right lower"),
    "unequal": Chest("unequal", left_size=0.5, slice_mm=5.0),
}
"""The phantoms: thin-slice lobes (1.25 mm slices), thick slices (no fissure shows), a thin
bridge of lung between the upper lobes across the anterior midline, a small display field
of view (0.7 mm pixels) that cuts the right lung and both chest walls, a patient rolled by
20 degrees and lying 8 degrees oblique, emphysema in a thin patient (the chest wall beside
the lungs about 1 cm thick, less than the body's opening keeps; a walled bulla), a
consolidated right lower lobe, and a small left lung."""


def crop_and_mask(scan: Scan) -> tuple[Volume, np.ndarray, list[warnings.WarningMessage]]:
    """lung_crop's output, lung_mask's mask and the warnings the crop gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = build_step("preprocess", "lung_crop")(scan.volume)
    return out, lung_mask(scan.volume), caught


@pytest.mark.parametrize("name", sorted(set(CHESTS) - {"unequal"}))
def test_the_mask_holds_every_lobe_and_the_box_every_lung_voxel(name: str) -> None:
    scan = render(CHESTS[name])
    out, found, caught = crop_and_mask(scan)
    assert dice(found, scan) >= 0.97
    assert kept_share(scan.volume, out, scan.lungs) >= 0.99
    assert not (found & scan.stomach).any()
    assert not caught, [str(w.message) for w in caught]


def test_a_much_smaller_lung_is_kept_and_warned_about() -> None:
    scan = render(CHESTS["unequal"])
    right, left = scan.air_ml
    assert left < UNEQUAL_LUNG_RATIO * right
    out, found, caught = crop_and_mask(scan)
    assert dice(found, scan) >= 0.97
    assert kept_share(scan.volume, out, scan.lungs) >= 0.99
    assert [w.category for w in caught] == [UserWarning]
    message = str(caught[0].message)
    assert "phantom/unequal" in message
    got = re.search(r"right ([\d.]+) ml, left ([\d.]+) ml", message)
    assert got, message
    assert float(got[1]) == pytest.approx(right, rel=0.15)
    assert float(got[2]) == pytest.approx(left, rel=0.15)


def test_the_phantoms_are_what_they_claim() -> None:
    """Thin slices split the air into the five lobes, the stomach lies under the left dome,
    the small field of view cuts the right lung only, and the lungs hold about equal air."""
    scan = render(CHESTS["lobes"])
    labels, _ = ndimage.label((scan.volume.array < -400) & scan.lungs)
    sizes_ml = np.bincount(labels.ravel())[1:] * np.prod(scan.volume.spacing) / 1000
    assert (sizes_ml > 50).sum() == 5
    box = ndimage.find_objects(scan.stomach.astype(np.uint8))[0]
    near = tuple(slice(max(s.start - 20, 0), s.stop + 20) for s in box)
    distance = ndimage.distance_transform_edt(~scan.stomach[near], sampling=scan.volume.spacing)
    assert 6.0 < distance[scan.lungs[near]].min() < 12.0  # diaphragm and stomach wall
    fov = render(CHESTS["fov"])
    assert fov.lungs[-1].any() and not fov.lungs[0].any()
    right, left = render(CHESTS["thick"]).air_ml
    assert 0.7 < left / right < 1.0


def test_lung_only_keeps_the_lungs_and_their_lesions_and_blanks_the_rest() -> None:
    from ct3d.data.synthetic import Tissue, render_phantom

    phantom = render_phantom((2, 5), True, grade="CT-1")
    hu = phantom.volume.array
    tight = build_step("preprocess", "lung_only", margin_mm=0.0)(phantom.volume).array
    grown = build_step("preprocess", "lung_only")(phantom.volume).array
    inside = lung_mask(phantom.volume)
    np.testing.assert_array_equal(tight[inside], hu[inside])
    assert (tight[~inside] == -1000.0).all()
    lesion = phantom.mask.astype(bool)
    assert 0.8 < (tight[lesion] == hu[lesion]).mean() < 0.95  # dense parts on the pleura
    assert (grown[lesion] == hu[lesion]).mean() > 0.98  # the 10 mm margin keeps them
    assert (grown != -1000.0).sum() > (tight != -1000.0).sum()
    bone = phantom.labels == Tissue.CORTICAL
    assert (tight[bone] == -1000.0).mean() > 0.99 and (grown[bone] == -1000.0).mean() > 0.8


def test_lung_only_leaves_a_scan_without_lungs_and_refuses_bad_margins() -> None:
    solid = Volume(np.full((24, 24, 8), 40.0, np.float32), (1.0, 1.0, 2.0), np.eye(4), "solid")
    with pytest.warns(UserWarning, match="lung_only: no lungs found in solid"):
        kept = build_step("preprocess", "lung_only")(solid)
    np.testing.assert_array_equal(kept.array, solid.array)
    with pytest.raises(ValueError, match="lung_only needs margin_mm >= 0; received margin_mm=-1"):
        build_step("preprocess", "lung_only", margin_mm=-1.0)
