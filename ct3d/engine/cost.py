"""What a model costs: parameters and GFLOPs of one scan's forward pass; and the peak memory
of the process that trained it.

A run records :func:`model_cost` in ``metrics.json`` (``cost``, the same on every machine)
and :func:`peak_rss_gib` beside ``time_per_epoch_s`` (both measured here, so they differ from
run to run), so a grid's index can set each model family's price beside its AUC;
``benchmarks/model_speed.py`` uses the same functions for its table.

Example::

    model = ct3d.build_model("modified_3dcnn", input_shape=(64, 64, 48, 1))
    forward_gflops(model)     # 0.78: multiply-adds count 2 FLOPs
    model_cost(model)         # {"parameters": 214817, "gflops_per_scan": 0.78, ...}
"""

from __future__ import annotations

import resource
import sys
import warnings
from typing import Any

__all__ = ["forward_gflops", "model_cost", "peak_rss_gib"]


def peak_rss_gib() -> float:
    """The peak resident memory of this process so far, in GiB.

    Example:
        >>> 0.0 < peak_rss_gib() < 1024
        True
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**30 if sys.platform == "darwin" else peak / 2**20  # bytes vs KiB


def forward_gflops(model: Any) -> float:
    """GFLOPs of one scan's forward pass (inference mode) of ``model``, counted by
    TensorFlow's profiler on the traced graph (a multiply-add is 2 FLOPs); TensorFlow
    backend only (NotImplementedError on the others)."""
    from ct3d.backend import keras_backend

    if keras_backend() != "tensorflow":
        raise NotImplementedError(f"FLOPs are counted by TensorFlow's profiler, not on the "
                                  f"{keras_backend()} backend")
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler's deprecation notice quotes TensorFlow's path
    try:
        flops = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                              cmd="op", options=options)
    finally:
        logger.setLevel(level)
    return flops.total_float_ops / 1e9


def model_cost(model: Any) -> dict[str, Any]:
    """``parameters``, ``gflops_per_scan`` (None, with a warning, where the profiler cannot
    trace the model) and ``input_shape`` (one scan's, channels last)."""
    try:
        gflops: float | None = float(f"{forward_gflops(model):.4g}")
    except (ValueError, TypeError, NotImplementedError) as exc:
        warnings.warn(f"GFLOPs per scan not counted for {model.name}: {exc}", stacklevel=2)
        gflops = None
    return {"parameters": int(model.count_params()), "gflops_per_scan": gflops,
            "input_shape": [int(d) for d in model.input_shape[1:]]}
