"""Gradients with the Keras backend's own automatic differentiation.

:func:`gradient` differentiates a scalar function of one tensor with TensorFlow's
``GradientTape``, ``jax.grad`` or ``torch.autograd``, whichever backend Keras runs on, so
that code built on it (Grad-CAM: :mod:`ct3d.saliency`) is written once for all three.

Example:
    >>> import keras
    >>> x = keras.ops.convert_to_tensor(np.array([1.0, -2.0, 3.0], np.float32))
    >>> gradient(lambda t: keras.ops.sum(t * t), x).tolist()
    [2.0, -4.0, 6.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ct3d.backend import BACKENDS, import_keras, keras_backend

__all__ = ["gradient"]


def _tensorflow(fn: Callable[[Any], Any], x: Any) -> Any:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return tape.gradient(y, x)


def _jax(fn: Callable[[Any], Any], x: Any) -> Any:
    import jax

    return jax.grad(fn)(x)


def _torch(fn: Callable[[Any], Any], x: Any) -> Any:
    import torch

    leaf = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(leaf), leaf)
    return grad


_GRADIENTS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def gradient(fn: Callable[[Any], Any], x: Any) -> np.ndarray:
    """d fn(x) / dx for a function ``fn`` returning a scalar tensor, as float32 numpy.

    Args:
        fn: a function of one tensor, written with ``keras.ops`` or Keras layers and models.
        x: the point, a tensor of the current backend (``keras.ops.convert_to_tensor``).

    Returns:
        The gradient, shaped like ``x``; zeros where ``fn`` does not depend on ``x``.
    """
    keras = import_keras()
    backend = keras_backend()
    if backend not in _GRADIENTS:
        raise ValueError(f"ct3d computes gradients on the {', '.join(BACKENDS)} backends; "
                         f"Keras runs on {backend!r}")
    grad = _GRADIENTS[backend](fn, x)
    if grad is None:
        return np.zeros(tuple(x.shape), np.float32)
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(grad, "float32")))
