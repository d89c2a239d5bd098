"""Preprocessing: registered plugins mapping a :class:`~ct3d.volume.Volume` to a Volume.

A preprocessor plugin is a function of keyword parameters returning a :data:`Step`; a chain
is a list of ``{"name": ..., "params": {...}}`` entries built once and applied per scan.

Example:
    >>> import numpy as np
    >>> from ct3d.volume import Volume
    >>> chain = build_chain([{"name": "hu_window", "params": {"low": -1000, "high": 400}}])
    >>> v = Volume(np.full((2, 2, 2), -300, np.float32), (1.0, 1.0, 1.0), np.eye(4), "demo")
    >>> float(apply_chain(v, chain).array[0, 0, 0])
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ct3d.preprocess import chains, geometry, intensity, lung
from ct3d.registry import PREPROCESSORS
from ct3d.volume import Step, Volume

__all__ = ["Step", "apply_chain", "build_chain", "chains", "geometry", "intensity", "lung"]


def build_chain(steps: Sequence[dict[str, Any]]) -> list[Step]:
    """Create each step of a chain from its name and parameters (validated)."""
    return [PREPROCESSORS.create(s["name"], **(s.get("params") or {})) for s in steps]


def apply_chain(volume: Volume, chain: Sequence[Step]) -> Volume:
    """Apply the steps in order."""
    for step in chain:
        volume = step(volume)
    return volume
