"""The lungs' air: the first half of the lung mask (:mod:`ct3d.preprocess.lung`).

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

It fails where the air is missing or joins other air: a lung behind a chest wall thinner
than about 1 cm (the opening's width) over much of its surface, or touching a circular
field of view (it then joins the padding), can be taken for air outside the body; and
lungs joined to the outside air (a tracheostomy) are not found. Rule 5 reads the slices
from feet to head: the array must be in RAS+ order, as ct3d reads scans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ct3d.volume import Volume

__all__ = ["Coarse", "air_lungs", "check_air_threshold", "coarse_grid", "expand",
           "fill_holes_per_slice", "side_split"]

_WORK_MM = 2.8
"""In-plane block size (at most) of the reduced grid the components are found on."""
_OPEN_MM = 5.0
"""Radius of the in-plane opening that detaches the table and thin attachments."""
_JOIN_MM = 4.0
"""Air components closer than about this are one region (lobes across their fissure)."""
_HULL_SIDES = 32
"""A slice's convex hull of the body is circumscribed by a polygon with this many sides."""
_MIN_BODY_SHARE = 0.01
"""The largest lung region holds at least this share of the voxels inside the body's hulls."""
_MIN_REGION_SHARE = 0.1
"""Another region is a lung when it holds at least this share of the largest one's air."""
_BONE_HU = 200.0
"""A block holding a voxel above this is bone (ribs, spine; a calcified nodule too)."""

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
class Coarse:
    """A scan on the reduced grid: voxel (i, j, k) is the block [i*f:(i+1)*f, j*f:(j+1)*f, k].

    Attributes:
        factor: the block's width in voxels (``f``).
        block_mm: the block's (x, y, slice) size in mm.
        air: blocks all of whose voxels are air.
        bone: blocks holding a voxel above 200 HU.
        mean: the blocks' mean HU (float32).
        body: the largest non-air component after the opening (holes not filled).
        inside: the body's convex hull in each slice.
    """

    factor: int
    block_mm: tuple[float, float, float]
    air: np.ndarray
    bone: np.ndarray
    mean: np.ndarray
    body: np.ndarray
    inside: np.ndarray


def _blocks(array: np.ndarray, factor: int) -> np.ndarray:
    """``array`` as (W', f, H', f, D) blocks, edge-padded to whole blocks."""
    w, h, d = array.shape
    pad = ((0, -w % factor), (0, -h % factor), (0, 0))
    padded = np.pad(array, pad, mode="edge") if any(p[1] for p in pad) else array
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor,
                          factor, d)


def expand(mask: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
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


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
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


def _opened(mask: np.ndarray, block_mm: tuple[float, float, float]) -> np.ndarray:
    """In-plane opening with a disk of radius ``_OPEN_MM`` (elliptic in blocks, capped at
    the grid's size, so that a tiny voxel size cannot ask for a huge structuring element)."""
    rx, ry = (min(math.ceil(_OPEN_MM / s), n) for s, n in zip(block_mm[:2], mask.shape[:2],
                                                               strict=True))
    x, y = np.ogrid[-rx : rx + 1, -ry : ry + 1]
    disk = ((x / rx) ** 2 + (y / ry) ** 2 <= 1)[:, :, None]
    return ndimage.binary_opening(mask, disk)


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


def coarse_grid(volume: Volume, threshold_hu: float) -> Coarse:
    """Air, bone, mean HU, the body and the body's hulls on the reduced grid."""
    # At most one block per slice: a tiny voxel size must not pad the grid to a huge one.
    w, h = volume.shape[:2]
    factor = max(1, min(int(_WORK_MM // min(volume.spacing[0], volume.spacing[1])), max(w, h)))
    blocks = _blocks(volume.array, factor)
    top = blocks.max(axis=(1, 3))
    air, bone = top < threshold_hu, top > _BONE_HU
    mean = blocks.mean(axis=(1, 3), dtype=np.float32)
    block_mm = (factor * volume.spacing[0], factor * volume.spacing[1], volume.spacing[2])
    body = _largest(_opened(~air, block_mm))
    return Coarse(factor, block_mm, air, bone, mean, body, _convex_hull_per_slice(body))


def _enclosed_air(coarse: Coarse) -> np.ndarray:
    """The air components with more than half of their voxels inside the body's hulls."""
    labels, count = ndimage.label(coarse.air)
    total = np.bincount(labels.ravel(), minlength=count + 1)
    inside = np.bincount(labels[coarse.inside], minlength=count + 1)
    keep = 2 * inside > total
    keep[0] = False
    return keep[labels]


def _join_size(coarse: Coarse, grid: tuple[int, ...]) -> tuple[int, ...]:
    """Box (in grid voxels) that grows each air component by about half of ``_JOIN_MM``.

    At least one block in-plane, none across slices thicker than ``_JOIN_MM``; capped at
    the grid's size.
    """
    radii = [min(round(_JOIN_MM / 2 / s), n) for s, n in zip(coarse.block_mm, grid, strict=True)]
    return 2 * max(radii[0], 1) + 1, 2 * max(radii[1], 1) + 1, 2 * radii[2] + 1


def _regions(coarse: Coarse) -> tuple[np.ndarray, np.ndarray]:
    """Enclosed air labelled by region (0 elsewhere), and each label's voxels per slice.

    Returns ``labels`` and ``per_slice``: ``per_slice[k, i]`` voxels of region ``i`` in
    slice ``k`` (column 0 all zero).
    """
    candidates = _enclosed_air(coarse)
    grown = ndimage.maximum_filter(candidates, _join_size(coarse, candidates.shape))
    labels, count = ndimage.label(grown)
    labels[~candidates] = 0
    depth = labels.shape[2]
    per_slice = np.bincount((labels + (count + 1) * np.arange(depth)).ravel(),
                            minlength=(count + 1) * depth).reshape(depth, count + 1)
    per_slice[:, 0] = 0
    return labels, per_slice


def air_lungs(coarse: Coarse) -> tuple[np.ndarray, np.ndarray]:
    """The lungs' air on the reduced grid (module doc), and the enclosed air left out.

    The second mask is air inside the body's hulls that is not lung: gas in the bowel or
    stomach, or air trapped in clothes. Where no lungs are found both are all False.
    """
    labels, per_slice = _regions(coarse)
    sizes = per_slice.sum(axis=0)
    largest = int(sizes.argmax())
    if sizes[largest] < max(_MIN_BODY_SHARE * coarse.inside.sum(), 1):
        empty = np.zeros(labels.shape, bool)
        return empty, empty
    span = np.flatnonzero(per_slice[:, largest])
    top = len(per_slice) - 1 - np.argmax(per_slice[::-1] > 0, axis=0)
    keep = (sizes >= _MIN_REGION_SHARE * sizes[largest]) & (2 * top >= span[0] + span[-1])
    keep[0] = False
    other = ~keep
    other[0] = False
    return keep[labels], other[labels]


def side_split(coarse: Coarse, lungs: np.ndarray) -> np.ndarray:
    """Per slice, the column that splits the right lung (larger x, RAS+) from the left.

    It is the column with the least lung air within the middle third of the body's hull,
    the one nearest the hull's middle where several hold as little (the mediastinum).
    """
    w = lungs.shape[0]
    columns = coarse.inside.any(axis=1)
    first, last = np.argmax(columns, axis=0), w - 1 - np.argmax(columns[::-1], axis=0)
    x = np.arange(w)[:, None]
    off = np.abs(2 * x - first - last)
    profile = lungs.sum(axis=1, dtype=np.float64) + off / (4.0 * w)
    profile[off > (last - first) / 3] = np.inf
    return np.argmin(profile, axis=0)
