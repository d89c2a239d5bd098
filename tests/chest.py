"""Chest phantoms built to break a lung mask, with their truth.

Each phantom is a chest CT drawn from analytic shapes at a real voxel size (0.7-1 mm
pixels, 1.25-8 mm slices; the chest is a small adult's): body with fat, muscle and ribs,
spine, heart, descending aorta, trachea and main bronchi, oesophagus, two lungs with domed
bases (the right one higher) over the liver and the spleen, vessels, a gravity-dependent
density gradient, a patient table, a gas bubble in the stomach under the left dome, a
slight blur, noise and, optionally, FOV padding. The lungs are divided into lobes (right:
upper, middle, lower; left: upper, lower) by the oblique and horizontal fissures; where
slices are at most 2.5 mm thick the fissures show, one voxel thick, sharp and complete,
so that the air of each lobe is a component of its own, as on thin-slice scans. Each case
then adds one difficulty that real scans have: a geometry, or a finding in the lungs
(``Scan.lesion``) or next to them (``Scan.outside``) that a lung mask must hold or leave out.

Used by ``tests/test_lung_mask.py`` and ``benchmarks/lung_mask.py`` (the before/after table).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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
RECESS = 20.0
"""The anterior costophrenic recess lies this much higher than the posterior one (mm)."""
STOMACH_Z = 32.0
"""The stomach's centre lies this far under the top of the left dome (mm)."""
BELOW, ABOVE = 45.0, 15.0
"""The scan reaches this far below the left base and above the apices (mm)."""
LOBES = {"right upper": 1, "right middle": 2, "right lower": 3, "left upper": 4,
         "left lower": 5}
SIDES = {"right": 1, "left": -1}


@dataclass(frozen=True)
class Chest:
    """One phantom's scan geometry and findings (lengths in mm; x right, y anterior).

    Attributes:
        consolidated: a lobe (a key of ``LOBES``) turned to soft tissue (30 HU).
        posterior_basal: sides (``right``, ``left``) whose posterior half is consolidated
            (30 +- 15 HU) over the lowest 30% of the lung's slices.
        ground_glass: subpleural ground glass (-550 +- 80 HU) in the right lower lobe,
            vessels showing through it.
        nodules: four dense nodules (40 HU, 6-10 mm radius) against the costal pleura.
        dome_lesion: a dense lesion (40 HU, 14 mm radius) resting on the right dome.
        colon_gas: three gas pockets (about 7 ml in all) in the colon under the right dome.
        effusion: fluid (8 HU) in the right pleural space, layering posteriorly and
            basally, the lung pushed away from the chest wall.
    """

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
    posterior_basal: tuple[str, ...] = ()
    ground_glass: bool = False
    nodules: bool = False
    dome_lesion: bool = False
    colon_gas: bool = False
    effusion: bool = False


@dataclass(frozen=True, eq=False)
class Scan:
    """A rendered phantom: the scan and its truth masks.

    Attributes:
        volume: HU, RAS+ ``(W, H, D)``.
        lungs: both lungs, with the vessels, fissures and lesions inside them.
        aerated: ``lungs`` less the findings that hold no air (consolidation, nodules).
        lesion: the findings inside the lungs (all False for a normal chest).
        outside: what a lung mask must leave out besides the body wall: the pleural
            effusion, the gas in the colon or stomach.
        mediastinum: heart, aorta and oesophagus.
        stomach: the gas in the stomach.
        airways: trachea and main bronchi (lumen and wall) outside the lungs.
        air_ml: (right, left) volume of the lungs' air (below -400 HU).
    """

    volume: Volume
    lungs: np.ndarray
    aerated: np.ndarray
    lesion: np.ndarray
    outside: np.ndarray
    mediastinum: np.ndarray
    stomach: np.ndarray
    airways: np.ndarray
    air_ml: tuple[float, float]


SUB_SLICE_MM = 1.25
"""Slices thicker than 2.5 mm are drawn as sub-slices of about this and averaged (partial
volume: structures a few mm apart do not touch across a thick slice)."""


def _frame(chest: Chest) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """World x, y (in-plane, centred) and z of the sub-slices, the affine, and the number
    of sub-slices per slice."""
    xy = ((np.arange(256) - 127.5) * chest.pixel_mm).astype(np.float32)
    centres = np.arange(-BELOW, HEIGHT + ABOVE, chest.slice_mm, dtype=np.float32)
    n = 1 if chest.slice_mm <= 2.5 else round(chest.slice_mm / SUB_SLICE_MM)
    offsets = ((np.arange(n) + 0.5) / n - 0.5) * chest.slice_mm
    z = (centres[:, None] + offsets[None, :]).ravel().astype(np.float32)
    affine = np.diag([chest.pixel_mm, chest.pixel_mm, chest.slice_mm, 1.0])
    affine[:3, 3] = xy[0], xy[0], centres[0]
    return xy, xy, z, affine, n


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


def _cavity(chest: Chest) -> tuple[float, float]:
    """Semi-axes of the thoracic cavity inside the chest wall."""
    return BODY[0] - chest.wall_mm, BODY[1] - chest.wall_mm


def lung_ellipse(chest: Chest, side: int) -> tuple[float, float, float, float]:
    """Widest cross-section (centre u, v; semi-axes) of the right (+1) or left (-1) lung, a
    rounded rectangle (a superellipse of power 4) that the cavity's ellipse cuts.

    Its medial edge lies 15% of the chest's half-width from the midline, however small.
    """
    a, b = _cavity(chest)
    size = 1.0 if side > 0 else chest.left_size
    la, lb = 0.42 * a * size, 0.86 * b * size
    return side * (0.15 * a + la), -0.02 * b, la, lb


def lung_base(side: int) -> float:
    """Height (z, mm) of a lung's posterior costophrenic recess, its lowest point."""
    return RIGHT_LIFT if side > 0 else 0.0


def _apex_scale(z: np.ndarray, height: float) -> np.ndarray:
    """A lung's cross-section scale at heights ``z``: 1 below its upper 60%, shrinking to 0
    at the apex towards its posterior and medial edge (the apices lie at the back)."""
    return np.sqrt(np.clip((HEIGHT - z) / (0.6 * height), 0, 1))


def _dome_q(chest: Chest, side: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cu, cv, la, lb = lung_ellipse(chest, side)
    return ((u - cu) / la) ** 4 + ((v - cv) / lb) ** 4


def dome_z(chest: Chest, side: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Height of the diaphragm under a lung (its lower surface): highest at the centre,
    ``DOME`` above the recesses, which rise from the back to the front by ``RECESS``."""
    _, cv, _, lb = lung_ellipse(chest, side)
    front = np.clip((v - cv + lb) / (2 * lb), 0, 1)
    return (lung_base(side) + RECESS * front
            + DOME * np.clip(1 - _dome_q(chest, side, u, v), 0, 1))


def _heart(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    a, b = _cavity(chest)
    return (((u + 0.12 * a) / (0.36 * a)) ** 2 + ((v - 0.22 * b) / (0.5 * b)) ** 2
            + ((z - 0.3 * HEIGHT) / (0.3 * HEIGHT))[None, None, :] ** 2 < 1)


def _spine(chest: Chest, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A vertebral body with its arch, spinous and transverse processes."""
    _, b = BODY
    centre = -(b - chest.wall_mm - 14)
    body = (u / 16) ** 2 + ((v - centre) / 14) ** 2 < 1
    ring = np.hypot(u, v - centre + 22)
    arch = (ring > 7) & (ring < 11) & (v < centre - 12)
    transverse = (np.abs(v - centre + 20) < 4) & (np.abs(u) < 32)
    spinous = (np.abs(u) < 3) & (v < centre - 30) & (v > centre - 48)
    return body | arch | transverse | spinous


def _aorta(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray,
           window: tuple[slice, slice]) -> np.ndarray:
    """The descending aorta (12 mm radius), left of the spine's front, up to the arch."""
    _, b = BODY
    front = -(b - chest.wall_mm - 14) + 14
    top, bottom = (-22.0, front + 8.0, 0.75 * HEIGHT), (-20.0, front + 4.0, -BELOW - 20)
    return _tube(u, v, z, bottom, top, (12.0, 12.0), window)[0]


def _lobes(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray,
           carved: np.ndarray) -> np.ndarray:
    """uint8 lobe of each lung voxel (``LOBES``), 0 elsewhere (and in ``carved``)."""
    a, b = _cavity(chest)
    inside = (u / (0.97 * a)) ** 2 + (v / (0.97 * b)) ** 2 < 1
    lobes = np.zeros((u.shape[0], u.shape[1], z.size), np.uint8)
    for side in (1, -1):
        cu, cv, la, lb = lung_ellipse(chest, side)
        base = lung_base(side)
        height = HEIGHT - base
        scale = _apex_scale(z, height)[None, None, :]
        apex_u = side * (0.15 * a + la * scale)
        apex_v = cv - lb * (1 - scale)
        q_apex = (((u - apex_u) / (la * scale + 1e-3)) ** 4
                  + ((v - apex_v) / (lb * scale + 1e-3)) ** 4)
        lung = (q_apex < 1) & (z > dome_z(chest, side, u, v)) & inside & ~carved
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
    a, b = _cavity(chest)
    sphere = (u - 0.55 * a) ** 2 + (v + 0.05 * b) ** 2 + (z - 0.7 * HEIGHT)[None, None, :] ** 2
    bulla = (sphere < 18.0**2) & lungs
    hu[bulla] = -1000
    hu[bulla & ~ndimage.binary_erosion(bulla)] = 0


def _airways(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray,
             window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """Trachea and main bronchi (lumen, wall), and the oesophagus (lumen, wall)."""
    a, _ = _cavity(chest)
    carina, top = (0.0, 0.0, 0.62 * HEIGHT), (0.0, 0.0, HEIGHT + 2 * ABOVE)
    found = _tube(u, v, z, carina, top, (8.0, 10.0), window)
    for side in (1, -1):
        hilum = (side * 0.42 * a, -3.0, 0.55 * HEIGHT)
        found |= _tube(u, v, z, carina, hilum, (5.0, 6.5), window)
    gullet = (6.0, -30.0, -10.0), (6.0, -30.0, HEIGHT + 2 * ABOVE)
    return found, _tube(u, v, z, *gullet, (3.0, 5.0), window)


def _table(x: np.ndarray, y: np.ndarray, body: np.ndarray) -> np.ndarray:
    """2D mask of the table: a flat plate under the body and a curved lower plate."""
    top = y[np.flatnonzero(body.any(axis=(0, 2)))[0]] - 0.5
    xs, ys = x[:, None], y[None, :]
    plate = (ys < top) & (ys > top - 5) & (np.abs(xs) < 110)
    curve = top - 24 + 6e-4 * xs**2
    return plate | ((ys < curve + 4) & (ys > curve) & (np.abs(xs) < 100))


def _cage(chest: Chest, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centre (v) and semi-axes of the rib cage at heights ``z``: the cavity's, narrowing
    above the middle as the lungs taper towards their apices, at the back."""
    a, b = _cavity(chest)
    _, cv, la, lb = lung_ellipse(chest, 1)
    scale = _apex_scale(z, HEIGHT)
    back = -b
    front = np.minimum(b, cv + lb * (2 * scale - 1) + 0.06 * b)
    return ((back + front) / 2, np.minimum(a, 0.18 * a + 2 * la * scale),
            (front - back) / 2)


def _ribs(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Ribs in the chest wall, sloping down from the spine to the front every 25 mm, the
    cage narrowing towards the apices (none above them)."""
    v0, a, b = (c.astype(np.float32) for c in _cage(chest, z))
    v = v - v0
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    front = np.clip((v + b) / (2 * b), 0, 1)
    phase = np.mod(z[None, None, :] + 60 * front, 25.0)
    return ((rho > 1.01) & (rho < 1.01 + 6 / b) & (np.abs(phase - 12.5) < 5) & (np.abs(u) > 20)
            & (z < HEIGHT)[None, None, :])


def _ball(u: np.ndarray, v: np.ndarray, z: np.ndarray, centre: tuple[float, float, float],
          radius: float) -> np.ndarray:
    return ((u - centre[0]) ** 2 + (v - centre[1]) ** 2
            + (z - centre[2])[None, None, :] ** 2) < radius**2


def _posterior_basal(chest: Chest, v: np.ndarray, z: np.ndarray, lobes: np.ndarray,
                     u: np.ndarray) -> np.ndarray:
    """The posterior half of each named side's lung over its lowest 30% of slices."""
    found = np.zeros(lobes.shape, bool)
    for name in chest.posterior_basal:
        side = SIDES[name]
        lung = (lobes > 0) & ((u > 0) if side > 0 else (u < 0))
        levels = np.flatnonzero(lung.any(axis=(0, 1)))
        low = levels[0] + 0.3 * (levels[-1] - levels[0] + 1)
        _, cv, _, _ = lung_ellipse(chest, side)
        found |= lung & (v < cv) & (np.arange(z.size) < low)[None, None, :]
    return found


def _ground_glass(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Three subpleural patches, flattened against the right posterolateral wall."""
    a, b = _cavity(chest)
    found = np.zeros((u.shape[0], u.shape[1], z.size), bool)
    for angle, height, radius in ((-0.3, 45.0, 22.0), (-0.9, 70.0, 18.0), (0.1, 95.0, 15.0)):
        cu, cv = 0.97 * a * np.cos(angle), 0.97 * b * np.sin(angle)
        found |= (((u - cu) / (0.6 * radius)) ** 2 + ((v - cv) / (0.6 * radius)) ** 2
                  + ((z - height) / radius)[None, None, :] ** 2) < 1
    return found


def _nodules(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Four nodules centred a few mm inside the costal pleura, on both sides."""
    a, b = _cavity(chest)
    found = np.zeros((u.shape[0], u.shape[1], z.size), bool)
    for angle, height, radius in ((0.2, 60.0, 10.0), (-0.6, 110.0, 8.0),
                                  (np.pi + 0.4, 80.0, 9.0), (np.pi - 0.5, 130.0, 6.0)):
        inset = 0.97 - 0.4 * radius / b
        found |= _ball(u, v, z, (inset * a * np.cos(angle), inset * b * np.sin(angle),
                                 height), radius)
    return found


def _colon(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Three gas pockets 8 mm under the right dome (colon between liver and diaphragm)."""
    cu, cv, la, lb = lung_ellipse(chest, 1)
    found = np.zeros((u.shape[0], u.shape[1], z.size), bool)
    for du, dv, radius in ((0.0, 0.25, 9.0), (0.3, 0.1, 8.0), (-0.25, -0.05, 7.0)):
        pu, pv = cu + du * la, cv + dv * lb
        top = float(dome_z(chest, 1, np.float32(pu), np.float32(pv)))
        found |= _ball(u, v, z, (pu, pv, top - 8.0 - radius), radius)
    return found


def _effusion(chest: Chest, u: np.ndarray, v: np.ndarray, z: np.ndarray,
              lobes: np.ndarray) -> np.ndarray:
    """Fluid in the right pleural space: a posterior layer, deepest at the base."""
    _, cv, _, lb = lung_ellipse(chest, 1)
    level = np.clip(1 - (z - lung_base(1)) / (0.45 * HEIGHT), 0, 1)[None, None, :]
    return (lobes > 0) & (u > 0) & (v < cv - lb + 8.0 + 32.0 * level) & (level > 0)


def _slab(array: np.ndarray, n: int) -> np.ndarray:
    """Sub-slices averaged into slices of ``n`` (masks: the voxels more than half inside)."""
    if n == 1:
        return array
    mean = array.reshape(*array.shape[:2], -1, n).mean(axis=3, dtype=np.float32)
    return mean > 0.5 if array.dtype == bool else mean


def _volume_ml(mask: np.ndarray, chest: Chest) -> float:
    return float(mask.sum() * chest.pixel_mm**2 * chest.slice_mm / 1000)


@functools.lru_cache(maxsize=3)
def render(chest: Chest) -> Scan:
    """The phantom ``chest`` (cached: tests share it, and must not modify it)."""
    rng = np.random.default_rng(sum(map(ord, chest.name)))
    x, y, z, affine, n = _frame(chest)
    spacing = (chest.pixel_mm, chest.pixel_mm, chest.slice_mm / n)
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
    ca, cb = _cavity(chest)
    cavity = (u / ca) ** 2 + (v / cb) ** 2 < 1
    for side, organ_hu in ((1, 60), (-1, 50)):  # liver under the right dome, spleen left
        below = (z[None, None, :] < dome_z(chest, side, u, v)) & (side * u > 0) & cavity
        np.copyto(hu, organ_hu, where=below & (z > -BELOW + 10)[None, None, :])
    heart = _heart(chest, u, v, z)
    aorta = _aorta(chest, u, v, z, window)
    spine = _spine(chest, u, v)
    lobes = _lobes(chest, u, v, z, heart | aorta | spine)
    lungs = lobes > 0
    if chest.bridge:
        across = 0.45 * (a - chest.wall_mm)
        ends = (-across, 20.0, 0.72 * HEIGHT), (across, 20.0, 0.72 * HEIGHT)
        lungs |= _tube(u, v, z, *ends, (3.0, 3.0), window)[0]
    effusion = _effusion(chest, u, v, z, lobes) if chest.effusion else np.zeros(shape, bool)
    lungs &= ~effusion
    lobes[effusion] = 0
    np.copyto(hu, 45, where=heart | aorta)
    np.copyto(hu, 400, where=(spine | _ribs(chest, u, v, z)) & body)
    depth = np.clip((-v - 0.3 * b) / (0.7 * b), 0, 1)
    np.copyto(hu, -860 + 90 * depth**2, where=lungs)
    vessels = lungs & (_smooth_field(rng, shape, 1.2, spacing) > 1.8)
    hu[vessels] = 40
    if chest.emphysema:
        _emphysema(chest, rng, u, v, z, lobes, hu)
    (lumen, wall), gullet = _airways(chest, u, v, z, window)
    hu[wall & ~lumen] = 40
    hu[lumen] = -1000
    hu[gullet[1]] = 40
    cu, cv, la, _ = lung_ellipse(chest, -1)
    fundus = float(dome_z(chest, -1, np.float32(cu), np.float32(cv))) - STOMACH_Z
    stomach = ((((u - cu) / (0.7 * la)) ** 2 + ((v - cv) / (0.7 * la)) ** 2
                + ((z - fundus) / 16)[None, None, :] ** 2) < 1) & body
    hu[stomach] = -1000
    colon = _colon(chest, u, v, z) if chest.colon_gas else np.zeros(shape, bool)
    hu[colon] = -1000
    hu[effusion] = 8
    dense = lobes == LOBES.get(chest.consolidated, -1)
    hu[dense] = 30
    basal = _posterior_basal(chest, v, z, lobes, u) & lungs
    hu[basal] = 30 + 15 * _smooth_field(rng, shape, 3.0, spacing)[basal]
    dense |= basal
    glass = (_ground_glass(chest, u, v, z) & lungs) if chest.ground_glass else \
        np.zeros(shape, bool)
    hu[glass & ~vessels] = -550 + 80 * _smooth_field(rng, shape, 2.0, spacing)[glass & ~vessels]
    solid = np.zeros(shape, bool)
    if chest.nodules:
        solid |= _nodules(chest, u, v, z) & lungs
    if chest.dome_lesion:
        cu, cv, _, _ = lung_ellipse(chest, 1)
        top = float(dome_z(chest, 1, np.float32(cu), np.float32(cv)))
        solid |= _ball(u, v, z, (cu, cv, top + 8.0), 14.0) & lungs
    hu[solid] = 40
    dense |= solid
    np.copyto(hu, 150, where=_table(x, y, body)[:, :, None] & ~body)
    hu = ndimage.gaussian_filter(hu, (0.4, 0.4, 0), truncate=2.0)
    if chest.slice_mm <= 2.5:
        hu[_fissures(lobes) & ~dense] = -100
    hu = _slab(hu, n)
    hu += 25 * rng.standard_normal(hu.shape, dtype=np.float32)
    if chest.padding is not None:
        outside = np.hypot(x[:, None], y[None, :]) > 128 * chest.pixel_mm
        hu[outside] = chest.padding
    source = f"phantom/{chest.name}"
    truth = [_slab(mask, n) for mask in (
        lungs, lungs & ~dense, (dense | glass) & lungs, effusion | colon | stomach,
        (heart | aorta | gullet[1]) & ~lungs, stomach, (lumen | wall) & ~lungs,
        np.broadcast_to(u > 0, lobes.shape))]
    air = truth[0] & (hu < -400)
    right = truth.pop()
    scan = Scan(Volume(hu, (chest.pixel_mm, chest.pixel_mm, chest.slice_mm), affine, source),
                *truth, (_volume_ml(air & right, chest), _volume_ml(air & ~right, chest)))
    for mask in (scan.volume.array, scan.lungs, scan.aerated, scan.lesion, scan.outside,
                 scan.mediastinum, scan.stomach, scan.airways):
        mask.flags.writeable = False
    return scan


def volume_ml(mask: np.ndarray, scan: Scan) -> float:
    """Volume of ``mask`` in ml."""
    return float(mask.sum() * np.prod(scan.volume.spacing) / 1000)


def dice(found: np.ndarray, truth: np.ndarray, scan: Scan) -> float:
    """Dice of ``found`` and ``truth``, the airways outside the lungs left out."""
    found = found & ~scan.airways
    return float(2 * (found & truth).sum() / (found.sum() + truth.sum()))


def crop_box(before: Volume, after: Volume) -> tuple[slice, ...]:
    """The voxels of ``before`` that the crop ``after`` kept."""
    start = np.rint(np.linalg.inv(before.affine) @ after.affine[:, 3])[:3].astype(int)
    return tuple(slice(s, s + n) for s, n in zip(start, after.shape, strict=True))


def kept_share(before: Volume, after: Volume, truth: np.ndarray) -> float:
    """Share of ``truth`` voxels of ``before`` inside the crop ``after``."""
    return float(truth[crop_box(before, after)].sum() / truth.sum())


FINDINGS = {
    "normal": Chest("normal", slice_mm=8.0),
    "basal-right": Chest("basal-right", slice_mm=8.0, posterior_basal=("right",)),
    "basal-both": Chest("basal-both", slice_mm=5.0, posterior_basal=("right", "left")),
    "ground-glass": Chest("ground-glass", slice_mm=2.5, ground_glass=True),
    "lower-lobe": Chest("lower-lobe", slice_mm=8.0, consolidated="right lower"),
    "nodules": Chest("nodules", slice_mm=5.0, nodules=True),
    "dome-lesion": Chest("dome-lesion", slice_mm=2.5, dome_lesion=True),
    "colon-gas": Chest("colon-gas", slice_mm=8.0, colon_gas=True),
    "effusion": Chest("effusion", slice_mm=5.0, effusion=True),
}
"""The findings a lung mask must hold (``Scan.lesion``) or leave out (``Scan.outside``), on
a normal chest, at MosMedData's 8 mm slices or thinner."""
