"""Body and lung masks from raw HU, and the ``lung_crop`` preprocessor built on them.

Air is HU below a threshold (FOV padding such as -2048 or -3024 HU counts as air). The
components are found on a grid reduced in-plane to blocks of about 2 mm, where a block is
air only when all its voxels are (so thin walls survive the reduction):

1. body: the largest connected non-air component after an in-plane opening of about 5 mm
   radius, which detaches the patient table, mattress and other thin attachments; holes
   are filled slice by slice, so the body includes the lungs;
2. candidates: air inside the body that is not connected in 3D to the in-plane border
   (outside air reaching round the table or between slices);
3. lungs: the largest one or two candidate components above a size fraction (the two
   lungs, or both joined through the airways; the trachea comes along).

:func:`lung_mask` and :func:`body_mask` refine the blocks at full resolution (air or
non-air voxels within them, holes filled per slice); :func:`lung_crop` needs only the
lungs' bounding box, widened by one block for the voxels the reduction may have missed.

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
_MIN_BODY_SHARE = 0.01
"""A lung component holds at least this share of the body's voxels."""
_MIN_SECOND_SHARE = 0.1
"""The second-largest component is kept when it holds at least this share of the largest."""

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
    """Masks on the reduced grid: voxel (i, j, k) is the block [i*f:(i+1)*f, j*f:(j+1)*f, k]."""

    factor: int
    air: np.ndarray
    body: np.ndarray


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


def _coarse(volume: Volume, threshold_hu: float) -> _Coarse:
    """Air and the filled body on the reduced grid."""
    # At most one block per slice: a tiny voxel size must not pad the grid to a huge one.
    w, h = volume.shape[:2]
    factor = max(1, min(int(_WORK_MM // min(volume.spacing[0], volume.spacing[1])), max(w, h)))
    air = _reduce(volume.array < threshold_hu, factor)
    solid = ndimage.binary_opening(~air, _disk_mm(volume, factor, _OPEN_MM, air.shape))
    return _Coarse(factor, air, _fill_holes_per_slice(_largest(solid)))


def _coarse_lungs(coarse: _Coarse) -> np.ndarray:
    """The lungs on the reduced grid: the largest enclosed air components inside the body."""
    labels, count = ndimage.label(coarse.air)
    candidates = coarse.air & coarse.body & ~_on_border(labels, count)[labels]
    labels, count = ndimage.label(candidates)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    largest = np.argsort(sizes, kind="stable")[::-1][:2]
    floor = max(_MIN_BODY_SHARE * coarse.body.sum(), _MIN_SECOND_SHARE * sizes[largest[0]], 1)
    keep = np.zeros(count + 1, bool)
    keep[largest[sizes[largest] >= floor]] = True
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
    region = _expand(coarse.body, coarse.factor, volume.shape)
    return _fill_holes_per_slice(region & ~(volume.array < threshold_hu))


def lung_mask(volume: Volume, threshold_hu: float = -400.0) -> np.ndarray:
    """Bool mask of the lungs (with the vessels and lesions they enclose, and the trachea).

    ``volume`` must hold raw HU.

    Example:
        >>> from ct3d.data.synthetic import render_phantom
        >>> phantom = render_phantom(1, abnormal=False)
        >>> bool((lung_mask(phantom.volume) == phantom.lungs).mean() > 0.98)
        True
    """
    check_air_threshold(threshold_hu, "lung_mask")
    coarse = _coarse(volume, threshold_hu)
    lungs = _coarse_lungs(coarse)
    closed = ndimage.binary_closing(lungs, _disk_mm(volume, coarse.factor, _CLOSE_MM,
                                                    lungs.shape))
    near = ndimage.binary_dilation(lungs, np.ones((3, 3, 1), bool))
    found = _expand(near & coarse.body, coarse.factor, volume.shape)
    found &= volume.array < threshold_hu
    found |= _expand(closed & coarse.body, coarse.factor, volume.shape)
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


@preprocessor("lung_crop")
def lung_crop(margin_mm: float = 10.0, threshold_hu: float = -400.0) -> Step:
    """Crop all three axes to the lungs' bounding box plus a margin (raw HU, before windowing).

    The lungs are found as in :func:`lung_mask`; the box is clamped to the volume and the
    affine follows it. A scan without lungs is returned unchanged, with a warning naming it.

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
        lungs = _coarse_lungs(coarse)
        if not lungs.any():
            warnings.warn(f"lung_crop: no lungs found in {volume.source}; volume left uncropped",
                          stacklevel=2)
            return volume
        return crop(volume, *_lung_box(volume, coarse, lungs, margin_mm))

    return apply
