"""Shared parts of every model builder: argument checks, the output head and local weights.

Every builder checks its arguments with :func:`check_common` before building, ends in
:func:`output_head` and returns through :func:`finish`, so all models share one output and
weights contract:

* ``classes == 2``: one sigmoid unit, the probability of the positive class;
* ``classes > 2``: ``classes`` softmax units (rows sum to 1);
* the output layer is always named ``probability`` and computes in float32 (also under a
  mixed-precision policy);
* ``weights`` is ``None``, a local ``.weights.h5`` file (``model.save_weights``) of the same
  model, or a local ``.keras`` model whose layers are copied by name where their weights
  fit (e.g. ``ct3d pretrain``'s ``pretrained.keras``: the encoder, not the decoder), loaded
  after building. Nothing is ever downloaded.

Example:
    >>> check_common((64, 64, 48, 1), classes=1, weights=None, minimum=46, name="net")
    Traceback (most recent call last):
    ...
    ValueError: `classes` must be an integer >= 2; received classes=1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

InputShape = tuple[int, int, int, int]

WEIGHTS_SUFFIX = ".weights.h5"


def check_input_shape(input_shape: Any, minimum: int, name: str, why: str = "") -> None:
    """Raise ValueError unless ``input_shape`` is (W, H, D, C) with every W, H, D >= minimum.

    Args:
        input_shape: the model input without batch axis, ``(W, H, D, C)``.
        minimum: the smallest spatial size (W, H and D) the network accepts.
        name: the model name used in the message.
        why: the reason for ``minimum``, written in parentheses in the message.
    """
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 4
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in input_shape)
        or min(input_shape) < 1
    ):
        raise ValueError(f"`input_shape` must be (W, H, D, C); received input_shape={input_shape}")
    if min(input_shape[:3]) < minimum:
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{name} needs every spatial size >= {minimum}{reason}; "
            f"received input_shape={tuple(input_shape)}"
        )


def check_classes(classes: Any) -> None:
    """Raise ValueError unless ``classes`` is an integer >= 2."""
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
        raise ValueError(f"`classes` must be an integer >= 2; received classes={classes!r}")


def check_weights(weights: str | Path | None) -> None:
    """Raise unless ``weights`` is None or an existing local ``.weights.h5`` or ``.keras`` file.

    Raises:
        ValueError: the name ends neither in ``.weights.h5`` nor in ``.keras``.
        FileNotFoundError: no file at that path (the path is quoted; nothing is downloaded).
    """
    if weights is None:
        return
    path = Path(weights).expanduser()
    if not path.name.endswith(WEIGHTS_SUFFIX) and path.suffix != ".keras":
        raise ValueError(
            f"`weights` must be None, a local {WEIGHTS_SUFFIX} file written by "
            f"model.save_weights or a .keras model; received weights={str(weights)!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file not found: {str(path)!r} (`weights` must be a local "
            f"{WEIGHTS_SUFFIX} or .keras file; nothing is downloaded)"
        )


def check_dropout(dropout: Any, param: str = "dropout") -> None:
    """Raise ValueError unless ``dropout`` is a rate in [0, 1)."""
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise ValueError(f"`{param}` must be in [0, 1); received {param}={dropout!r}")


def check_common(
    input_shape: Any, classes: Any, weights: str | Path | None, minimum: int, name: str,
    why: str = "",
) -> None:
    """The checks every builder runs first: input shape, classes and weights file."""
    check_input_shape(input_shape, minimum, name, why)
    check_classes(classes)
    check_weights(weights)


def output_head(x: Any, classes: int) -> Any:
    """Dense layer ``probability``: 1 sigmoid unit for 2 classes, else ``classes`` softmax.

    The layer computes in float32 whatever the global dtype policy, so that under mixed
    precision the probabilities, the loss and the metrics stay float32.

    Example:
        >>> import keras
        >>> probs = output_head(keras.Input((8,), dtype="bfloat16"), classes=3)
        >>> probs.shape, probs.dtype
        ((None, 3), 'float32')
    """
    from keras import layers

    check_classes(classes)
    if classes == 2:
        return layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return layers.Dense(classes, activation="softmax", dtype="float32", name="probability")(x)


def set_bn_momentum(model: Any, momentum: float) -> Any:
    """``model`` with the moving-average momentum of every BatchNormalization layer (nested
    models and wrappers included) set to ``momentum``, in [0, 1); Keras' default is 0.99.

    Example:
        >>> import keras
        >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
        >>> outer = keras.Sequential([keras.Input((4,)), inner])
        >>> set_bn_momentum(outer, 0.9).layers[0].layers[0].momentum
        0.9
    """
    import keras

    from ct3d.models.loading import walk_layers

    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool) or not (
            0 <= momentum < 1):
        raise ValueError(f"`bn_momentum` must be in [0, 1); received bn_momentum={momentum!r}")
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
    return model


def finish(inputs: Any, outputs: Any, name: str, weights: str | Path | None) -> Any:
    """The uncompiled ``keras.Model`` named ``name``, with ``weights`` loaded when given."""
    import keras

    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        check_weights(weights)
        path = Path(weights).expanduser()
        if path.suffix == ".keras":
            from ct3d.models.loading import load_by_name

            load_by_name(model, path)
        else:
            model.load_weights(str(path))
    return model
