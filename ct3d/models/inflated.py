"""``inflated3d``: ResNet-50 made 3D, its kernels inflated from a 2D (ImageNet) ResNet-50.

The I3D recipe (Carreira & Zisserman 2017): every 2D kernel ``k x k`` becomes
``k x k x t`` by repeating it ``t`` times along depth and dividing by ``t``, so that a
volume of identical slices gives the 2D network's activations (away from the first and
last slices, where depth padding enters); BatchNorm parameters are copied. Layer names
are those of ``keras.applications.ResNet50`` (``conv1_conv``, ``conv2_block1_1_conv``, ...),
which is how weights find their layer. The grey scan is repeated to 3 channels and scaled
as ResNet-50 expects (:func:`~ct3d.models.backbones.scaling_layer`), so ImageNet kernels
see the range they were trained on. ``stages`` keeps the first 1-4 residual stages only:
a smaller, faster network that still starts from the pretrained kernels.

Example:
    >>> from ct3d.models import build_model
    >>> model = build_model("inflated3d", input_shape=(32, 32, 16, 1), stages=2)
    >>> tuple(model.get_layer("conv1_conv").kernel.shape), model.output_shape
    ((7, 7, 3, 3, 64), (None, 1))
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ct3d.models.backbones import WeightsNotFound, application, scaling_layer
from ct3d.models.heads import (
    WEIGHTS_SUFFIX,
    InputShape,
    check_classes,
    check_dropout,
    check_input_shape,
    output_head,
    set_bn_momentum,
)
from ct3d.models.loading import load_by_name, load_model
from ct3d.registry import model_builder

__all__ = ["inflate_into"]

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
"""ResNet-50's residual stages: (filters, bottleneck blocks, stride)."""
_EPSILON = 1.001e-5  # keras.applications.ResNet50's BatchNormalization epsilon


def _min_input(params: dict[str, Any]) -> int:
    return 4 * 2 ** (int(params["stages"]) - 1)


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, depth_kernel: int, name: str,
             relu: bool = True, padding: str = "same") -> Any:
    """Conv3D (k x k x depth_kernel, or 1 x 1 x 1) -> BN [-> ReLU], keras.applications names.
    Padding as ResNet50's: explicit before the stem, ``same`` elsewhere (equal to its
    ``valid`` for the 1 x 1 convolutions)."""
    from keras import layers

    size = (kernel, kernel, depth_kernel if kernel > 1 else 1)
    x = layers.Conv3D(filters, size, strides=stride, padding=padding, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _bottleneck(x: Any, filters: int, stride: int, shortcut: bool, depth_kernel: int,
                name: str) -> Any:
    from keras import layers

    skip = (_conv_bn(x, 4 * filters, 1, stride, depth_kernel, f"{name}_0", relu=False)
            if shortcut else x)
    x = _conv_bn(x, filters, 1, stride, depth_kernel, f"{name}_1")
    x = _conv_bn(x, filters, 3, 1, depth_kernel, f"{name}_2")
    x = _conv_bn(x, 4 * filters, 1, 1, depth_kernel, f"{name}_3", relu=False)
    x = layers.Add(name=f"{name}_add")([skip, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def inflate_into(model: Any, source: Any) -> int:
    """Copy a 2D network's weights into ``model`` by layer name, inflating 2D kernels.

    A 2D kernel ``(kh, kw, cin, cout)`` meeting a 3D one ``(kh, kw, t, cin, cout)`` is
    repeated ``t`` times along depth and divided by ``t``; every other weight with the
    same shape (biases, BatchNorm) is copied. Returns how many layers were loaded.

    Raises:
        ValueError: no layer of ``source`` matches one of ``model``.

    Example:
        >>> import keras
        >>> src = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.Conv2D(
        ...     1, 3, kernel_initializer="ones", name="c")])
        >>> dst = keras.Sequential([keras.Input((5, 5, 5, 1)), keras.layers.Conv3D(
        ...     1, (3, 3, 2), name="c")])
        >>> inflate_into(dst, src), float(dst.get_layer("c").kernel.numpy().sum())
        (1, 9.0)
    """
    found = {layer.name: layer for layer in source.layers if layer.weights}
    loaded = 0
    for layer in model.layers:
        match = found.get(layer.name)
        if match is None or not layer.weights:
            continue
        values = []
        for target, value in zip(layer.weights, match.get_weights(), strict=False):
            shape = tuple(target.shape)
            if value.ndim == 4 and len(shape) == 5:
                depth = shape[2]
                value = np.repeat(value[:, :, None], depth, axis=2) / depth
            values.append(value)
        if [v.shape for v in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
            loaded += 1
    if not loaded:
        raise ValueError(f"no layer of {source.name!r} matches a layer of {model.name!r} by "
                         f"name and shape")
    return loaded


def _load(model: Any, weights: str) -> None:
    """``imagenet`` or a local file: 2D ResNet-50 weights (inflated) or 3D ones (copied)."""
    if weights == "imagenet":
        inflate_into(model, application("ResNet50", 32, 3, imagenet=True))
        return
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsNotFound(f"weights file not found: {str(path)!r} (weights is 'imagenet', "
                              f"or a local {WEIGHTS_SUFFIX} or .keras file)")
    if path.suffix == ".keras":
        saved = load_model(path, compile=False)
        if any(len(w.shape) == 4 for w in saved.weights):
            inflate_into(model, saved)
        else:
            load_by_name(model, path)
        return
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"weights must be 'imagenet', a {WEIGHTS_SUFFIX} or a .keras file; "
                         f"received {weights!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns of each group it cannot match
            model.load_weights(str(path))
    except ValueError:
        flat = application("ResNet50", 32, 3, imagenet=False)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flat.load_weights(str(path))
        except ValueError as exc:
            raise ValueError(f"{path}: neither inflated3d weights of this configuration nor "
                             f"a 2D ResNet50 (include_top=False) .weights.h5 ({exc})") from None
        inflate_into(model, flat)


@model_builder("inflated3d", min_input=_min_input)
def inflated3d(
    input_shape: InputShape = (128, 128, 64, 1),
    classes: int = 2,
    stages: Literal[1, 2, 3, 4] = 4,
    depth_kernel: Literal[1, 3] = 3,
    dropout: float = 0.2,
    bn_momentum: float = 0.99,
    weights: str | None = None,
) -> Any:
    """3D ResNet-50 whose kernels are inflated from a 2D ResNet-50 (I3D), GAP, dropout.

    Args:
        input_shape: ``(W, H, D, 1)``, set from the preprocessed data (reserved).
        classes: set from ``data.labels`` (reserved): 2 (one sigmoid unit) or more (softmax).
        stages: residual stages of ResNet-50 kept, 1-4 (fewer: smaller and faster).
        depth_kernel: depth of the inflated k x k kernels (k > 1): 3, or 1 (slice-wise
            convolutions; only the strides mix slices).
        dropout: dropout rate before the output layer, in [0, 1).
        bn_momentum: momentum of the BatchNormalization moving averages, in [0, 1). Lower
            values follow the weights faster over short runs (Keras default 0.99).
        weights: None (random), imagenet (Keras' ResNet50 download and cache, inflated), or
            a local file: a 2D ResNet50 .weights.h5 / .keras (inflated) or an inflated3d
            .weights.h5 / 3D .keras (copied by layer name, head dropped).
    """
    import keras
    from keras import layers

    check_input_shape(input_shape, _min_input({"stages": stages}), "inflated3d",
                      "the network's total stride")
    check_classes(classes)
    check_dropout(dropout)
    if input_shape[-1] != 1:
        raise ValueError(f"inflated3d takes 1-channel scans; received input_shape="
                         f"{tuple(input_shape)}")
    inputs = keras.Input(tuple(input_shape), name="scan")
    x = layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
    x = scaling_layer("ResNet50", 3)(x)
    x = layers.ZeroPadding3D(((3, 3), (3, 3), (depth_kernel // 2,) * 2), name="conv1_pad")(x)
    x = _conv_bn(x, 64, 7, 2, depth_kernel, "conv1", padding="valid")
    x = layers.ZeroPadding3D(1, name="pool1_pad")(x)
    x = layers.MaxPool3D(3, strides=2, name="pool1_pool")(x)
    for s, (filters, blocks, stride) in enumerate(STAGES[:stages], start=2):
        for b in range(1, blocks + 1):
            x = _bottleneck(x, filters, stride if b == 1 else 1, b == 1, depth_kernel,
                            f"conv{s}_block{b}")
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    model = set_bn_momentum(keras.Model(inputs, output_head(x, classes), name="inflated3d"),
                            bn_momentum)
    if weights is not None:
        _load(model, weights)
    return model
