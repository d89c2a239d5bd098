"""2D backbones for slice models: ``keras.applications`` networks by name, or ct3d's ``small``.

:func:`build_backbone` returns a model from one slice (``size x size x channels``) to a
feature vector: the network without its top, global-average pooled. :func:`scaling_layer`
maps slices in [0, 1] (as ct3d's windowing leaves them) to the range the backbone expects,
measured from its family's own ``preprocess_input``, so every ``keras.applications``
family gets what it was trained on. Weights:

* ``None``: random initial weights;
* ``"imagenet"``: Keras' own download and cache (``$KERAS_HOME/models``, by default
  ``~/.keras/models``); without network and without the cached file the error names the
  file and where to put it;
* a local ``.weights.h5`` file written by ``backbone.save_weights``;
* a local ``.keras`` model (e.g. a classifier built on the same backbone): weights are
  copied layer by layer by name into the backbone; its other layers (the head) are dropped.

Example:
    >>> net = build_backbone("small", size=32, channels=1)
    >>> net.output_shape, net.name
    ((None, 64), 'small')
    >>> "ResNet50" in list_backbones() and "small" in list_backbones()
    True
"""

from __future__ import annotations

import importlib
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ct3d.errors import Ct3dError
from ct3d.models.heads import WEIGHTS_SUFFIX
from ct3d.models.loading import load_by_name

__all__ = ["WeightsNotFound", "application", "backbone_min_size", "build_backbone", "input_scaling",
           "list_backbones", "scaling_layer"]

SMALL_FILTERS = (16, 32, 64, 64)
"""Filters of the four conv blocks of the ``small`` backbone (its feature size is the last)."""
_MIN_SIZE = {"small": 2 ** len(SMALL_FILTERS), "InceptionV3": 75, "InceptionResNetV2": 75,
             "Xception": 71}
_DEFAULT_MIN_SIZE = 32


class WeightsNotFound(Ct3dError, FileNotFoundError):
    """Pretrained weights that are neither cached nor downloadable; says what to put where."""

    def __str__(self) -> str:
        return str(self.args[0])


def list_backbones() -> list[str]:
    """``small`` and every ``keras.applications`` network that can be built without its top.

    Example:
        >>> {"DenseNet121", "EfficientNetB0", "InceptionV3", "ResNet101"} <= set(list_backbones())
        True
    """
    import keras

    names = [name for name in dir(keras.applications) if name[0].isupper()
             and "include_top" in getattr(getattr(keras.applications, name), "__code__",
                                          _NO_CODE).co_varnames]
    return ["small", *sorted(names)]


_NO_CODE = (lambda: None).__code__


def backbone_min_size(name: str) -> int:
    """The smallest slice (pixels on a side) the backbone accepts.

    Example:
        >>> backbone_min_size("InceptionV3"), backbone_min_size("ResNet50")
        (75, 32)
    """
    return _MIN_SIZE.get(name, _DEFAULT_MIN_SIZE)


def _check_name(name: str) -> None:
    known = list_backbones()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown backbone {name!r}{hint} Known: {', '.join(known)}")


@cache
def input_scaling(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(scale, offset)`` mapping a [0, 1] grey slice to what ``name`` expects.

    Measured from the backbone family's own ``preprocess_input`` on pixel values 0 and 255
    (every family's preprocessing is affine per channel), so no table of modes is kept here.
    The ``small`` backbone takes [0, 1] as it is.

    Example:
        >>> scale, offset = input_scaling("InceptionV3")  # "tf" mode: x / 127.5 - 1
        >>> [round(s, 4) for s in scale], offset
        ([2.0, 2.0, 2.0], (-1.0, -1.0, -1.0))
    """
    _check_name(name)
    if name == "small":
        return (1.0,), (0.0,)
    import keras

    module = importlib.import_module(getattr(keras.applications, name).__module__)
    probe = np.array([[[[0.0] * 3, [255.0] * 3]]], np.float32)
    out = np.asarray(module.preprocess_input(probe.copy()), np.float64)[0, 0]
    offset = out[0]
    scale = out[1] - out[0]
    return tuple(float(s) for s in scale), tuple(float(o) for o in offset)


def scaling_layer(name: str, channels: int) -> Any | None:
    """A fixed per-channel affine layer ``input_scaling`` ([0, 1] -> what backbone ``name``
    expects, see :func:`input_scaling`), or None where that is the identity."""
    from keras import layers

    scale, offset = (np.resize(np.array(v), channels) for v in input_scaling(name))
    if np.allclose(scale, 1) and np.allclose(offset, 0):
        return None
    return layers.Normalization(axis=-1, mean=(-offset / scale).tolist(),
                                variance=(1 / scale**2).tolist(), name="input_scaling")


def _small(size: int, channels: int) -> Any:
    """ct3d's fast 2D CNN: 4 x (Conv2D 3x3 same, BN, ReLU, MaxPool 2), global average pool."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, channels), name="slice")
    x = inputs
    for i, filters in enumerate(SMALL_FILTERS, start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = layers.Activation("relu", name=f"block{i}_relu")(x)
        x = layers.MaxPool2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="small")


def _keras_cache() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def application(name: str, size: int, channels: int, imagenet: bool) -> Any:
    """``keras.applications.<name>`` without its top, average-pooled; with ``imagenet``
    weights from Keras' cache or download (:class:`WeightsNotFound` says what to do offline).
    """
    import keras

    build = getattr(keras.applications, name)
    try:
        return build(include_top=False, weights="imagenet" if imagenet else None,
                     input_shape=(size, size, channels), pooling="avg")
    except ValueError:
        raise
    except Exception as exc:
        if not imagenet:
            raise
        url = re.search(r"https?://\S+?(?=:?\s|$)", str(exc))
        where = url.group(0) if url else "(the URL is in the error below)"
        file = where.rsplit("/", 1)[-1] if url else "the weights file"
        raise WeightsNotFound(
            f"ImageNet weights of {name} are not in Keras' cache and could not be "
            f"downloaded ({type(exc).__name__}: {exc}). On a machine with network access "
            f"download {where} and copy {file} into {_keras_cache()} (Keras' cache; set "
            f"KERAS_HOME to move it), or pass weights=PATH to a local .weights.h5 / .keras "
            f"file"
        ) from exc


def _load_local(net: Any, weights: str) -> None:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsNotFound(f"weights file not found: {str(path)!r} (weights is 'imagenet', "
                              f"or a local {WEIGHTS_SUFFIX} or .keras file)")
    if path.name.endswith(WEIGHTS_SUFFIX):
        net.load_weights(str(path))
    elif path.suffix == ".keras":
        load_by_name(net, path)
    else:
        raise ValueError(f"weights must be 'imagenet', a {WEIGHTS_SUFFIX} or a .keras file; "
                         f"received {weights!r}")


def build_backbone(name: str, size: int, channels: int, weights: str | None = None) -> Any:
    """The backbone ``name`` without its top, ``size x size x channels`` slices -> features.

    Args:
        name: ``small`` or a ``keras.applications`` network (:func:`list_backbones`).
        size: slice width and height, >= :func:`backbone_min_size`.
        channels: 1 or 3 (``keras.applications`` networks need 3).
        weights: None, ``"imagenet"``, or a local ``.weights.h5`` / ``.keras`` file (see
            the module docstring).

    Returns:
        A ``keras.Model`` named ``name``, output ``(None, F)``; it expects its inputs scaled
        by :func:`scaling_layer`.
    """

    _check_name(name)
    if size < backbone_min_size(name):
        raise ValueError(f"backbone {name} needs slices of at least {backbone_min_size(name)} "
                         f"pixels a side; received {size} (set slice_size)")
    if name != "small" and channels != 3:
        raise ValueError(f"backbone {name} takes 3-channel slices; received {channels}")
    if weights == "imagenet" and name == "small":
        raise ValueError("the small backbone has no ImageNet weights; use weights=None or a "
                         "local file")
    net = (_small(size, channels) if name == "small"
           else application(name, size, channels, weights == "imagenet"))
    if weights not in (None, "imagenet"):
        _load_local(net, weights)
    return net
