"""A preprocessing chain: resolved steps, built once, applied in order to each Volume.

:func:`build_preprocess` is the one way to turn chain steps (as a scenario, a widget or a
user writes them) into something that preprocesses a scan; :func:`output_shape` says, before
any scan is read, what shape the chain gives when its steps declare it.

Example:
    >>> import numpy as np
    >>> from ct3d.volume import Volume
    >>> chain = build_preprocess([{"name": "hu_window", "params": {"low": -1000, "high": 400}},
    ...                           "rotate90"])
    >>> chain
    Chain(hu_window(low=-1000.0, high=400.0), rotate90(k=1))
    >>> v = Volume(np.full((2, 3, 2), -300, np.float32), (1.0, 1.0, 1.0), np.eye(4), "demo")
    >>> out = chain(v)
    >>> out.shape, float(out.array[0, 0, 0])
    ((3, 2, 2), 0.5)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ct3d.registry import PREPROCESSORS, BuiltSteps, StepLike, resolve_step
from ct3d.volume import Shape, Volume

__all__ = ["Chain", "ShapeRule", "build_preprocess", "keeps_shape", "output_shape"]

ShapeRule = Callable[[Shape | None, Mapping[str, Any]], Shape | None]
"""A preprocessor's ``output_shape`` declaration: ``rule(shape, params) -> shape | None``,
the (W, H, D) a step gives for an input of ``shape`` (None: unknown) and its resolved
``params``; None when the output depends on the scan's content or spacing."""


def keeps_shape(shape: Shape | None, params: Mapping[str, Any]) -> Shape | None:
    """The ``output_shape`` of a step that keeps the volume's shape (e.g. ``hu_window``)."""
    return shape


class Chain(BuiltSteps):
    """Preprocessing steps, resolved and built once: ``chain(volume) -> volume``."""

    def __call__(self, volume: Volume) -> Volume:
        """Apply every step in order."""
        for step in self.built:
            volume = step(volume)
        return volume


def build_preprocess(steps: Sequence[StepLike]) -> Chain:
    """The chain of ``steps`` (names, ``{"name", "params"}`` dicts, scenario steps or
    resolved steps), each resolved once: unknown plugins and bad parameters fail here."""
    return Chain([resolve_step("preprocess", step) for step in steps])


def output_shape(steps: Sequence[StepLike], shape: Shape | None = None) -> Shape | None:
    """The (W, H, D) the chain gives for scans of ``shape`` (None: any), or None when a
    step's output depends on the scan and no later step fixes the shape.

    Example:
        >>> resize = {"name": "resize", "params": {"shape": [64, 48, 32]}}
        >>> output_shape(["lung_crop", resize, {"name": "rotate90", "params": {"k": 1}}])
        (48, 64, 32)
        >>> output_shape(["resize", "lung_crop"]) is None
        True
    """
    for step in steps:
        resolved = resolve_step("preprocess", step)
        rule = PREPROCESSORS.describe(resolved.name).declared.get("output_shape")
        shape = None if rule is None else rule(shape, resolved.params)
        shape = None if shape is None else tuple(int(s) for s in shape)
    return shape
