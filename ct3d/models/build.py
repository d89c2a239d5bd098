"""Building a model from the registry, and what a model needs of its input.

Example:
    >>> build_model("modified_3dcnn", input_shape=(64, 64, 48, 1)).count_params()
    214817
    >>> min_input({"name": "densenet3d", "params": {"blocks": [2, 2]}})
    8
"""

from __future__ import annotations

from typing import Any

from ct3d.backend import import_keras
from ct3d.registry import MODELS, StepLike, resolve_step

__all__ = ["build_model", "min_input"]


def build_model(
    model: StepLike, input_shape: tuple[int, int, int, int], classes: int = 2, **params: Any
) -> Any:
    """The uncompiled Keras model of ``model`` (a plugin name, ``{"name", "params"}``, a
    scenario's model step or a resolved step) for inputs ``(W, H, D, C)`` and ``classes``.

    ``params`` override the step's parameters (``None`` means the default). Unknown names
    raise :class:`~ct3d.registry.UnknownPlugin` with a did-you-mean; bad parameters
    :class:`~ct3d.params.ParamError`.
    """
    step = resolve_step("model", model)
    import_keras()
    if params:
        step = MODELS.resolve(step.name, {**step.params, **params})
    return step.build(input_shape=tuple(input_shape), classes=classes)


def min_input(model: StepLike) -> int | None:
    """The smallest spatial size (W, H and D) the model accepts, as its builder declares it
    (None: not declared)."""
    step = resolve_step("model", model)
    rule = MODELS.describe(step.name).declared.get("min_input")
    return None if rule is None else int(rule(step.params))

