"""What a viewer shows: scans from any input, and their raw / preprocessed / augmented views.

A scan is a :class:`~ct3d.volume.Volume`, a 3D array, or a scan's path; a batch is a list of
those, or an array ``(B, W, H, D)`` / ``(B, W, H, D, C)`` (channel 0 is shown). A 4D array
whose last axis is 1 is one scan with a channel axis.

Example:
    >>> import numpy as np
    >>> len(as_volumes(np.zeros((3, 4, 4, 2)))), as_volumes(np.zeros((4, 4, 2, 1)))[0].shape
    (3, (4, 4, 2))
    >>> from ct3d.augment import build_augment
    >>> from ct3d.preprocess import build_preprocess
    >>> v = as_volumes(np.full((4, 4, 2), -300.0))[0]
    >>> chain = build_preprocess([{"name": "hu_window", "params": {"low": -1000, "high": 400}}])
    >>> views = pipeline_views(v, chain, build_augment([]))
    >>> [(view.name, float(view.volume.array.max())) for view in views]
    [('raw', -300.0), ('preprocessed', 0.5)]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ct3d.augment import AugmentChain
from ct3d.backend import import_keras
from ct3d.io import read_volume
from ct3d.preprocess import Chain
from ct3d.volume import Volume

__all__ = ["ScanInput", "View", "as_volumes", "augment_array", "pipeline_views"]

ScanInput = Volume | np.ndarray | str | os.PathLike | Sequence[Any]
"""A scan (Volume, array, scan path) or a batch of them (list, or 4D/5D array)."""


@dataclass(frozen=True)
class View:
    """One panel's volume: ``raw``, ``preprocessed`` or ``augmented``."""

    name: str
    volume: Volume


def _from_array(array: np.ndarray, source: str) -> Volume:
    if array.ndim != 3:
        raise ValueError(f"a scan must be 3D (W, H, D), got shape {array.shape}")
    return Volume(np.asarray(array, np.float32), (1.0, 1.0, 1.0), np.eye(4), source)


def _one(scan: Any, i: int) -> Volume:
    if isinstance(scan, Volume):
        return scan
    if isinstance(scan, (str, os.PathLike)):
        return read_volume(scan)
    array = np.asarray(scan)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    return _from_array(array, f"array {i}")


def as_volumes(scan: ScanInput) -> list[Volume]:
    """The scans of ``scan`` as Volumes (a one-item list for a single scan)."""
    if isinstance(scan, (list, tuple)):
        return [_one(s, i) for i, s in enumerate(scan)]
    if isinstance(scan, np.ndarray) and (scan.ndim == 5 or (scan.ndim == 4
                                                            and scan.shape[-1] != 1)):
        batch = scan[..., 0] if scan.ndim == 5 else scan
        return [_from_array(a, f"batch item {i}") for i, a in enumerate(batch)]
    return [_one(scan, 0)]


def augment_array(array: np.ndarray, augment: AugmentChain, seed: int) -> np.ndarray:
    """One scan augmented by the chain as in training (a batch of one, channel 1)."""
    ops = import_keras().ops
    x = ops.convert_to_tensor(array[None, ..., None].astype(np.float32))
    out = augment(x, ops.convert_to_tensor(np.array([seed, 0], np.int32)))
    return np.asarray(ops.convert_to_numpy(out))[0, ..., 0]


def pipeline_views(volume: Volume, preprocess: Chain, augment: AugmentChain,
                   seed: int = 0) -> list[View]:
    """``raw``, then ``preprocessed`` (if the chain has steps), then ``augmented`` (if the
    augmentation chain has steps)."""
    views = [View("raw", volume)]
    if preprocess:
        views.append(View("preprocessed", preprocess(volume)))
    if augment:
        last = views[-1].volume
        views.append(View("augmented",
                          last.replace(array=augment_array(last.array, augment, seed))))
    return views
