"""The thesis' two plain 3D CNNs: the Keras example's baseline and the thesis' modified net."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ct3d.models.heads import InputShape, check_common, finish, output_head
from ct3d.registry import model_builder


def conv_block(x: Any, filters: int, dropout: float, bn_momentum: float, name: str) -> Any:
    """Conv3D(3, ReLU, valid) -> MaxPool3D(2) -> BatchNorm [-> Dropout]."""
    from keras import layers

    x = layers.Conv3D(filters, 3, activation="relu", name=f"{name}_conv")(x)
    x = layers.MaxPool3D(2, name=f"{name}_pool")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def plain_minimum(blocks: int) -> int:
    """The smallest spatial size ``blocks`` valid 3x3x3 conv + 2x pool blocks accept (46 for 4).

    Example:
        >>> plain_minimum(4)
        46
    """
    return 3 * 2**blocks - 2


def cnn3d(
    input_shape: InputShape,
    filters: Sequence[int],
    block_dropout: Sequence[float],
    head_dropout: float,
    dense_units: int,
    bn_momentum: float,
    name: str,
    classes: int = 2,
    weights: str | None = None,
) -> Any:
    """General plain 3D CNN: conv blocks, global average pooling, one dense layer, head.

    Args:
        input_shape: ``(W, H, D, C)``; every spatial size >= ``3 * 2**len(filters) - 2``.
        filters: filters of each conv block (valid 3x3x3 conv, then 2x max pooling).
        block_dropout: dropout rate after each block (0 = no dropout layer).
        head_dropout: dropout rate before the output layer.
        dense_units: units of the ReLU dense layer after global average pooling.
        bn_momentum: batch-normalization momentum.
        name: the model name.
        classes: 2 (one sigmoid unit) or more (softmax units).
        weights: ``None``, a local ``.weights.h5`` file or a ``.keras`` model (by layer name).
    """
    import keras
    from keras import layers

    check_common(input_shape, classes, weights, plain_minimum(len(filters)), name,
                 f"{len(filters)} valid conv + pool blocks")
    inputs = keras.Input(shape=tuple(input_shape), name="scan")
    x = inputs
    for i, (f, d) in enumerate(zip(filters, block_dropout, strict=True), start=1):
        x = conv_block(x, f, d, bn_momentum, name=f"block{i}")
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(head_dropout, name="head_dropout")(x)
    return finish(inputs, output_head(x, classes), name, weights)


@model_builder("baseline_3dcnn", min_input=lambda _: plain_minimum(4))
def baseline_3dcnn(
    input_shape: InputShape = (128, 128, 64, 1),
    classes: int = 2,
    dropout: float = 0.3,
    bn_momentum: float = 0.99,
    weights: str | None = None,
) -> Any:
    """Keras example 3D CNN: filters 64-64-128-256, dense 512 (1,352,897 parameters).

    Args:
        input_shape: ``(W, H, D, C)``, set from the preprocessed data (reserved).
        classes: set from ``data.labels`` (reserved): 2 (one sigmoid unit) or more (softmax).
        dropout: dropout rate before the output layer, in [0, 1).
        bn_momentum: momentum of the BatchNormalization moving averages, in [0, 1). Lower
            values follow the weights faster over short runs (Keras default 0.99).
        weights: a local ``.weights.h5`` file of this model, or a ``.keras`` model whose
            layers are copied by name (e.g. ct3d pretrain's pretrained.keras); None: random
            initial weights. Nothing is downloaded.
    """
    return cnn3d(input_shape, (64, 64, 128, 256), (0.0,) * 4, dropout, 512, bn_momentum,
                 "baseline_3dcnn", classes, weights)


@model_builder("modified_3dcnn", min_input=lambda _: plain_minimum(4))
def modified_3dcnn(
    input_shape: InputShape = (128, 128, 64, 1),
    classes: int = 2,
    dropout: float = 0.1,
    head_dropout: float = 0.2,
    bn_momentum: float = 0.99,
    weights: str | None = None,
) -> Any:
    """Thesis 3D CNN: filters 16-32-64-64, block dropout, dense 512 (214,817 parameters).

    Args:
        input_shape: ``(W, H, D, C)``, set from the preprocessed data (reserved).
        classes: set from ``data.labels`` (reserved): 2 (one sigmoid unit) or more (softmax).
        dropout: dropout rate after conv blocks 2 to 4, in [0, 1).
        head_dropout: dropout rate before the output layer, in [0, 1).
        bn_momentum: momentum of the BatchNormalization moving averages, in [0, 1). Lower
            values follow the weights faster over short runs (Keras default 0.99).
        weights: a local ``.weights.h5`` file of this model, or a ``.keras`` model whose
            layers are copied by name (e.g. ct3d pretrain's pretrained.keras); None: random
            initial weights. Nothing is downloaded.
    """
    return cnn3d(
        input_shape, (16, 32, 64, 64), (0.0, dropout, dropout, dropout), head_dropout, 512,
        bn_momentum, "modified_3dcnn", classes, weights,
    )
