"""Augmentation inside the train step, on the accelerator: a layer at the model's front.

With ``train.augment_on: device`` the augmentation chain runs in the compiled train step
(on the GPU when there is one) instead of in the input pipeline's CPU threads. A
:class:`DeviceAugment` layer between the input and the model's first layer applies it when
called with ``training=True`` and passes the scans through unchanged otherwise
(evaluation, prediction, Grad-CAM), as Keras' own preprocessing layers do.

It augments the ``k``-th training batch of a run with the seed
:func:`~ct3d.data.order.batch_seed` ``(seed, k)``, as the input pipelines do: ``k`` is a
non-trainable counter saved with the model and set to ``epoch * steps`` at each ``fit``, so
the model sees the batches of ``augment_on: input`` (within float rounding) and a resumed
run those of an uninterrupted one.

Example:
    >>> import numpy as np
    >>> from ct3d.data.order import batch_seed
    >>> layer = DeviceAugment([{"name": "flip", "params": {"axes": [0]}}], seed=3)
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 2, 2, 1)
    >>> bool(np.array_equal(np.asarray(layer(x)), x)), int(layer.batches.numpy())
    (True, 0)
    >>> out = np.asarray(layer(x, training=True))
    >>> expected = np.asarray(build_augment(layer.steps)(x, batch_seed(3, 0)))
    >>> bool(np.array_equal(out, expected)), int(layer.batches.numpy())
    (True, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ct3d.augment.chain import build_augment
from ct3d.backend import import_keras
from ct3d.registry import StepLike, resolve_step

keras = import_keras()

__all__ = ["AUGMENT_LAYER", "DeviceAugment", "with_augment"]

AUGMENT_LAYER = "augment"
"""The name of the :class:`DeviceAugment` layer in a model."""


@keras.saving.register_keras_serializable(package="ct3d")
class DeviceAugment(keras.layers.Layer):
    """The augmentation chain of ``steps``, applied to training batches only.

    Args:
        steps: the augmentation steps (as ``Scenario.augment`` or
            :func:`~ct3d.augment.build_augment` take them).
        seed: the run's augmentation seed (the fold's training seed).
    """

    def __init__(self, steps: Sequence[StepLike], seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        resolved = [resolve_step("augment", step) for step in steps]
        self.steps = [s.to_dict() for s in resolved]
        self.seed = int(seed)
        self.chain = build_augment(resolved)
        self.batches = self.add_weight(name="batches", shape=(), dtype="int32",
                                       initializer="zeros", trainable=False)

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training:
            return x
        k = keras.ops.cast(self.batches, "int32")
        seed = keras.ops.stack([keras.ops.convert_to_tensor(self.seed, "int32"), k])
        x = self.chain(x, seed)
        self.batches.assign(k + 1)  # after its last read: a TensorFlow variable is read late
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "steps": self.steps, "seed": self.seed}


def with_augment(model: Any, steps: Sequence[StepLike], seed: int) -> Any:
    """``model`` with a :class:`DeviceAugment` layer (named :data:`AUGMENT_LAYER`) between
    its input and its first layer; the model's own layers are reused (flat, same weights).

    Example:
        >>> from ct3d.models import build_model
        >>> model = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1))
        >>> [layer.name for layer in with_augment(model, ["flip"], 0).layers[:3]]
        ['scan', 'augment', 'block1_conv']
    """
    if len(model.inputs) != 1:
        raise ValueError(f"train.augment_on=device needs a single-input model; {model.name!r} "
                         f"has {len(model.inputs)} inputs")
    inputs = keras.Input(model.inputs[0].shape[1:], name=model.inputs[0].name)
    augmented = DeviceAugment(steps, seed, name=AUGMENT_LAYER)(inputs)
    return keras.Model(inputs, model.call(augmented), name=model.name)
