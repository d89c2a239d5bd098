"""Seeded random numbers that are the same on every Keras backend.

``keras.random`` draws through each backend's own generator (TensorFlow's Philox, JAX's
threefry, PyTorch's Mersenne twister), so one seed gives other numbers on each backend. An
augmentation must not depend on the backend, so ct3d draws its numbers here instead: a
counter-based generator (the ``lowbias32`` integer hash of a counter mixed with the seed) in
``keras.ops`` int32 arithmetic, which wraps the same way on TensorFlow, JAX and PyTorch.
It is stateless, as TensorFlow's ``stateless_*`` ops are: the numbers are a pure function of
the seed (``int32[2]``) and the shape, on the CPU and on an accelerator alike.

Uniform numbers carry 24 random bits, the precision of a float32 in [0, 1); they are exact
on every backend. Normal numbers go through Box-Muller (``log``, ``cos``), so backends may
differ in the last bits. This is a generator for augmentation, not for cryptography.

Example:
    >>> import numpy as np
    >>> u = np.asarray(uniform([3, 4], (5,), 0.0, 1.0))
    >>> np.array_equal(u, np.asarray(uniform([3, 4], (5,))))
    True
    >>> bool(((u >= 0) & (u < 1)).all())
    True
    >>> np.array_equal(u, np.asarray(uniform(fold_in([3, 4], 0), (5,))))
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["fold_in", "normal", "uniform"]

_MUL_1 = 0x7FEB352D
_MUL_2 = 0x846CA68B - (1 << 32)
"""The ``lowbias32`` multipliers, the second as the int32 with the same 32 bits."""

_GOLDEN = 0x9E3779B9 - (1 << 32)
"""2**32 / golden ratio (as int32): spreads consecutive counters over all 32 bits."""

_SEED_MIX = (0x6A09E667, 0x3C6EF372)
"""Added to the two halves of a seed, so that the seed ``[0, 0]`` hashes no zeros."""

_UNIT = 1.0 / (1 << 24)


def _int32(value: Any) -> Any:
    from keras import ops

    return ops.convert_to_tensor(value, "int32")


def _shift_right(x: Any, bits: int) -> Any:
    """Logical right shift of int32 ``x`` (``>>`` is arithmetic on signed integers)."""
    from keras import ops

    return ops.bitwise_and(ops.right_shift(x, bits), (1 << (32 - bits)) - 1)


def _hash(x: Any) -> Any:
    """``lowbias32`` (C. Wellons): a bijective mix of the 32 bits of ``x`` (int32)."""
    from keras import ops

    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, _int32(_MUL_1))
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = ops.multiply(x, _int32(_MUL_2))
    return ops.bitwise_xor(x, _shift_right(x, 16))


def _barrier(x: Any) -> Any:
    """``x``, computed once under XLA on JAX (``jax.lax.optimization_barrier``).

    XLA fuses elementwise ops by duplicating each into its consumers; every hash uses its
    input twice per round, so nested hashes (a seed folded into a seed folded ...) grow the
    fused expression exponentially, and compiling a train step that augments
    (``train.augment_on: device``) took minutes. The barrier keeps each seed computed once.
    """
    from keras import backend

    if backend.backend() != "jax":
        return x
    import jax

    return jax.lax.optimization_barrier(x)


def _key(seed: Any) -> tuple[Any, Any]:
    """Two int32 keys from ``seed`` (``int32[2]``, or a pair of Python ints)."""
    from keras import ops

    seed = ops.cast(ops.convert_to_tensor(seed), "int32")
    first = _barrier(_hash(ops.add(seed[0], _int32(_SEED_MIX[0]))))
    return first, _barrier(
        _hash(ops.bitwise_xor(_hash(ops.add(seed[1], _int32(_SEED_MIX[1]))), first)))


def fold_in(seed: Any, data: Any) -> Any:
    """A new seed (``int32[2]``) from ``seed`` and an integer ``data``: one seed per step,
    per axis or per batch, independent of ``seed`` and of each other."""
    from keras import ops

    first, second = _key(seed)
    data = _barrier(_hash(ops.add(ops.multiply(_int32(data), _int32(_GOLDEN)), second)))
    return _barrier(ops.stack([_hash(ops.bitwise_xor(first, data)),
                               _hash(ops.add(second, data))]))


def _count(shape: Sequence[Any]) -> Any:
    """The number of elements of ``shape`` (an int, or a tensor when a size is dynamic)."""
    from keras import ops

    return math.prod(shape) if all(isinstance(d, int) for d in shape) else ops.prod(shape)


def _bits(seed: Any, shape: Sequence[Any]) -> Any:
    """Random int32 values of ``shape``, each with 24 random bits in its low bits."""
    from keras import ops

    first, second = _key(seed)
    count = _count(shape)
    counters = ops.multiply(ops.arange(count, dtype="int32"), _int32(_GOLDEN))
    mixed = _hash(ops.add(_hash(ops.bitwise_xor(counters, first)), second))
    return ops.reshape(_shift_right(mixed, 8), shape)


def uniform(seed: Any, shape: Sequence[Any], low: float = 0.0, high: float = 1.0) -> Any:
    """Float32 numbers of ``shape``, uniform in [low, high), a pure function of ``seed``.

    ``shape`` may hold a batch tensor's dynamic sizes (``keras.ops.shape(x)``).
    """
    from keras import ops

    unit = ops.multiply(ops.cast(_bits(seed, shape), "float32"), _UNIT)
    return ops.add(ops.multiply(unit, high - low), low)


def normal(seed: Any, shape: Sequence[Any], std: float = 1.0) -> Any:
    """Float32 numbers of ``shape``, normal with mean 0 and ``std``.

    Box-Muller: each pair of uniform numbers gives two independent normal numbers (cosine
    and sine), so half as many uniform numbers are drawn as normal numbers are returned.
    """
    from keras import ops

    count = _count(shape)
    pairs = (count + 1) // 2
    radius = ops.sqrt(-2.0 * ops.log(1.0 - uniform(fold_in(seed, 0), (pairs,))))
    angle = uniform(fold_in(seed, 1), (pairs,), 0.0, 2.0 * math.pi)
    both = ops.concatenate([radius * ops.cos(angle), radius * ops.sin(angle)])
    return ops.multiply(ops.reshape(both[:count], shape), std)
