"""A small 3D DenseNet-BC: bottleneck dense layers, compressing transitions, GAP head.

Layer names follow ``keras.applications.DenseNet``: dense block ``i`` layer ``j`` is
``conv{i+1}_block{j}_*`` and ends in the concatenation ``conv{i+1}_block{j}_concat`` (so the
last one is the block's output); transition ``i`` is ``pool{i+1}_*``.

Example:
    >>> from ct3d.models import build_model
    >>> model = build_model("densenet3d", input_shape=(32, 32, 32, 1), blocks=(2, 2))
    >>> model.get_layer("conv2_block2_concat").output.shape[-1]  # width + 2 * growth
    48
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ct3d.models.heads import InputShape, check_common, check_dropout, finish, output_head
from ct3d.models.resnet3d import STEM_STRIDE, stem
from ct3d.registry import model_builder


def dense_layer(x: Any, growth: int, name: str) -> Any:
    """BN-ReLU-Conv3D(1, 4*growth)-BN-ReLU-Conv3D(3, growth), concatenated to the input."""
    from keras import layers

    y = layers.BatchNormalization(name=f"{name}_0_bn")(x)
    y = layers.Activation("relu", name=f"{name}_0_relu")(y)
    y = layers.Conv3D(4 * growth, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv3D(growth, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def dense_block(x: Any, layers_in_block: int, growth: int, name: str) -> Any:
    """``layers_in_block`` dense layers: adds ``layers_in_block * growth`` channels."""
    for j in range(1, layers_in_block + 1):
        x = dense_layer(x, growth, name=f"{name}_block{j}")
    return x


def transition(x: Any, filters: int, name: str) -> Any:
    """BN-ReLU-Conv3D(1, filters)-AveragePooling3D(2): halves every spatial size."""
    from keras import layers

    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv3D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling3D(2, name=f"{name}_pool")(x)


def densenet_minimum(blocks: Sequence[int]) -> int:
    """The smallest spatial size: stem stride 4, then a 2x pooling transition between blocks.

    Example:
        >>> densenet_minimum((4, 4, 4))
        16
    """
    return STEM_STRIDE * 2 ** max(len(blocks) - 1, 0)


def densenet3d_model(
    input_shape: InputShape,
    classes: int,
    blocks: Sequence[int],
    growth: int,
    width: int,
    compression: float,
    dropout: float,
    name: str,
    weights: str | None = None,
) -> Any:
    """General 3D DenseNet-BC: stem, dense blocks with transitions between, GAP, dropout, head.

    Args:
        input_shape: ``(W, H, D, C)``; every spatial size >= ``4 * 2**(len(blocks) - 1)``.
        classes: 2 (one sigmoid unit) or more (softmax units).
        blocks: dense layers in each dense block, each >= 1 (at least one block).
        growth: channels each dense layer adds (>= 1).
        width: filters of the stem convolution (>= 1).
        compression: fraction of channels a transition keeps, in (0, 1].
        dropout: dropout rate before the output layer, in [0, 1).
        name: the model name.
        weights: ``None``, a local ``.weights.h5`` file or a ``.keras`` model (by layer name).
    """
    import keras
    from keras import layers

    if not blocks or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in blocks):
        raise ValueError(f"`blocks` must be one or more integers >= 1; received blocks={blocks!r}")
    check_common(input_shape, classes, weights, densenet_minimum(blocks), name,
                 f"stem stride 4 and {len(blocks) - 1} pooling transitions")
    for param, value in (("growth", growth), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{param}` must be an integer >= 1; received {param}={value!r}")
    if (
        not isinstance(compression, (int, float)) or isinstance(compression, bool)
        or not 0 < compression <= 1
    ):
        raise ValueError(f"`compression` must be in (0, 1]; received compression={compression!r}")
    check_dropout(dropout)

    inputs = keras.Input(shape=tuple(input_shape), name="scan")
    x = stem(inputs, width)
    for i, n in enumerate(blocks, start=1):
        x = dense_block(x, n, growth, name=f"conv{i + 1}")
        if i < len(blocks):
            x = transition(x, max(1, int(x.shape[-1] * compression)), name=f"pool{i + 1}")
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return finish(inputs, output_head(x, classes), name, weights)


@model_builder("densenet3d", min_input=lambda p: densenet_minimum(p["blocks"]))
def densenet3d(
    input_shape: InputShape = (128, 128, 64, 1),
    classes: int = 2,
    blocks: tuple[int, ...] = (4, 4, 4),
    growth: int = 12,
    width: int = 24,
    compression: float = 0.5,
    dropout: float = 0.2,
    weights: str | None = None,
) -> Any:
    """Small 3D DenseNet-BC: dense blocks 4-4-4, growth 12, compression 0.5, GAP, dropout.

    Args:
        input_shape: ``(W, H, D, C)``, set from the preprocessed data (reserved).
        classes: set from ``data.labels`` (reserved): 2 (one sigmoid unit) or more (softmax).
        blocks: dense layers in each dense block, each >= 1 (at least one block).
        growth: channels each dense layer adds, >= 1.
        width: filters of the stem convolution, >= 1.
        compression: fraction of channels a transition between blocks keeps, in (0, 1].
        dropout: dropout rate before the output layer, in [0, 1).
        weights: a local ``.weights.h5`` file of this model, or a ``.keras`` model whose
            layers are copied by name (e.g. ct3d pretrain's pretrained.keras); None: random
            initial weights. Nothing is downloaded.
    """
    return densenet3d_model(input_shape, classes, blocks, growth, width, compression, dropout,
                            "densenet3d", weights)
