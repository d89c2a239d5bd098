"""Residual 3D networks (ResNet-10/18/34 with basic blocks), sized for CPU training.

Layer names follow ``keras.applications.ResNet``: the stem is ``conv1_*``, stage ``s`` block
``b`` is ``conv{s+1}_block{b}_*`` and each residual sum is a layer ``conv{s+1}_block{b}_add``.

Example:
    >>> from ct3d.models import build_model
    >>> model = build_model("resnet3d", input_shape=(64, 64, 48, 1), depth=10, width=8)
    >>> sum(layer.name.endswith("_add") for layer in model.layers)
    4
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ct3d.models.heads import (
    InputShape,
    check_common,
    check_dropout,
    finish,
    output_head,
    set_bn_momentum,
)
from ct3d.registry import model_builder

BLOCKS: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
}
STRIDES = (1, 2, 2, 2)
STEM_STRIDE = 4
MIN_INPUT = STEM_STRIDE * 2 ** sum(s == 2 for s in STRIDES)
"""The smallest spatial size (the network's total stride, 32)."""


def stem(x: Any, filters: int, name: str = "conv1") -> Any:
    """Conv3D(7, stride 2) -> BN -> ReLU -> MaxPool3D(3, stride 2): 4x smaller volume."""
    from keras import layers

    x = layers.Conv3D(filters, 7, strides=2, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    return layers.MaxPool3D(3, strides=2, padding="same", name=f"{name}_pool")(x)


def basic_block(x: Any, filters: int, stride: int, name: str) -> Any:
    """Two Conv3D(3)+BN with a ReLU between, added to the input, then ReLU.

    The shortcut is the identity, or a Conv3D(1, stride)+BN projection when the stride or
    the channel count changes.
    """
    from keras import layers

    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv3D(filters, 1, strides=stride, use_bias=False,
                                 name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv3D(filters, 3, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv3D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_2_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stage(x: Any, filters: int, blocks: int, stride: int, name: str) -> Any:
    """``blocks`` basic blocks; the first one applies ``stride``."""
    for b in range(1, blocks + 1):
        x = basic_block(x, filters, stride if b == 1 else 1, name=f"{name}_block{b}")
    return x


def resnet3d_model(
    input_shape: InputShape,
    classes: int,
    blocks: Sequence[int],
    width: int,
    dropout: float,
    name: str,
    weights: str | None = None,
) -> Any:
    """General residual 3D network: stem, 4 stages of basic blocks, GAP, dropout, head.

    Args:
        input_shape: ``(W, H, D, C)``; every spatial size >= 32 (the network's total stride).
        classes: 2 (one sigmoid unit) or more (softmax units).
        blocks: basic blocks in each of the 4 stages, each >= 1 (ResNet-18: ``(2, 2, 2, 2)``).
        width: filters of the stem and first stage (>= 1); stages use width x (1, 2, 4, 8).
        dropout: dropout rate before the output layer, in [0, 1).
        name: the model name.
        weights: ``None``, a local ``.weights.h5`` file or a ``.keras`` model (by layer name).
    """
    import keras
    from keras import layers

    check_common(input_shape, classes, weights, MIN_INPUT, name, "the network's total stride")
    if len(blocks) != len(STRIDES) or any(
        not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in blocks
    ):
        raise ValueError(f"`blocks` must be 4 integers >= 1; received blocks={blocks!r}")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"`width` must be an integer >= 1; received width={width!r}")
    check_dropout(dropout)

    inputs = keras.Input(shape=tuple(input_shape), name="scan")
    x = stem(inputs, width)
    for s, (n, stride) in enumerate(zip(blocks, STRIDES, strict=True)):
        x = stage(x, width * 2**s, n, stride, name=f"conv{s + 2}")
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return finish(inputs, output_head(x, classes), name, weights)


@model_builder("resnet3d", min_input=lambda _: MIN_INPUT)
def resnet3d(
    input_shape: InputShape = (128, 128, 64, 1),
    classes: int = 2,
    depth: Literal[10, 18, 34] = 18,
    width: int = 16,
    dropout: float = 0.2,
    bn_momentum: float = 0.99,
    weights: str | None = None,
) -> Any:
    """3D ResNet-10/18/34 (basic blocks, widths 16-32-64-128 by default), GAP, dropout.

    Args:
        input_shape: ``(W, H, D, C)``, set from the preprocessed data (reserved).
        classes: set from ``data.labels`` (reserved): 2 (one sigmoid unit) or more (softmax).
        depth: 10, 18 or 34 layers (basic blocks 1-1-1-1, 2-2-2-2 or 3-4-6-3 per stage).
        width: filters of the stem and first stage, >= 1; the 4 stages use width x 1, 2, 4, 8.
        dropout: dropout rate before the output layer, in [0, 1).
        bn_momentum: momentum of the BatchNormalization moving averages, in [0, 1). Lower
            values follow the weights faster over short runs (Keras default 0.99).
        weights: a local ``.weights.h5`` file of this model, or a ``.keras`` model whose
            layers are copied by name (e.g. ct3d pretrain's pretrained.keras); None: random
            initial weights. Nothing is downloaded.
    """
    if depth not in BLOCKS:
        raise ValueError(f"`depth` must be one of 10, 18, 34; received depth={depth!r}")
    return set_bn_momentum(resnet3d_model(input_shape, classes, BLOCKS[depth], width, dropout,
                                          "resnet3d", weights), bn_momentum)
