"""Body and lung masks from raw HU, and the ``lung_crop`` preprocessor built on them.

Air is HU below a threshold (FOV padding such as -2048 or -3024 HU counts as air). The
components are found on a grid reduced in-plane to blocks of about 2 mm, where a block is
air only when all its voxels are (so thin walls survive the reduction):

1. body: the largest connected non-air component after an in-plane opening of about 5 mm
   radius, which detaches the patient table, mattress and other thin attachments;
2. inside: in each slice, the convex hull of the body. It holds the lungs where the chest
   wall is cut by the edge of the image (a small field of view) or, in places, thinner
   than the opening keeps, and leaves out the air around the body and in or under the
   table;
3. candidates: the air components (3D) lying mostly inside;
4. regions: candidates closer than about 4 mm to each other form one region, so that lobes
   split by their fissures, a bulla in its wall or lung broken up by vessels and dense
   parts stay together;
5. lungs: the largest region, and every other region that holds at least a tenth as much
   air and reaches the upper half of the largest one's slices (the other lung; gas in the
   stomach or colon under the diaphragm stays out), however many there are. The trachea
   comes along where it joins a lung.

:func:`lung_mask` and :func:`body_mask` refine the blocks at full resolution (air or
non-air voxels within them, holes filled per slice); :func:`lung_crop` needs only the
lungs' bounding box, widened by one block for the voxels the reduction may have missed,
and warns when one lung holds much less air than the other.

The lung mask is the lungs' air, so it fails where that air is missing or joins other
air: a lobe that holds none (consolidated, collapsed, filled with fluid) is left out
where it borders the chest wall; a lung behind a chest wall thinner than about 1 cm (the
opening's width) over much of its surface, or touching a circular field of view (it then
joins the padding), can be taken for air outside the body; and lungs joined to the
outside air (a tracheostomy) are not found. Rule 5 reads the slices from feet to head:
the array must be in RAS+ order, as ct3d reads scans.

Example:
    >>> from ct3d.data.synthetic import render_phantom
    >>> phantom = render_phantom(0, abnormal=True)
    >>> found = lung_mask(phantom.volume)
    >>> dice = 2 * (found & phantom.lungs).sum() / (found.sum() + phantom.lungs.sum())
    >>> bool(dice > 0.9)
    True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ct3d.preprocess.geometry import crop
from ct3d.registry import preprocessor
from ct3d.volume import Step, Volume

_WORK_MM = 2.0
"""In-plane block size (about) of the reduced grid the components are found on."""
_OPEN_MM = 5.0
"""Radius of the in-plane opening that detaches the table and thin attachments from the body."""
_CLOSE_MM = 5.0
"""Radius of the in-plane closing that takes in lesions biting into the lungs from the pleura."""
_JOIN_MM = 4.0
"""Air components closer than about this are one region (lobes across their fissure)."""
_HULL_SIDES = 32
"""A slice's convex hull of the body is circumscribed by a polygon with this many sides."""
_MIN_BODY_SHARE = 0.01
"""The largest lung region holds at least this share of the voxels inside the body's hulls."""
_MIN_REGION_SHARE = 0.1
"""Another region is a lung when it holds at least this share of the largest one's air."""
UNEQUAL_LUNG_RATIO = 1 / 3
"""``lung_crop`` warns when one lung holds less than this share of the other one's air."""

_SLICE_LINKS = np.pad(ndimage.generate_binary_structure(2, 1)[:, :, None], ((0, 0), (0, 0), (1, 1)))
"""Connectivity within a slice only: labelling with it treats each slice on its own."""


def check_air_threshold(threshold_hu: float, owner: str) -> None:
    """Raise ``ValueError`` unless ``threshold_hu`` lies between air and water (-1000, 0).

    Example:
        >>> check_air_threshold(-400.0, "lung_crop")
        >>> check_air_threshold(-1500.0, "lung_crop")
        Traceback (most recent call last):
        ValueError: lung_crop needs -1000 < threshold_hu < 0 (HU); received threshold_hu=-1500.0
    """
    if not -1000.0 < threshold_hu < 0.0:
        raise ValueError(f"{owner} needs -1000 < threshold_hu < 0 (HU); "
                         f"received threshold_hu={threshold_hu}")


@dataclass(frozen=True, eq=False)
class _Coarse:
    """Masks on the reduced grid: voxel (i, j, k) is the block [i*f:(i+1)*f, j*f:(j+1)*f, k].

    ``body`` is the largest non-air component after the opening (holes not filled);
    ``inside`` is its convex hull in each slice.
    """

    factor: int
    air: np.ndarray
    body: np.ndarray
    inside: np.ndarray


def _reduce(mask: np.ndarray, factor: int) -> np.ndarray:
    """In-plane blocks of ``factor`` x ``factor`` voxels: True where all of them are."""
    if factor == 1:
        return mask
    w, h, d = mask.shape
    pad = ((0, -w % factor), (0, -h % factor), (0, 0))
    padded = np.pad(mask, pad, mode="edge")
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor,
                            factor, d)
    return blocks.all(axis=(1, 3))


def _expand(mask: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    """Blocks back to full resolution: every voxel takes its block's value."""
    if factor == 1:
        return mask
    full = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
    return full[: shape[0], : shape[1]]


def _on_border(labels: np.ndarray, count: int) -> np.ndarray:
    """Lookup over labels ``0..count``: True for the components reaching the in-plane border."""
    table = np.zeros(count + 1, bool)
    for face in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        table[face] = True
    table[0] = False
    return table


def _fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus, slice by slice, the regions it encloses (not reaching the border)."""
    labels, count = ndimage.label(~mask, _SLICE_LINKS)
    enclosed = ~_on_border(labels, count)
    enclosed[0] = False
    return mask | enclosed[labels]


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 3D connected component of ``mask`` (all False when there is none)."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def _disk_mm(volume: Volume, factor: int, radius_mm: float, grid: tuple[int, ...]) -> np.ndarray:
    """In-plane disk of ``radius_mm`` on the reduced grid (elliptic in voxels), one slice deep.

    Its radius is capped at the grid's size (a larger disk would act the same), so that a
    tiny voxel size cannot ask for a huge structuring element.
    """
    rx, ry = (min(math.ceil(radius_mm / (factor * s)), n)
              for s, n in zip(volume.spacing[:2], grid[:2], strict=True))
    x, y = np.ogrid[-rx : rx + 1, -ry : ry + 1]
    return ((x / rx) ** 2 + (y / ry) ** 2 <= 1)[:, :, None]


def _convex_hull_per_slice(mask: np.ndarray) -> np.ndarray:
    """In each slice, the convex hull of ``mask``, circumscribed by a ``_HULL_SIDES``-gon.

    Only the first and last voxel of a row can be corners of the hull, so the polygon's
    sides are placed against them; each row of the result is one interval.
    """
    w, h, _ = mask.shape
    rows = mask.any(axis=0)
    first = np.argmax(mask, axis=0).astype(np.float32)
    last = (w - 1 - np.argmax(mask[::-1], axis=0)).astype(np.float32)
    angle = (np.arange(_HULL_SIDES, dtype=np.float32) + 0.5) * np.float32(2 * np.pi / _HULL_SIDES)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    y = np.arange(h, dtype=np.float32)[None, :, None]
    reach = np.maximum(cos * first, cos * last) + sin * y
    support = np.where(rows, reach, -np.inf).max(axis=1, keepdims=True)
    bound = (support - sin * y) / cos
    right = cos[:, 0, 0] > 0
    x = np.arange(w)[:, None, None]
    slack = 0.01  # rounding: a one-voxel mask is its own hull
    return (x >= bound[~right].max(axis=0) - slack) & (x <= bound[right].min(axis=0) + slack)


def _coarse(volume: Volume, threshold_hu: float) -> _Coarse:
    """Air, the body and the body's hulls on the reduced grid."""
    # At most one block per slice: a tiny voxel size must not pad the grid to a huge one.
    w, h = volume.shape[:2]
    factor = max(1, min(int(_WORK_MM // min(volume.spacing[0], volume.spacing[1])), max(w, h)))
    air = _reduce(volume.array < threshold_hu, factor)
    body = _largest(ndimage.binary_opening(~air, _disk_mm(volume, factor, _OPEN_MM, air.shape)))
    return _Coarse(factor, air, body, _convex_hull_per_slice(body))


def _enclosed_air(coarse: _Coarse) -> np.ndarray:
    """The air components with more than half of their voxels inside the body's hulls."""
    labels, count = ndimage.label(coarse.air)
    total = np.bincount(labels.ravel(), minlength=count + 1)
    inside = np.bincount(labels[coarse.inside], minlength=count + 1)
    keep = 2 * inside > total
    keep[0] = False
    return keep[labels]


def _join_size(volume: Volume, factor: int, grid: tuple[int, ...]) -> tuple[int, ...]:
    """Box (in grid voxels) that grows each air component by about half of ``_JOIN_MM``.

    At least one block in-plane, none across slices thicker than ``_JOIN_MM``; capped at
    the grid's size.
    """
    steps = (factor * volume.spacing[0], factor * volume.spacing[1], volume.spacing[2])
    radii = [min(round(_JOIN_MM / 2 / s), n) for s, n in zip(steps, grid, strict=True)]
    return 2 * max(radii[0], 1) + 1, 2 * max(radii[1], 1) + 1, 2 * radii[2] + 1


def _regions(volume: Volume, coarse: _Coarse) -> tuple[np.ndarray, np.ndarray]:
    """Enclosed air labelled by region (0 elsewhere), and each label's voxels per slice.

    Returns ``labels`` and ``per_slice``: ``per_slice[k, i]`` voxels of region ``i`` in
    slice ``k`` (column 0 all zero).
    """
    candidates = _enclosed_air(coarse)
    grown = ndimage.maximum_filter(candidates, _join_size(volume, coarse.factor,
                                                          candidates.shape))
    labels, count = ndimage.label(grown)
    labels[~candidates] = 0
    depth = labels.shape[2]
    per_slice = np.bincount((labels + (count + 1) * np.arange(depth)).ravel(),
                            minlength=(count + 1) * depth).reshape(depth, count + 1)
    per_slice[:, 0] = 0
    return labels, per_slice


def _coarse_lungs(volume: Volume, coarse: _Coarse) -> np.ndarray:
    """The lungs on the reduced grid: the lung-like regions of enclosed air (module doc)."""
    labels, per_slice = _regions(volume, coarse)
    sizes = per_slice.sum(axis=0)
    largest = int(sizes.argmax())
    if sizes[largest] < max(_MIN_BODY_SHARE * coarse.inside.sum(), 1):
        return np.zeros(labels.shape, bool)
    span = np.flatnonzero(per_slice[:, largest])
    top = len(per_slice) - 1 - np.argmax(per_slice[::-1] > 0, axis=0)
    keep = (sizes >= _MIN_REGION_SHARE * sizes[largest]) & (2 * top >= span[0] + span[-1])
    keep[0] = False
    return keep[labels]


def body_mask(volume: Volume, threshold_hu: float = -400.0) -> np.ndarray:
    """Bool mask of the patient's body (lungs included; table and outside air excluded).

    ``volume`` must hold raw HU.

    Example:
        >>> from ct3d.data.synthetic import Tissue, render_phantom
        >>> phantom = render_phantom(0, abnormal=False)
        >>> body = body_mask(phantom.volume)
        >>> bool(body[phantom.labels == Tissue.TABLE].any()), bool(body[phantom.lungs].all())
        (False, True)
    """
    check_air_threshold(threshold_hu, "body_mask")
    coarse = _coarse(volume, threshold_hu)
    region = _expand(_fill_holes_per_slice(coarse.body), coarse.factor, volume.shape)
    return _fill_holes_per_slice(region & ~(volume.array < threshold_hu))


def lung_mask(volume: Volume, threshold_hu: float = -400.0) -> np.ndarray:
    """Bool mask of the lungs (with the vessels and lesions they enclose, and the trachea).

    ``volume`` must hold raw HU. Every lobe holding air is kept, however the air is split
    up; see the module doc for the rule and where it fails.

    Example:
        >>> from ct3d.data.synthetic import render_phantom
        >>> phantom = render_phantom(1, abnormal=False)
        >>> bool((lung_mask(phantom.volume) == phantom.lungs).mean() > 0.98)
        True
    """
    check_air_threshold(threshold_hu, "lung_mask")
    coarse = _coarse(volume, threshold_hu)
    lungs = _coarse_lungs(volume, coarse)
    closed = ndimage.binary_closing(lungs, _disk_mm(volume, coarse.factor, _CLOSE_MM,
                                                    lungs.shape))
    near = ndimage.binary_dilation(lungs, np.ones((3, 3, 1), bool))
    found = _expand(near, coarse.factor, volume.shape) & (volume.array < threshold_hu)
    found |= _expand(closed, coarse.factor, volume.shape)
    return _fill_holes_per_slice(found)


def _lung_box(volume: Volume, coarse: _Coarse, lungs: np.ndarray,
              margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution [start, stop) of the lungs' bounding box, widened and clamped."""
    f = coarse.factor
    spans = [np.flatnonzero(lungs.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
    lo, hi = np.array([s[0] for s in spans]), np.array([s[-1] for s in spans])
    scale = np.array([f, f, 1])
    missed = np.array([f, f, 0]) if f > 1 else np.zeros(3, int)
    margin = np.ceil(margin_mm / np.array(volume.spacing)).astype(int)
    start = np.maximum(lo * scale - missed - margin, 0)
    stop = np.minimum((hi + 1) * scale + missed + margin, volume.shape)
    return start, stop


def _lung_air_ml(volume: Volume, coarse: _Coarse, lungs: np.ndarray) -> tuple[float, float]:
    """(right, left) air of the coarse ``lungs`` in ml (the trachea goes to one side).

    In each slice the lungs are split at the column with the least lung air within the
    middle third of the body's hull (RAS+: the right lung has the larger x). Blocks only
    partly air are not counted, so both are underestimates (by about a tenth).
    """
    w = lungs.shape[0]
    columns = coarse.inside.any(axis=1)
    first, last = np.argmax(columns, axis=0), w - 1 - np.argmax(columns[::-1], axis=0)
    x = np.arange(w)[:, None]
    profile = lungs.sum(axis=1, dtype=np.float64)
    profile[np.abs(2 * x - first - last) > (last - first) / 3] = np.inf
    split = np.argmin(profile, axis=0)
    right = np.count_nonzero(lungs & (x[:, :, None] > split))
    block_ml = coarse.factor**2 * math.prod(volume.spacing) / 1000
    return right * block_ml, (np.count_nonzero(lungs) - right) * block_ml


def _warn_if_unequal(volume: Volume, coarse: _Coarse, lungs: np.ndarray) -> None:
    """Warn when one lung holds less than ``UNEQUAL_LUNG_RATIO`` of the other one's air."""
    right, left = _lung_air_ml(volume, coarse, lungs)
    if min(right, left) < UNEQUAL_LUNG_RATIO * max(right, left):
        warnings.warn(f"lung_crop: unequal lungs in {volume.source}: right {right:.0f} ml, "
                      f"left {left:.0f} ml of air (less than {UNEQUAL_LUNG_RATIO:.2f} of the "
                      "other); a lung may be collapsed, consolidated, cut by the field of view "
                      "or missing from the mask", stacklevel=3)


@preprocessor("lung_crop")
def lung_crop(margin_mm: float = 10.0, threshold_hu: float = -400.0) -> Step:
    """Crop all three axes to the lungs' bounding box plus a margin (raw HU, before windowing).

    The lungs are found as in :func:`lung_mask`; the box is clamped to the volume and the
    affine follows it. A scan without lungs is returned unchanged, with a warning naming it;
    a scan where one lung holds less than ``UNEQUAL_LUNG_RATIO`` (1/3) of the other one's
    air is cropped with a warning naming it and both volumes: a lung may be collapsed,
    consolidated, cut by the field of view or missing from the mask.

    Args:
        margin_mm: margin added on every side of the lungs' bounding box, in mm, >= 0.
        threshold_hu: HU below which a voxel is air, in (-1000, 0), for finding the lungs.

    Example:
        >>> from ct3d.data.synthetic import render_phantom
        >>> phantom = render_phantom(0, abnormal=False)
        >>> cropped = lung_crop(margin_mm=5.0)(phantom.volume)
        >>> cropped.array.size < 0.5 * phantom.volume.array.size
        True
    """
    if not margin_mm >= 0:
        raise ValueError(f"lung_crop needs margin_mm >= 0; received margin_mm={margin_mm}")
    check_air_threshold(threshold_hu, "lung_crop")

    def apply(volume: Volume) -> Volume:
        coarse = _coarse(volume, threshold_hu)
        lungs = _coarse_lungs(volume, coarse)
        if not lungs.any():
            warnings.warn(f"lung_crop: no lungs found in {volume.source}; volume left uncropped",
                          stacklevel=2)
            return volume
        _warn_if_unequal(volume, coarse, lungs)
        return crop(volume, *_lung_box(volume, coarse, lungs, margin_mm))

    return apply


@preprocessor("lung_only")
def lung_only(margin_mm: float = 10.0, fill_hu: float = -1000.0,
              threshold_hu: float = -400.0) -> Step:
    """Keep the lungs, set everything else to ``fill_hu`` (raw HU, before windowing).

    The lungs are :func:`lung_mask`'s (with the vessels and lesions they enclose), grown by
    ``margin_mm`` so that lesions on the pleura are kept: the mask counts as lung what is
    below ``threshold_hu`` and what that encloses, so a dense lesion touching the chest wall
    is outside it (on the synthetic stand-in, 10 mm keeps 99% of the lesion voxels of CT-1
    scans, 89% of CT-3's, 75% of CT-4's; 0 mm 76-90%, 68-77%, 50%). Chest wall, heart, bone
    and table become ``fill_hu``, and the model sees little but the lungs. A scan without
    lungs is returned unchanged, with a warning naming it.

    Args:
        margin_mm: margin the lung mask is grown by, in mm, >= 0.
        fill_hu: HU given to every voxel outside the grown lung mask.
        threshold_hu: HU below which a voxel is air, in (-1000, 0), for finding the lungs.

    Example:
        >>> from ct3d.data.synthetic import Tissue, render_phantom
        >>> phantom = render_phantom(0, abnormal=False)
        >>> kept = lung_only(margin_mm=0.0)(phantom.volume).array
        >>> bool((kept[phantom.labels == Tissue.CORTICAL] == -1000).all())
        True
    """
    if not margin_mm >= 0:
        raise ValueError(f"lung_only needs margin_mm >= 0; received margin_mm={margin_mm}")
    check_air_threshold(threshold_hu, "lung_only")

    def apply(volume: Volume) -> Volume:
        lungs = lung_mask(volume, threshold_hu)
        if not lungs.any():
            warnings.warn(f"lung_only: no lungs found in {volume.source}; volume left as is",
                          stacklevel=2)
            return volume
        if margin_mm > 0:
            radius = np.maximum(np.floor(margin_mm / np.asarray(volume.spacing)), 0)
            axes = [np.arange(-r, r + 1) / max(r, 1) for r in radius]
            ball = sum(np.meshgrid(*[a**2 for a in axes], indexing="ij")) <= 1
            lungs = ndimage.binary_dilation(lungs, structure=ball)
        return volume.replace(array=np.where(lungs, volume.array, np.float32(fill_hu)))

    return apply
