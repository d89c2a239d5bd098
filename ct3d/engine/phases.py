"""Fine-tuning phases: the feature extractor frozen for ``train.freeze_epochs``, then all.

A model's *feature extractor* is what a pretrained start provides: a slice model's
per-slice encoder (:mod:`ct3d.models.slices`), or for a 3D model every layer before its
global pooling. During the frozen phase only the layers after it (aggregation, dense
layers, the output) train; then everything trains with the learning rate times
``train.finetune_lr_scale``, its schedule restarted over the remaining epochs.

Example:
    >>> from ct3d.models import build_model
    >>> model = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1))
    >>> [layer.name for layer in feature_extractor(model)][-1]
    'block4_bn'
    >>> set_frozen(model, True); is_frozen(model), len(model.trainable_weights)
    (True, 4)
"""

from __future__ import annotations

from typing import Any

import keras

from ct3d.augment.device import DeviceAugment
from ct3d.models.slices import SLICE_LAYER

__all__ = ["feature_extractor", "is_frozen", "phases", "set_frozen"]

POOLING = (keras.layers.GlobalAveragePooling3D, keras.layers.GlobalMaxPooling3D)


def feature_extractor(model: Any) -> list[Any]:
    """The layers frozen in the first phase (see the module docstring).

    Raises:
        ValueError: the model has neither a per-slice encoder nor a global pooling layer.
    """
    names = [layer.name for layer in model.layers]
    if SLICE_LAYER in names:
        return [model.get_layer(SLICE_LAYER)]
    pooling = next((i for i, layer in enumerate(model.layers) if isinstance(layer, POOLING)),
                   None)
    if pooling is None:
        raise ValueError(f"train.freeze_epochs: model {model.name!r} has no per-slice encoder "
                         f"and no global pooling layer, so ct3d cannot tell its feature "
                         f"extractor from its head")
    return [layer for layer in model.layers[:pooling]
            if layer.weights and not isinstance(layer, DeviceAugment)]


def set_frozen(model: Any, frozen: bool) -> None:
    """Freeze (or unfreeze) the model's feature extractor; recompile the model afterwards."""
    for layer in feature_extractor(model):
        layer.trainable = not frozen


def is_frozen(model: Any) -> bool:
    """Whether the model's feature extractor is frozen (as saved with it)."""
    return not any(layer.trainable for layer in feature_extractor(model))


def phases(epochs: int, freeze_epochs: int) -> list[tuple[int, bool]]:
    """The training phases as (last epoch + 1, frozen), in order; empty phases left out.

    Example:
        >>> phases(30, 5), phases(30, 0), phases(5, 5)
        ([(5, True), (30, False)], [(30, False)], [(5, True)])
    """
    found = [(min(freeze_epochs, epochs), True), (epochs, False)]
    starts = [0, min(freeze_epochs, epochs)]
    return [phase for phase, start in zip(found, starts, strict=True) if phase[0] > start]
