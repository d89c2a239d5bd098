"""Loading saved models and copying weights between models by layer name.

Example:
    >>> import keras
    >>> a = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    >>> b = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d"),
    ...                       keras.layers.Dense(1, name="head")])
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     a.save(os.path.join(tmp, "a.keras"))
    ...     load_by_name(b, os.path.join(tmp, "a.keras"))
    1
"""

from __future__ import annotations

import os
from typing import Any

from ct3d.backend import import_keras

__all__ = ["load_by_name", "load_model", "walk_layers"]


def load_model(path: str | os.PathLike[str], compile: bool = True) -> Any:
    """A saved ``.keras`` model, ct3d's custom layers (slice models', on-device
    augmentation) registered first."""
    import_keras()
    import keras

    import ct3d.augment.device  # noqa: F401 - registers the layer for deserialization
    import ct3d.models.slice_layers  # noqa: F401 - registers the layers for deserialization

    return keras.saving.load_model(str(path), compile=compile)


def load_by_name(model: Any, path: str | os.PathLike[str]) -> int:
    """Copy the weights of the saved ``.keras`` model at ``path`` into ``model``, by layer name.

    Every layer of ``model`` (nested models searched) whose name and weight shapes match a
    layer of the saved model gets its weights; the saved model's other layers (e.g. its
    classification head) are dropped. Returns how many layers were loaded.

    Raises:
        ValueError: no layer matches (the message lists a few names of both models).
    """
    saved = load_model(path, compile=False)
    source = {layer.name: layer for layer in walk_layers(saved) if layer.weights}
    loaded = 0
    for layer in walk_layers(model):
        match = source.get(layer.name)
        if not layer.weights or match is None:
            continue
        values = match.get_weights()
        if [v.shape for v in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
            loaded += 1
    if not loaded:
        ours = ", ".join([x.name for x in walk_layers(model) if x.weights][:5])
        theirs = ", ".join(list(source)[:5])
        raise ValueError(f"no layer of {str(path)!r} matches {model.name!r} by name and weight "
                         f"shapes (ours: {ours}, ...; its: {theirs}, ...)")
    return loaded


def walk_layers(model: Any) -> list[Any]:
    """Every layer of ``model`` in order, depth first, descending into nested models and
    into the layers of the model a wrapper holds (``TimeDistributed(encoder)``).

    Example:
        >>> import keras
        >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")],
        ...                          name="inner")
        >>> outer = keras.Sequential([keras.Input((3, 4)), keras.layers.TimeDistributed(inner,
        ...                           name="td")])
        >>> [layer.name for layer in walk_layers(outer)]
        ['td', 'd']
    """
    found = []
    for layer in model.layers:
        found.append(layer)
        inner = getattr(layer, "layer", None)  # TimeDistributed and other wrappers
        if inner is not None and hasattr(inner, "layers"):
            found.extend(walk_layers(inner))
        elif hasattr(layer, "layers"):
            found.extend(walk_layers(layer))
    return found
