"""The parts (train / val / test) one model is trained and evaluated on, and what it learned.

Example::

    data = assemble_parts(scans, report, parts, need_val=True)
    data["train"].cached, data["train"].labels      # cache files and labels of the train part
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ct3d.data.cache import FillReport
from ct3d.data.dataset import Scan
from ct3d.data.pipeline import PipelineError

__all__ = ["PARTS", "FoldResult", "Part", "assemble_parts"]

PARTS = ("train", "val", "test")


@dataclass
class Part:
    """The usable scans of one part: cache files, labels, and the source files they came from."""

    cached: list[Path]
    labels: np.ndarray
    sources: list[str]


@dataclass
class FoldResult:
    """One trained model: its best checkpoint, per-epoch history, parts and their
    predicted probabilities (by part name)."""

    model: Any
    history: dict[str, list[float]]
    data: dict[str, Part]
    probs: dict[str, np.ndarray]


def assemble_parts(
    scans: Sequence[Scan], report: FillReport, parts: np.ndarray, need_val: bool
) -> dict[str, Part]:
    """Each part of one split without the scans that failed to preprocess (those are
    reported in ``split.csv``); an empty train part (or val part, when ``need_val``) is a
    :class:`~ct3d.data.pipeline.PipelineError`."""
    data = {}
    for part in PARTS:
        keep = [i for i in np.flatnonzero(parts == part) if report.paths[i] is not None]
        if keep:
            data[part] = Part([report.paths[i] for i in keep],
                              np.array([scans[i].label for i in keep]),
                              [scans[i].path for i in keep])
    needed = ["train"] + (["val"] if need_val else [])
    missing = [p for p in needed if p not in data]
    if missing:
        raise PipelineError(f"no usable scans left in part(s) {', '.join(missing)} "
                            f"({len(report.failures)} scan(s) failed to preprocess)")
    return data
