"""Slice models: a 2D backbone on every axial slice, then an aggregation over the slices.

They take the same ``(W, H, D, C)`` scans as the 3D models, so the data pipeline, cache,
augmentation and evaluation do not change. ``slice2d`` feeds each slice (grey repeated to
3 channels for ``keras.applications`` backbones) to the backbone; ``slice25d`` feeds 3
adjacent slices as the 3 channels (edge slices repeated). Slices are resized to
``slice_size`` when it is set. The per-slice features are then aggregated:

* ``mean`` / ``max``: average or maximum over slices;
* ``attention``: gated attention pooling (attention-MIL, Ilse et al. 2018): a softmax
  weight per slice, from ``w . (tanh(V h) * sigmoid(U h))``; the weights are the output of
  the layer ``slice_attention`` and :func:`slice_weights` returns them after prediction;
* ``gru``: a bidirectional GRU over the slice sequence (a small recurrent aggregator).

With pretrained ``weights`` the backbone runs in inference mode (its BatchNorm statistics
frozen, also while fine-tuning: the Keras transfer-learning convention).

Example:
    >>> from ct3d.models import build_model
    >>> model = build_model("slice2d", input_shape=(32, 32, 6, 1), aggregation="attention")
    >>> model.output_shape, slice_weights(model, np.zeros((2, 32, 32, 6, 1))).shape
    ((None, 1), (2, 6))
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ct3d.models.backbones import backbone_min_size, build_backbone, scaling_layer
from ct3d.models.heads import (
    InputShape,
    check_classes,
    check_dropout,
    check_input_shape,
    output_head,
    set_bn_momentum,
)
from ct3d.registry import model_builder

__all__ = ["slice_weights"]

Aggregation = Literal["mean", "max", "attention", "gru"]
ATTENTION_LAYER = "slice_attention"
SLICE_LAYER = "per_slice"
"""The layer that applies the 2D encoder (resize, scaling, backbone) to every slice."""


def slice_weights(model: Any, x: np.ndarray, batch_size: int = 4) -> np.ndarray | None:
    """Each slice's attention weight (rows sum to 1) for scans ``x`` (B, W, H, D, C).

    None for a model without a ``slice_attention`` layer (any aggregation but attention).
    """
    import keras

    names = {layer.name for layer in model.layers}
    if ATTENTION_LAYER not in names:
        return None
    probe = keras.Model(model.inputs, model.get_layer(ATTENTION_LAYER).output)
    return np.asarray(probe.predict(np.asarray(x, np.float32), batch_size=batch_size,
                                    verbose=0))


def _aggregate(h: Any, aggregation: str, units: int) -> Any:
    from keras import layers

    if aggregation == "mean":
        return layers.GlobalAveragePooling1D(name="slice_mean")(h)
    if aggregation == "max":
        return layers.GlobalMaxPooling1D(name="slice_max")(h)
    if aggregation == "attention":
        from ct3d.models.slice_layers import GatedAttention

        weights = GatedAttention(units, name=ATTENTION_LAYER)(h)
        return layers.Dot(axes=(1, 1), name="slice_pool")([weights, h])
    if aggregation == "gru":
        return layers.Bidirectional(layers.GRU(units), name="slice_gru")(h)
    raise ValueError(f"`aggregation` must be mean, max, attention or gru; received "
                     f"{aggregation!r}")


def slice_model(
    input_shape: InputShape, classes: int, backbone: str, aggregation: str,
    slice_size: int | None, units: int, dropout: float, weights: str | None, adjacent: bool,
    name: str, bn_momentum: float = 0.99,
) -> Any:
    """General slice model (see the module docstring); ``adjacent``: 2.5D (3 slices a channel)."""
    import keras
    from keras import layers

    from ct3d.models.slice_layers import SliceEncoder, SliceNeighbours

    check_input_shape(input_shape, 1, name)
    check_classes(classes)
    check_dropout(dropout)
    if not isinstance(units, int) or isinstance(units, bool) or units < 1:
        raise ValueError(f"`units` must be an integer >= 1; received units={units!r}")
    w, h, d, c = input_shape
    if adjacent and c != 1:
        raise ValueError(f"{name} makes 3 channels from 3 adjacent slices and needs 1-channel "
                         f"scans; received input_shape={tuple(input_shape)}")
    size = slice_size or w
    if slice_size is None and w != h:
        raise ValueError(f"{name} needs square slices or slice_size; received "
                         f"input_shape={tuple(input_shape)}")
    channels = 3 if adjacent or backbone != "small" else c
    encoder_in = keras.Input((w, h, channels), name="slice")
    x = encoder_in
    if (w, h) != (size, size):
        x = layers.Resizing(size, size, name="slice_resize")(x)
    scaling = scaling_layer(backbone, channels)
    if scaling is not None:
        x = scaling(x)
    net = set_bn_momentum(build_backbone(backbone, size, channels, weights), bn_momentum)
    encoder = keras.Model(encoder_in, net(x), name="slice_encoder")

    inputs = keras.Input(tuple(input_shape), name="scan")
    x = layers.Permute((3, 1, 2, 4), name="slices")(inputs)
    if adjacent:
        x = SliceNeighbours(name="adjacent_slices")(x)
    elif channels != c:
        x = layers.Concatenate(name="grey_to_rgb")([x] * channels)
    pretrained = weights is not None
    features = SliceEncoder(encoder, name=SLICE_LAYER)(
        x, training=False if pretrained else None)
    features = layers.Dropout(dropout, name="slice_dropout")(features)
    x = _aggregate(features, aggregation, units)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, output_head(x, classes), name=name)


def _min_input(params: dict[str, Any]) -> int:
    return 1 if params.get("slice_size") else backbone_min_size(params["backbone"])


@model_builder("slice2d", min_input=_min_input)
def slice2d(
    input_shape: InputShape = (128, 128, 64, 1),
    classes: int = 2,
    backbone: str = "small",
    aggregation: Aggregation = "attention",
    slice_size: int | None = None,
    units: int = 128,
    dropout: float = 0.2,
    bn_momentum: float = 0.99,
    weights: str | None = None,
) -> Any:
    """2D backbone on every axial slice, aggregated over slices (mean, max, attention, GRU).

    Args:
        input_shape: ``(W, H, D, C)``, set from the preprocessed data (reserved).
        classes: set from ``data.labels`` (reserved): 2 (one sigmoid unit) or more (softmax).
        backbone: ``small`` (ct3d's fast 2D CNN) or a keras.applications network, e.g.
            ResNet50, ResNet101, InceptionV3, DenseNet121, EfficientNetB0, MobileNetV3Small.
        aggregation: how slice features become one scan vector: mean, max, attention (gated
            attention-MIL; weights per slice in the layer slice_attention) or gru.
        slice_size: resize every slice to this square size first (None: keep W x H).
        units: hidden units of the attention or GRU aggregator.
        dropout: dropout rate on the slice features and before the output layer, in [0, 1).
        bn_momentum: momentum of the backbone's BatchNormalization moving averages, in
            [0, 1). Lower values follow the weights faster over short runs (Keras default
            0.99); a pretrained backbone runs its BatchNorm in inference mode.
        weights: backbone weights: None (random), imagenet (Keras' download and cache), or a
            local .weights.h5 (the backbone's) or .keras file (copied by layer name, head
            dropped).
    """
    return slice_model(input_shape, classes, backbone, aggregation, slice_size, units, dropout,
                       weights, False, "slice2d", bn_momentum)


@model_builder("slice25d", min_input=_min_input)
def slice25d(
    input_shape: InputShape = (128, 128, 64, 1),
    classes: int = 2,
    backbone: str = "small",
    aggregation: Aggregation = "attention",
    slice_size: int | None = None,
    units: int = 128,
    dropout: float = 0.2,
    bn_momentum: float = 0.99,
    weights: str | None = None,
) -> Any:
    """2.5D: slices k-1, k, k+1 as the 3 channels of each 2D input, aggregated over slices.

    Args:
        input_shape: ``(W, H, D, 1)``, set from the preprocessed data (reserved).
        classes: set from ``data.labels`` (reserved): 2 (one sigmoid unit) or more (softmax).
        backbone: ``small`` (ct3d's fast 2D CNN) or a keras.applications network, e.g.
            ResNet50, ResNet101, InceptionV3, DenseNet121, EfficientNetB0, MobileNetV3Small.
        aggregation: how slice features become one scan vector: mean, max, attention (gated
            attention-MIL; weights per slice in the layer slice_attention) or gru.
        slice_size: resize every slice to this square size first (None: keep W x H).
        units: hidden units of the attention or GRU aggregator.
        dropout: dropout rate on the slice features and before the output layer, in [0, 1).
        bn_momentum: momentum of the backbone's BatchNormalization moving averages, in
            [0, 1). Lower values follow the weights faster over short runs (Keras default
            0.99); a pretrained backbone runs its BatchNorm in inference mode.
        weights: backbone weights: None (random), imagenet (Keras' download and cache), or a
            local .weights.h5 (the backbone's) or .keras file (copied by layer name, head
            dropped).
    """
    return slice_model(input_shape, classes, backbone, aggregation, slice_size, units, dropout,
                       weights, True, "slice25d", bn_momentum)
