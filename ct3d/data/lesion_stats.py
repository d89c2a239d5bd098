"""Per-scan statistics of a lesion mask, to hold a synthetic cohort against real masks.

Four numbers describe the lesions of one scan, as they were measured on MosMedData's 50
CT-1 masks (studies 0255-0304, 512 x 512 x 33-53 slices of 8 mm):

- ``volume_ml``: the lesion volume;
- ``components``: the lesions larger than 1 ml (connected in 3D, faces, edges or corners);
- ``largest_ml``: the largest lesion;
- ``slice_share``: the share of the scan's slices that hold lesion.

:func:`lesion_stats` measures one mask, :func:`folder_lesion_stats` every ``*_mask`` file
under a folder (``ct3d lesions DIR``), and :func:`summarize` gives each number's
percentiles over a cohort, laid out as :data:`MOSMED_CT1`, the real column.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((64, 64, 10), np.uint8)
    >>> mask[10:30, 10:30, 2:5] = 1              # 20 x 20 x 3 voxels of 1 x 1 x 8 mm
    >>> mask[40:45, 40:45, 6] = 1                # 0.2 ml: not counted as a component
    >>> stats = lesion_stats(mask, (1.0, 1.0, 8.0))
    >>> stats["volume_ml"], stats["components"], stats["largest_ml"], stats["slice_share"]
    (9.8, 1, 9.6, 0.4)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from ct3d.errors import Ct3dError

__all__ = ["LESION_STATS", "MOSMED_CT1", "MOSMED_CT1_SOURCE", "MaskFolderError",
           "folder_lesion_stats",
           "format_summary", "lesion_stats", "summarize"]

LESION_STATS = ("volume_ml", "components", "largest_ml", "slice_share")
"""The per-scan numbers, in the order tables show them."""
_LABELS = {"volume_ml": "lesion volume, ml", "components": "lesion components > 1 ml",
           "largest_ml": "largest component, ml", "slice_share": "share of slices holding lesion"}
_MIN_COMPONENT_ML = 1.0

MOSMED_CT1: dict[str, tuple[float, float, float, float, float]] = {
    "volume_ml": (26.0, 66.0, 109.0, 0.4, 536.0),
    "components": (2.0, 5.5, 8.0, 0.0, 21.0),
    "largest_ml": (14.0, 25.0, 76.0, 0.4, 219.0),
    "slice_share": (0.3, 0.4, 0.5, 0.0, 0.8),
}
"""Per-scan (p25, median, p75, min, max) of MosMedData's 50 CT-1 lesion masks."""
MOSMED_CT1_SOURCE = ("MosMedData CT-1 lesion masks, studies 0255-0304 (CC BY-NC-ND 3.0; "
                     "ct3d holds these numbers only, no masks)")


class MaskFolderError(Ct3dError, FileNotFoundError):
    """A folder that is missing or holds no ``*_mask`` file."""


def lesion_stats(mask: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """The four numbers of the module doc for one ``mask`` (non-zero: lesion) of voxel size
    ``spacing`` (mm)."""
    lesion = np.asarray(mask) != 0
    voxel_ml = math.prod(float(s) for s in spacing) / 1000.0
    labels, count = ndimage.label(lesion, np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:] * voxel_ml
    return {
        "volume_ml": round(float(lesion.sum() * voxel_ml), 3),
        "components": int((sizes > _MIN_COMPONENT_ML).sum()),
        "largest_ml": round(float(sizes.max()) if count else 0.0, 3),
        "slice_share": round(float(lesion.any(axis=(0, 1)).mean()), 4),
    }


def folder_lesion_stats(folder: str | os.PathLike[str]) -> list[dict[str, object]]:
    """:func:`lesion_stats` of every ``*_mask`` scan file under ``folder`` (any format
    ``ct3d.read_volume`` reads), with its path relative to ``folder``, sorted by path.

    Raises:
        MaskFolderError: ``folder`` does not exist or holds no mask file.
        ScanError: a mask file cannot be read.
    """
    from ct3d.io import SCAN_SUFFIXES, read_volume

    root = Path(folder)
    if root.is_file():
        raise MaskFolderError(f"{root}: a file, not a folder of *_mask files")
    if not root.is_dir():
        raise MaskFolderError(f"{root}: no such folder")
    masks = sorted(p for p in root.rglob("*") if p.is_file() and any(
        p.name.lower().endswith(f"_mask{suffix}") for suffix in SCAN_SUFFIXES))
    if not masks:
        raise MaskFolderError(f"{root}: no *_mask files (e.g. study_0001_mask.nii.gz) here")
    rows: list[dict[str, object]] = []
    for path in masks:
        volume = read_volume(path, hu=False)
        rows.append({"path": path.relative_to(root).as_posix(),
                     **lesion_stats(volume.array, volume.spacing)})
    return rows


def summarize(rows: Sequence[Mapping[str, object]]) -> dict[str, tuple[float, ...]]:
    """Each number's (p25, median, p75, min, max) over ``rows`` (as :data:`MOSMED_CT1`)."""
    summary = {}
    for name in LESION_STATS:
        values = np.array([float(row[name]) for row in rows])  # type: ignore[arg-type]
        p25, p50, p75 = np.percentile(values, [25, 50, 75])
        summary[name] = (float(p25), float(p50), float(p75), float(values.min()),
                         float(values.max()))
    return summary


def format_summary(summary: Mapping[str, tuple[float, ...]], title: str,
                   reference: Mapping[str, tuple[float, ...]] | None = MOSMED_CT1) -> str:
    """A Markdown table of a :func:`summarize` result, beside ``reference`` (the real CT-1
    column by default; None for none): p25 / median / p75 (min-max) per number.

    Example:
        >>> print(format_summary({k: (1, 2, 3, 0, 4) for k in LESION_STATS}, "mine", None))
        | per scan | mine: p25 / median / p75 (min-max) |
        |---|---|
        | lesion volume, ml | 1 / **2** / 3 (0-4) |
        | lesion components > 1 ml | 1 / **2** / 3 (0-4) |
        | largest component, ml | 1 / **2** / 3 (0-4) |
        | share of slices holding lesion | 1 / **2** / 3 (0-4) |
    """
    def cell(values: Sequence[float]) -> str:
        p25, p50, p75, low, high = (f"{v:.3g}" for v in values)
        return f"{p25} / **{p50}** / {p75} ({low}-{high})"

    head = f"| per scan | {title}: p25 / median / p75 (min-max) |"
    rule = "|---|---|"
    if reference is not None:
        head += " real CT-1 masks: p25 / median / p75 (min-max) |"
        rule += "---|"
    lines = [head, rule]
    for name in LESION_STATS:
        line = f"| {_LABELS[name]} | {cell(summary[name])} |"
        if reference is not None:
            line += f" {cell(reference[name])} |"
        lines.append(line)
    return "\n".join(lines)
