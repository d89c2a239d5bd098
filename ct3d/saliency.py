"""3D Grad-CAM: where in a scan a classifier looked, as a heat map on the original scan's grid.

:func:`gradcam` computes Grad-CAM heat maps on the model's (preprocessed) input grid;
:func:`to_original` maps them back onto the original scan through the preprocessed volume's
affine (every preprocessing step keeps ``affine`` consistent), so that :func:`save_nifti`
writes a float32 NIfTI that 3D Slicer or ITK-SNAP overlay on the original scan.
:func:`explain_volume` does both for one scan, skipping layers whose map is empty (all zero
or not finite) with a warning that says why, and returns a :class:`HeatMap` that records the
layer used; :func:`explain_scan` does it for one scan file.

Example:
    >>> from ct3d.models import build_model
    >>> model = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1))
    >>> last_conv_layer(model), gradcam(model, np.zeros((46, 46, 46), np.float32)).shape
    ('block4_conv', (46, 46, 46))
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ct3d.autodiff import gradient
from ct3d.backend import import_keras
from ct3d.io import read_volume, write_volume
from ct3d.models.loading import walk_layers
from ct3d.models.slices import SLICE_LAYER
from ct3d.preprocess import build_preprocess
from ct3d.registry import StepLike
from ct3d.volume import Volume

keras = import_keras()
ops = keras.ops

__all__ = ["HeatMap", "deepest_conv_layer", "explain_scan", "explain_volume", "gradcam",
           "last_conv_layer", "lesion_enrichment", "save_nifti", "to_original"]

_WINDOW_LAYERS = (keras.layers.Conv3D, keras.layers.MaxPooling3D, keras.layers.AveragePooling3D)
_EDGE_TOLERANCE = 1e-3  # voxels: rounding slack at the edge of the field of view


@dataclass(frozen=True, eq=False)
class HeatMap(Volume):
    """A Grad-CAM heat map on a scan's grid (a :class:`~ct3d.volume.Volume`), and its layer.

    Attributes:
        layer: the layer the map was computed at; None when the map of every layer tried was
            empty (the array is then all zero).
        note: why layers were skipped (their map was all zero or not finite), or None.
    """

    layer: str | None = None
    note: str | None = None


def _slice_encoder(model: Any) -> Any | None:
    """A slice model's per-slice encoder (:mod:`ct3d.models.slices`), or None."""
    names = {layer.name for layer in model.layers}
    return model.get_layer(SLICE_LAYER).layer if SLICE_LAYER in names else None


def _backbone(encoder: Any) -> Any:
    """The 2D backbone network nested in a slice encoder."""
    return next(layer for layer in encoder.layers if hasattr(layer, "layers"))


def _conv_type(model: Any) -> type:
    """The convolutions Grad-CAM looks at: Conv2D in a slice model's backbone, else Conv3D."""
    return keras.layers.Conv2D if _slice_encoder(model) is not None else keras.layers.Conv3D


def _convolutions(model: Any) -> list[Any]:
    """The layers Grad-CAM can use: a slice model's backbone Conv2D layers, or the 3D
    convolutions of the model's own graph."""
    encoder = _slice_encoder(model)
    if encoder is not None:
        return [x for x in _backbone(encoder).layers if isinstance(x, keras.layers.Conv2D)]
    return [x for x in model.layers if isinstance(x, keras.layers.Conv3D)]


def last_conv_layer(model: Any) -> str:
    """Name of the last 3D convolution layer of ``model`` (nested models searched too); for a
    slice model (:mod:`ct3d.models.slices`), the last 2D convolution of its backbone.

    Raises:
        ValueError: the model has no such layer; the message lists its layers.

    Example:
        >>> from ct3d.models import build_model
        >>> last_conv_layer(build_model("modified_3dcnn", input_shape=(46, 46, 46, 1)))
        'block4_conv'
    """
    layers = walk_layers(model)
    kind = _conv_type(model)
    convs = [layer.name for layer in layers if isinstance(layer, kind)]
    if not convs:
        names = ", ".join(layer.name for layer in layers) or "(none)"
        what = "3D" if kind is keras.layers.Conv3D else "2D"
        raise ValueError(f"model {model.name!r} has no {what} convolution layer; layers: {names}")
    return convs[-1]


def _top_level_layer(model: Any, name: str) -> Any:
    """The layer called ``name`` in ``model``'s own graph (not inside a nested model)."""
    if any(layer.name == name for layer in model.layers):
        return model.get_layer(name)
    holder = next((layer.name for layer in model.layers if hasattr(layer, "layers")
                   and name in {x.name for x in walk_layers(layer)}), None)
    if holder is not None:
        raise ValueError(f"layer {name!r} is inside the nested model {holder!r}; Grad-CAM needs "
                         f"a layer of {model.name!r}'s own graph: build the model flat")
    names = ", ".join(layer.name for layer in model.layers)
    raise ValueError(f"model {model.name!r} has no layer {name!r}; layers: {names}")


def _as_batch(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``x`` as a float32 (B, W, H, D, 1) batch, and whether it was a single scan."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        return x[None, ..., None], True
    if x.ndim == 4 and x.shape[-1] == 1:
        return x[None], True
    if x.ndim == 5 and x.shape[-1] == 1:
        return x, False
    raise ValueError(f"gradcam expects (B, W, H, D, 1), (W, H, D, 1) or (W, H, D) scans; "
                     f"received shape {x.shape}")


def _linear_head(layer: Any) -> Any | None:
    """A copy of a sigmoid / softmax output layer without its activation (logits), or None."""
    config = layer.get_config()
    if config.get("activation") not in ("sigmoid", "softmax"):
        return None
    head = type(layer).from_config({**config, "activation": "linear",
                                    "name": f"{layer.name}_logits"})
    head.build(layer.input.shape)
    head.set_weights(layer.get_weights())
    return head


def _output_head(model: Any) -> tuple[Any, Any | None]:
    """The tensor Grad-CAM differentiates (the output layer's input when its activation can
    be dropped, else the model's output), and the logit head to apply to it (or None)."""
    if len(model.outputs) != 1:
        raise ValueError(f"gradcam needs a single-output model; {model.name!r} has "
                         f"{len(model.outputs)} outputs")
    out_layer = model.layers[-1]
    head = _linear_head(out_layer) if out_layer.output is model.outputs[0] else None
    return (out_layer.input if head is not None else model.outputs[0]), head


def _split(inputs: Any, tensor: Any, outputs: Any) -> tuple[Any, Any]:
    """Models ``inputs -> tensor`` and ``(inputs, tensor) -> outputs``: the second takes the
    activations as an input of their own, so that they can be differentiated at (branches
    that bypass ``tensor``, e.g. residual shortcuts, still come from ``inputs``)."""
    return keras.Model(inputs, tensor), keras.Model([inputs, tensor], outputs)


def _target_scores(scores: Any, class_index: int | None) -> Any:
    """The score explained per scan: (B,) from the (B, k) logits or outputs."""
    k = int(scores.shape[-1])
    classes = 2 if k == 1 else k
    if class_index is not None and not 0 <= class_index < classes:
        raise ValueError(f"class_index must be in [0, {classes}); received {class_index}")
    if k == 1:
        return -scores[:, 0] if class_index == 0 else scores[:, 0]
    if class_index is not None:
        return scores[:, class_index]
    picked = ops.expand_dims(ops.argmax(scores, axis=-1), -1)
    return ops.take_along_axis(scores, picked, axis=1)[:, 0]


def _score(rest: Any, head: Any | None, class_index: int | None) -> Any:
    """The summed explained score as a function of what ``rest`` maps to the outputs."""

    def score(*args: Any) -> Any:
        scores = rest(*args)
        if head is not None:
            scores = head(scores)
        return ops.sum(_target_scores(ops.cast(scores, "float32"), class_index))

    return score


def _numpy(t: Any) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(ops.cast(t, "float32")))


def _gradients(
    model: Any, layer: Any, x: np.ndarray, class_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The layer's activations A and the explained score's gradients dscore/dA, float32."""
    target, head = _output_head(model)
    first, rest = _split(model.inputs[0], layer.output, target)
    inputs = ops.convert_to_tensor(x)
    activations = first(inputs, training=False)
    score = _score(lambda a: rest([inputs, a], training=False), head, class_index)
    return _numpy(activations), gradient(score, activations)


def _raw_cams(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Grad-CAM on the layer's own grid: ReLU(sum_c mean(dscore/dA_c) * A_c), (B, w, h, d)."""
    weights = grads.mean(axis=(1, 2, 3), keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite maps: see _why_empty
        return np.maximum((activations * weights).sum(axis=-1), 0)


def _why_empty(activations: np.ndarray, grads: np.ndarray, cam: np.ndarray) -> str | None:
    """Why one scan's map at a layer is empty (all zero or not finite); None if it is not."""
    if not all(np.isfinite(a).all() for a in (activations, grads, cam)):
        return "its activations or gradients are not finite: NaN or Inf weights, or an overflow"
    if not activations.any():
        return "its activations are all zero: its ReLU outputs are all zero, a dead layer"
    if not grads.any():
        return ("the gradients of the score at it vanish: a dead ReLU or a saturated unit "
                "between it and the output")
    if not cam.any():
        return "no voxel has positive gradient-weighted evidence for the explained class"
    return None


def _window_step(n: int, window: int, stride: int, padding: str) -> tuple[int, float, float]:
    """Output size of a window op on n voxels, and its output index -> input index map."""
    if padding == "same":
        n_out = -(-n // stride)
        before = max((n_out - 1) * stride + window - n, 0) // 2
    else:
        n_out = (n - window) // stride + 1
        before = 0
    return n_out, float(stride), (window - 1) / 2 - before


def _feature_grid(
    model: Any, layer: Any, shape: Sequence[int], feature_shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Input position of feature voxel i: ``scale * i + offset`` (receptive-field centres).

    Walks the 3D convolution and pooling layers up to ``layer``; when they do not explain
    the feature map's shape (another layer changes the grid), falls back to stretching the
    feature grid over the input (first and last voxel centres aligned).
    """
    size = np.array(shape, dtype=int)
    scale, offset = np.ones(3), np.zeros(3)
    for item in model.layers[: model.layers.index(layer) + 1]:
        if not isinstance(item, _WINDOW_LAYERS):
            continue
        is_conv = isinstance(item, keras.layers.Conv3D)
        sizes = item.kernel_size if is_conv else item.pool_size
        dilation = item.dilation_rate if is_conv else (1, 1, 1)
        for a in range(3):
            window = dilation[a] * (sizes[a] - 1) + 1
            size[a], s, o = _window_step(size[a], window, item.strides[a], item.padding)
            offset[a] += scale[a] * o
            scale[a] *= s
    if tuple(size) == tuple(feature_shape):
        return scale, offset
    return _stretch(shape, feature_shape)


def _stretch(shape: Sequence[int], feature_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Feature grid stretched over the input: first and last voxel centres aligned."""
    stretch = (np.array(shape) - 1) / np.maximum(np.array(feature_shape) - 1, 1)
    return stretch.astype(float), np.zeros(3)


def _slice_gradients(
    model: Any, layer: str, x: np.ndarray, class_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """A slice model's activations at backbone layer ``layer`` on every slice, stacked as
    (B, w, h, D, C), and the explained score's gradients with respect to them.

    Stacking the slices' maps along depth and pooling the gradients over the whole stack
    (not per slice) keeps how much each slice mattered: slices the aggregation ignores
    (e.g. attention weight near 0) get a cold map.
    """
    wrapper = model.get_layer(SLICE_LAYER)
    encoder = wrapper.layer
    net = _backbone(encoder)
    names = {item.name for item in net.layers}
    if layer not in names:
        convs = ", ".join(item.name for item in _convolutions(model))
        raise ValueError(f"layer {layer!r} is not in the backbone {net.name!r} of "
                         f"{model.name!r}; its 2D convolutions: {convs}")
    before = keras.Model(model.inputs[0], wrapper.input)
    steps = [item for item in encoder.layers
             if item is not net and not isinstance(item, keras.layers.InputLayer)]
    first, rest = _split(net.inputs[0], net.get_layer(layer).output, net.output)
    out_layer = model.layers[-1]
    head = _linear_head(out_layer) if out_layer.output is model.outputs[0] else None
    after = keras.Model(wrapper.output, out_layer.input if head is not None
                        else model.outputs[0])
    slices = before(ops.convert_to_tensor(x), training=False)
    b, d = int(slices.shape[0]), int(slices.shape[1])
    images = ops.reshape(slices, (b * d, *slices.shape[2:]))
    for step in steps:
        images = step(images, training=False)
    activations = first(images, training=False)

    def aggregated(a: Any) -> Any:
        pooled = rest([images, a], training=False)
        return after(ops.reshape(pooled, (b, d, pooled.shape[-1])), training=False)

    grads = gradient(_score(aggregated, head, class_index), activations)

    def stacked(t: np.ndarray) -> np.ndarray:
        return t.reshape(b, d, *t.shape[1:]).transpose(0, 2, 3, 1, 4)

    return stacked(_numpy(activations)), stacked(grads)


def _upsample(
    cam: np.ndarray, scale: np.ndarray, offset: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    """Trilinear map from the feature grid to the input grid; edges take the nearest value."""
    return ndimage.affine_transform(cam, 1 / scale, offset=-offset / scale,
                                    output_shape=tuple(shape), order=1, mode="nearest")


def _normalise(cam: np.ndarray) -> np.ndarray:
    """Scale to a maximum of 1 (an all-zero map stays zero)."""
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def gradcam(
    model: Any, x: np.ndarray, layer: str | None = None, class_index: int | None = None
) -> np.ndarray:
    """3D Grad-CAM heat maps, in [0, 1] on the input grid, for a batch or a single scan.

    Gradients of the explained score with respect to the activations of ``layer`` (default:
    :func:`last_conv_layer`), averaged over space, weight the channels; the ReLU of the
    weighted sum is upsampled trilinearly to the input grid and divided by its maximum, per
    scan (an all-zero map stays zero: :func:`explain_volume` detects such empty maps, and
    non-finite ones, and falls back to shallower layers). The score is the output layer's
    logit, taken before its activation (the paper's pre-softmax class score): for a sigmoid
    model the logit of class 1 (negated for ``class_index=0``); for a softmax model the logit
    of ``class_index``, by default each scan's predicted class. For a sigmoid, the probability
    would give the same normalised map (its gradient is the logit's times p(1 - p)) except
    where it saturates to exactly 1 and its gradient vanishes; the logit's does not.

    Backends differ where a max pooling after ``layer`` has tied inputs (a window of zeros
    after a ReLU): TensorFlow sends the gradient to every tied voxel, JAX and PyTorch to one,
    so the weights, and the map, may differ there (:mod:`ct3d.autodiff`).

    Upsampling follows the network's geometry: feature voxel ``i`` is placed at the centre
    of its receptive field, found from the sizes, strides and padding of the 3D convolution
    and pooling layers before ``layer`` (for ``modified_3dcnn`` at block 4: input voxel
    ``8 i + 18.5``); beyond the outermost centres the map keeps its edge value. Where other
    layers change the grid, the feature grid is simply stretched over the input instead.
    Deep layers are coarse: on 64x64x48 inputs ``modified_3dcnn``'s block 4 is a 4x4x2
    grid, and ``block2_conv`` localises lesions much better (see ``tests/test_explain.py``).

    Slice models (:mod:`ct3d.models.slices`): ``layer`` is a 2D convolution of the backbone
    (default: its last); each slice's map at that layer is stacked along depth into one 3D
    map on the scan's grid, the gradients pooled over the whole stack, so slices that
    mattered less to the aggregation are colder.

    Args:
        model: a single-output Keras model taking (B, W, H, D, 1) scans.
        x: a batch (B, W, H, D, 1), or one scan (W, H, D, 1) or (W, H, D).
        layer: name of a layer of the model's own graph (not inside a nested model).
        class_index: the class explained (see above).

    Returns:
        float32 heat maps (B, W, H, D), or (W, H, D) for a single scan.

    Example:
        >>> from ct3d.models import build_model
        >>> model = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1))
        >>> heat = gradcam(model, np.zeros((2, 46, 46, 46, 1), np.float32), "block3_conv")
        >>> heat.shape, heat.dtype, bool(heat.min() >= 0 and heat.max() <= 1)
        ((2, 46, 46, 46), dtype('float32'), True)
    """
    batch, single = _as_batch(x)
    heat, _ = _heat_maps(model, layer or last_conv_layer(model), batch, class_index)
    return heat[0] if single else heat


def _heat_maps(
    model: Any, layer: str, batch: np.ndarray, class_index: int | None
) -> tuple[np.ndarray, list[str | None]]:
    """Grad-CAM maps (B, W, H, D) of a batch at ``layer``, and why each is empty (or None)."""
    shape = batch.shape[1:4]
    if _slice_encoder(model) is not None:
        activations, grads = _slice_gradients(model, layer, batch, class_index)
        cams = _raw_cams(activations, grads)
        scale, offset = _stretch(shape, cams.shape[1:])
    else:
        target = _top_level_layer(model, layer)
        activations, grads = _gradients(model, target, batch, class_index)
        cams = _raw_cams(activations, grads)
        scale, offset = _feature_grid(model, target, shape, cams.shape[1:])
    heat = np.stack([_normalise(_upsample(cam, scale, offset, shape)) for cam in cams])
    return heat, [_why_empty(*parts) for parts in zip(activations, grads, cams, strict=True)]


def _fallback_layers(model: Any, layer: str) -> list[str]:
    """``layer``, then the convolutions Grad-CAM can use before it, deepest first."""
    if _slice_encoder(model) is None:
        _top_level_layer(model, layer)
    names = [item.name for item in _convolutions(model)]
    before = names[:names.index(layer)] if layer in names else []
    return [layer, *reversed(before)]


def _first_map(
    model: Any, array: np.ndarray, layer: str | None, class_index: int | None, scan: str
) -> tuple[np.ndarray, str | None, str | None]:
    """One scan's map at the first layer (see :func:`explain_volume`) where it is not empty.

    Returns the map, the layer used (None: every map was empty; the map is then all zero)
    and a note on the skipped layers (None: none skipped); a skipped layer is also warned of.
    """
    batch, _ = _as_batch(array)
    tried, skipped = [], []
    for name in _fallback_layers(model, layer or last_conv_layer(model)):
        heat, (why,) = _heat_maps(model, name, batch, class_index)
        if why is None and not skipped:
            return heat[0], name, None
        if why is None:
            note = f"empty map at {'; '.join(skipped)}; used {name} instead"
            warnings.warn(f"Grad-CAM of {scan}: {note}", stacklevel=3)
            return heat[0], name, note
        tried.append(name)
        skipped.append(f"{name} ({why})")
    note = (f"every layer tried gives an empty map ({', '.join(tried)}); the map is all zero: "
            + "; ".join(skipped))
    warnings.warn(f"Grad-CAM of {scan}: {note}", stacklevel=3)
    return np.zeros(batch.shape[1:4], np.float32), None, note


def _sample_slice(
    coeffs: np.ndarray, index_map: np.ndarray, grid: tuple[np.ndarray, np.ndarray], k: int,
    order: int,
) -> np.ndarray:
    """Values at the original voxels (i, j, k) of one slice; 0 outside the field of view."""
    i, j = grid
    points = np.stack([i, j, np.full_like(i, k)]).reshape(3, -1)
    coords = index_map[:3, :3] @ points + index_map[:3, 3:]
    top = np.array(coeffs.shape, dtype=float)[:, None] - 1
    inside = np.all((coords >= -_EDGE_TOLERANCE) & (coords <= top + _EDGE_TOLERANCE), axis=0)
    np.clip(coords, 0, top, out=coords)
    values = ndimage.map_coordinates(coeffs, coords, order=order, mode="nearest",
                                     prefilter=False)
    return np.where(inside, values, 0).reshape(i.shape)


def to_original(heat: np.ndarray, preprocessed: Volume, original: Volume, order: int = 1) -> Volume:
    """Map a heat map on the preprocessed grid onto the original scan's grid, via world space.

    Each original voxel ``ijk`` lies at ``original.affine @ ijk`` in the world, which is
    ``inv(preprocessed.affine) @ original.affine @ ijk`` on the preprocessed grid; the heat
    map is sampled there by spline interpolation of ``order`` (1: linear), one slice at a
    time. Original voxels outside the field of view (beyond the outermost preprocessed
    voxel centres, e.g. cropped away) get 0.

    Returns:
        A float32 volume with the original's shape, spacing and affine.

    Example:
        >>> from ct3d.preprocess.geometry import crop
        >>> original = Volume(np.zeros((4, 4, 4), np.float32), (1.0, 1.0, 1.0), np.eye(4), "x")
        >>> preprocessed = crop(original, (1, 1, 1), (4, 4, 4))
        >>> back = to_original(np.ones(preprocessed.shape, np.float32), preprocessed, original)
        >>> back.shape, float(back.array.sum()), float(back.array[0].max())
        ((4, 4, 4), 27.0, 0.0)
    """
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != preprocessed.shape:
        raise ValueError(f"heat map shape {heat.shape} differs from the preprocessed volume's "
                         f"{preprocessed.shape}")
    if not 0 <= order <= 5:
        raise ValueError(f"order must be in 0..5; received {order}")
    index_map = np.linalg.inv(preprocessed.affine) @ original.affine
    coeffs = heat if order <= 1 else ndimage.spline_filter(heat, order, mode="nearest")
    w, h, d = original.shape
    grid = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float), indexing="ij")
    array = np.empty((w, h, d), np.float32)
    for k in range(d):
        array[:, :, k] = _sample_slice(coeffs, index_map, grid, k, order)
    return Volume(array, tuple(original.spacing), np.array(original.affine, dtype=float),
                  f"Grad-CAM heat map on the grid of {original.source}")


def save_nifti(heat_volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a heat-map volume as a float32 NIfTI (same affine: overlays on the original).

    Example:
        >>> import tempfile
        >>> heat = Volume(np.full((3, 3, 2), 0.25, np.float32), (1.0, 1.0, 5.0), np.eye(4), "h")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     saved = save_nifti(heat, Path(tmp) / "heat.nii.gz")
        ...     float(read_volume(saved, hu=False).array.max())
        0.25
    """
    return write_volume(heat_volume, path, dtype=np.float32)


def explain_volume(
    model: Any, prepared: Volume, original: Volume, layer: str | None = None,
    class_index: int | None = None,
) -> HeatMap:
    """Grad-CAM of one preprocessed scan, on the original scan's grid, with the layer used.

    ``prepared`` is ``original`` after the model's preprocessing chain. The map is computed
    with :func:`gradcam` at ``layer`` (default: :func:`last_conv_layer`) and mapped back
    with :func:`to_original`. An empty map (all zero, or not finite) explains nothing:
    a warning says why (e.g. the layer's ReLU outputs are all zero, or the gradients at it
    vanish) and the next shallower 3D convolution is tried, until one gives a map; the
    result's ``layer`` is the layer used and its ``note`` the layers skipped. If no layer
    gives a map, the warning names the scan and the layers tried, the map is all zero and
    ``layer`` is None.

    Example:
        >>> model = keras.Sequential([keras.Input((8, 8, 8, 1)), keras.layers.Conv3D(
        ...     2, 3, activation="relu", kernel_initializer="ones", name="conv"),
        ...     keras.layers.GlobalAveragePooling3D(),
        ...     keras.layers.Dense(1, "sigmoid", kernel_initializer="ones")])
        >>> scan = Volume(np.ones((8, 8, 8), np.float32), (1.0, 1.0, 1.0), np.eye(4), "scan")
        >>> heat = explain_volume(model, scan, scan)
        >>> heat.layer, heat.shape, float(heat.array.max())
        ('conv', (8, 8, 8), 1.0)
        >>> _ = model.get_layer("conv").bias.assign([-100.0, -100.0])  # dead ReLU outputs
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     empty = explain_volume(model, scan, scan)
        >>> empty.layer, float(empty.array.max()), str(caught[0].message)[:62]
        (None, 0.0, 'Grad-CAM of scan: every layer tried gives an empty map (conv);')
    """
    heat, used, note = _first_map(model, prepared.array, layer, class_index, original.source)
    volume = to_original(heat, prepared, original)
    source = f"Grad-CAM heat map at {used or 'no layer (empty)'} on the grid of {original.source}"
    return HeatMap(volume.array, volume.spacing, volume.affine, source, used, note)


def explain_scan(
    model: Any,
    path: str | os.PathLike[str],
    steps: Sequence[StepLike],
    layer: str | None = None,
    out: str | os.PathLike[str] | None = None,
    class_index: int | None = None,
) -> HeatMap:
    """Grad-CAM of one scan file, on the original scan's grid (optionally saved to ``out``).

    Reads the scan, applies the preprocessing chain ``steps`` (the one the model was trained
    with) and runs :func:`explain_volume` (with ``layer`` and ``class_index``): the result is
    a :class:`HeatMap`, whose ``layer`` is the layer actually used.

    Example:
        >>> steps = [{"name": "keras_example", "params": {"shape": [128, 128, 64]}}]
        >>> heat = explain_scan(model, "scan.nii.gz", steps, out="heat.nii.gz")  # doctest: +SKIP
        >>> heat.array.shape, heat.layer  # doctest: +SKIP
        ((512, 512, 64), 'block4_conv')
    """
    original = read_volume(path)
    heat = explain_volume(model, build_preprocess(steps)(original), original, layer=layer,
                          class_index=class_index)
    if out is not None:
        save_nifti(heat, out)
    return heat


def deepest_conv_layer(model: Any, min_width: int = 4) -> str | None:
    """The deepest 3D convolution of ``model``'s own graph at least ``min_width`` voxels wide
    (for a slice model: the deepest 2D convolution of its backbone that wide in-plane).

    Grad-CAM's resolution is that of the layer's output: a deeper layer sees more of the
    scan but its map is coarser, so the report takes the deepest one whose output is still
    ``min_width`` voxels or more along each of the three spatial axes. None: no 3D
    convolution is that wide (:func:`gradcam` then uses :func:`last_conv_layer`).

    Example:
        >>> model = keras.Sequential([keras.Input((8, 8, 8, 1)),
        ...                           keras.layers.Conv3D(2, 3, padding="same", name="wide"),
        ...                           keras.layers.MaxPooling3D(4),
        ...                           keras.layers.Conv3D(2, 1, name="narrow")])
        >>> deepest_conv_layer(model), deepest_conv_layer(model, min_width=16)
        ('wide', None)
    """
    convs = [layer.name for layer in _convolutions(model)
             if min(layer.output.shape[1:-1]) >= min_width]
    return convs[-1] if convs else None


def lesion_enrichment(heat: np.ndarray, lesion: np.ndarray, lungs: np.ndarray) -> float | None:
    """How much more of a Grad-CAM map's heat falls on lesions than their size would give.

    (heat in the lesions / heat in the lungs) / (lesion volume / lung volume), with the
    lesions counted inside the lungs only: 1 is a map that ignores the lesions, 3 puts three
    times the lesions' share of the heat on them. None when the lungs hold no lesion or no
    heat.

    Example:
        >>> lungs = np.ones((4, 4, 4), bool)
        >>> lesion = np.zeros((4, 4, 4), bool); lesion[0] = True
        >>> heat = np.where(lesion, 1.0, 0.0)
        >>> lesion_enrichment(heat, lesion, lungs), lesion_enrichment(np.ones(64).reshape(
        ...     4, 4, 4), lesion, lungs)
        (4.0, 1.0)
    """
    lungs = np.asarray(lungs, bool)
    lesion = np.asarray(lesion, bool) & lungs
    heat = np.clip(np.asarray(heat, np.float64), 0, None)
    total, share = heat[lungs].sum(), lesion.sum() / max(lungs.sum(), 1)
    if total <= 0 or share == 0:
        return None
    return float(heat[lesion].sum() / total / share)
