"""An augmentation chain: resolved steps, built once, applied to batches with one seed.

Example:
    >>> import numpy as np
    >>> augment = build_augment([{"name": "flip", "params": {"axes": [0]}}])
    >>> augment
    AugmentChain(flip(axes=(0,), prob=0.5))
    >>> tuple(augment(np.zeros((2, 8, 8, 4, 1), "float32"), [0, 1]).shape)
    (2, 8, 8, 4, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ct3d.augment import rng
from ct3d.registry import BuiltSteps, StepLike, resolve_step

__all__ = ["AugmentChain", "AugmentStep", "build_augment"]

AugmentStep = Callable[[Any, Any], Any]
"""A built augmentation step: ``step(x, seed) -> x`` on a batch ``(B, W, H, D, C)``."""


class AugmentChain(BuiltSteps):
    """Augmentation steps, resolved and built once: ``chain(x, seed) -> x``.

    Step ``i`` draws its randomness from ``seed`` (``int32[2]``) folded with ``i``
    (:func:`ct3d.augment.rng.fold_in`), so one seed fixes the whole chain on every backend.
    An empty chain returns ``x`` unchanged (and is falsy).
    """

    def __call__(self, x: Any, seed: Any) -> Any:
        """Apply every step to the batch ``x`` (a NumPy array or a tensor: the result is a
        tensor of the Keras backend), step ``i`` with ``fold_in(seed, i)``."""
        if not self.built:
            return x
        from keras import ops

        x = ops.convert_to_tensor(x)
        for i, step in enumerate(self.built):
            x = step(x, rng.fold_in(seed, i))
        return x


def build_augment(steps: Sequence[StepLike]) -> AugmentChain:
    """The augmentation chain of ``steps`` (names, ``{"name", "params"}`` dicts, scenario
    steps or resolved steps), each resolved once: unknown plugins and bad parameters fail
    here."""
    return AugmentChain([resolve_step("augment", step) for step in steps])
