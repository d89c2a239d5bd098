"""Devices: logical CPUs, the distribution strategy and the mixed-precision policy.

One concern per function, each reading its choice from the scenario's ``train`` section:

* :func:`configure_from_env` applies ``CT3D_LOGICAL_CPUS=N`` (split the CPU into N logical
  devices, so that ``strategy: mirrored`` can be tried without GPUs). It must run before
  the backend initialises its devices; ``ct3d`` calls it first thing.
* :func:`make_strategy` turns ``train.strategy`` into a strategy: ``auto`` (several GPUs:
  all of them; else one device), ``default``, ``mirrored`` (every GPU, or every logical CPU
  when there is no GPU) or ``multi_worker`` (several processes, usually on several hosts).
  On TensorFlow these are ``tf.distribute``'s ``MirroredStrategy`` and
  ``MultiWorkerMirroredStrategy`` (cluster in ``TF_CONFIG``); on JAX,
  ``keras.distribution.DataParallel`` (:class:`DataParallel`; cluster in the
  ``KERAS_DISTRIBUTION_*`` variables); PyTorch trains on one device.
* :func:`resolve_precision` turns ``train.mixed_precision`` into a Keras dtype policy name and
  :func:`dtype_policy` sets it for the duration of model building only.

Example::

    from ct3d.engine import devices
    devices.configure_from_env()                  # CT3D_LOGICAL_CPUS=2 -> CPU:0, CPU:1
    strategy = devices.make_strategy("mirrored")  # 2 replicas
    with strategy.scope(), devices.dtype_policy(devices.resolve_precision("auto")):
        model = build_and_compile()
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from ct3d.backend import import_tensorflow, keras_backend
from ct3d.errors import Ct3dError

LOGICAL_CPUS_ENV = "CT3D_LOGICAL_CPUS"
JAX_CLUSTER_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                   "KERAS_DISTRIBUTION_PROCESS_ID")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
PRECISIONS = ("auto", "off", "mixed_float16", "mixed_bfloat16")

_strategies: dict[str, Any] = {}


class DeviceError(Ct3dError, RuntimeError):
    """A device setting that cannot be applied: a bad value, or TensorFlow already started."""


def configure_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """Apply ``CT3D_LOGICAL_CPUS`` (from ``environ``, default ``os.environ``); return N or None.

    Unset or empty: nothing changes and None is returned. Call it before anything starts
    TensorFlow; calling it again with the same N is harmless.

    Example:
        >>> configure_from_env({})  # variable not set: no change
        >>> configure_from_env({"CT3D_LOGICAL_CPUS": "two"})
        Traceback (most recent call last):
        ...
        ct3d.engine.devices.DeviceError: CT3D_LOGICAL_CPUS must be an integer >= 1; got 'two'
    """
    value = (os.environ if environ is None else environ).get(LOGICAL_CPUS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise DeviceError(f"{LOGICAL_CPUS_ENV} must be an integer >= 1; got {value!r}")
    configure_logical_cpus(int(value))
    return int(value)


def configure_logical_cpus(n: int) -> None:
    """Split the first physical CPU into ``n`` logical devices (``/device:CPU:0`` .. ``n-1``;
    on JAX, through ``XLA_FLAGS``: ``n`` CPU devices).

    Raises :class:`DeviceError` when TensorFlow has already initialised its devices with a
    different number of logical CPUs (the split can only be made before that; on JAX,
    :func:`make_strategy` finds out).

    Example:
        >>> configure_logical_cpus(0)
        Traceback (most recent call last):
        ...
        ct3d.engine.devices.DeviceError: the number of logical CPUs must be >= 1; got 0
    """
    if n < 1:
        raise DeviceError(f"the number of logical CPUs must be >= 1; got {n}")
    backend = keras_backend()
    if backend == "jax":
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
                 if not f.startswith(_JAX_CPUS_FLAG)]
        os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_JAX_CPUS_FLAG}={n}"])
        return
    if backend != "tensorflow":
        raise DeviceError(f"{LOGICAL_CPUS_ENV} splits the CPU for data-parallel training on "
                          f"TensorFlow or JAX; the {backend} backend has no such split: unset it")
    tf = import_tensorflow()

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise DeviceError(
                f"{LOGICAL_CPUS_ENV}={n}: TensorFlow has already started with {have} logical "
                f"CPU(s); the split must happen before that (set the variable before starting "
                f"Python or the notebook kernel, or call ct3d.engine.devices.configure_from_env() "
                f"before anything else)") from None


_JAX_CPUS_FLAG = "--xla_force_host_platform_device_count"


class DataParallel:
    """``train.strategy`` ``mirrored`` or ``multi_worker`` (or ``auto`` on several GPUs) on
    JAX: ``keras.distribution.DataParallel`` over ``devices`` (those of every process), the
    model replicated, every batch split evenly between the devices; each process feeds its
    own part of every batch (:meth:`share`).

    Example::

        strategy = DataParallel(jax.devices())
        with strategy.scope():
            model = build_and_compile()
    """

    def __init__(self, devices: list[Any]) -> None:
        import jax
        import keras

        self.distribution = keras.distribution.DataParallel(devices=devices,
                                                            auto_shard_dataset=False)
        self.num_replicas_in_sync = len(devices)
        self.process, self.processes = jax.process_index(), jax.process_count()

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        """A block in which models are built, trained and evaluated on every device."""
        return self.distribution.scope()


class OneDevice:
    """The strategy on the JAX and PyTorch backends: one replica on the backend's default
    device (its first GPU when it sees one), no ``tf.distribute``."""

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.AbstractContextManager[None]:
        """A block that changes nothing (the backend places the model itself)."""
        return contextlib.nullcontext()


def visible_gpus() -> list[tuple[str, tuple[int, ...] | None]]:
    """The GPUs the Keras backend sees: ``(name, compute capability or None)`` each."""
    backend = keras_backend()
    if backend == "jax":
        import jax

        return [(d.device_kind, _capability(getattr(d, "compute_capability", None)))
                for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return [(torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
                for i in range(torch.cuda.device_count())]
    tf = import_tensorflow()
    details = [tf.config.experimental.get_device_details(g)
               for g in tf.config.list_physical_devices("GPU")]
    return [(d.get("device_name", "GPU"), _capability(d.get("compute_capability")))
            for d in details]


def _capability(value: Any) -> tuple[int, ...] | None:
    """A compute capability as a tuple: from ``(9, 0)`` or ``"9.0"``; None when unknown."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(int(v) for v in value.split("."))
    return tuple(int(v) for v in value)


def replicas_now() -> int:
    """The number of replicas the model being built will train on (the current
    ``tf.distribute`` strategy's on TensorFlow; 1 on the other backends)."""
    if keras_backend() != "tensorflow":
        return 1
    return import_tensorflow().distribute.get_strategy().num_replicas_in_sync


def jit_compile(setting: bool) -> bool:
    """``compile(jit_compile=...)`` for ``train.jit_compile`` on the Keras backend: on JAX
    always True (XLA is how JAX runs a step; without it every op runs alone), else as set
    (TensorFlow: XLA; PyTorch: ``torch.compile``)."""
    return True if keras_backend() == "jax" else setting


def set_deterministic() -> None:
    """Make the backend's ops deterministic: TensorFlow op determinism, PyTorch's
    deterministic algorithms; JAX's CPU ops already are."""
    backend = keras_backend()
    if backend == "tensorflow":
        import_tensorflow().config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)


def make_strategy(name: str) -> Any:
    """The strategy for ``train.strategy`` (one per name and process).

    ``auto``: ``MirroredStrategy`` over every GPU when more than one is visible, else the
    default strategy. ``default``: the current strategy (the default one: one device).
    ``mirrored``: ``MirroredStrategy`` over every GPU or, without GPUs, over every logical
    CPU (see :func:`configure_from_env`). ``multi_worker``: ``MultiWorkerMirroredStrategy``
    over the cluster in ``TF_CONFIG``; it must be created before TensorFlow starts.

    On JAX the same names give :class:`DataParallel` (over every GPU, every logical CPU, or
    every device of the cluster in the ``KERAS_DISTRIBUTION_*`` variables) or
    :class:`OneDevice`; on PyTorch only ``auto`` and ``default`` (one device) are possible.

    Example:
        >>> make_strategy("default").num_replicas_in_sync
        1
        >>> make_strategy("mirored")
        Traceback (most recent call last):
        ...
        ct3d.engine.devices.DeviceError: unknown strategy 'mirored'; known: auto, default, ...
    """
    if name not in STRATEGIES:
        raise DeviceError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    backend = keras_backend()
    if backend == "jax":
        return _jax_strategy(name)
    if backend != "tensorflow":
        if name in ("auto", "default"):
            return OneDevice()
        raise DeviceError(f"train.strategy={name!r}: Keras has no distribution for the "
                          f"{backend} backend; ct3d trains on one device there "
                          f"(train.strategy: auto or default), or use TensorFlow or JAX")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _strategies:
        _strategies[name] = _mirrored(gpus) if name == "mirrored" else _multi_worker()
    return _strategies[name]


def _jax_strategy(name: str) -> Any:
    """``train.strategy`` on JAX (see :func:`make_strategy`)."""
    if name == "default":
        return OneDevice()
    if name in _strategies:
        return _strategies[name]
    import jax

    if name == "multi_worker":
        _jax_cluster()
    elif name == "auto":
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return DataParallel(gpus) if len(gpus) > 1 else OneDevice()
    wanted = os.environ.get(LOGICAL_CPUS_ENV, "").strip()
    cpus = len(jax.local_devices(backend="cpu"))
    if wanted.isdigit() and not visible_gpus() and cpus != int(wanted):
        raise DeviceError(
            f"{LOGICAL_CPUS_ENV}={wanted}: JAX has already started with {cpus} CPU device(s); "
            f"the split must happen before that (set the variable before starting Python or "
            f"the notebook kernel, or call ct3d.engine.devices.configure_from_env() first)")
    _strategies[name] = DataParallel(jax.devices())
    return _strategies[name]


def _jax_cluster() -> None:
    """Join the processes of a JAX cluster (``keras.distribution.initialize`` from the
    ``KERAS_DISTRIBUTION_*`` variables); collectives between CPUs go through Gloo."""
    missing = [v for v in JAX_CLUSTER_ENV if not os.environ.get(v, "").strip()]
    if missing:
        raise DeviceError(f"train.strategy=multi_worker on JAX needs {', '.join(JAX_CLUSTER_ENV)} "
                          f"(the coordinator's host:port, the number of processes, this one's "
                          f"index from 0); not set: {', '.join(missing)}")
    import jax
    import keras

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        keras.distribution.initialize()
    except RuntimeError as exc:
        raise DeviceError(f"cannot join the JAX cluster ({exc}); it must be joined before "
                          f"JAX runs anything (start a fresh process or kernel)") from None


def _mirrored(gpus: list[Any]) -> Any:
    import tensorflow as tf

    if gpus:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy(
        devices=[d.name for d in tf.config.list_logical_devices("CPU")])


def _multi_worker() -> Any:
    if not os.environ.get("TF_CONFIG"):
        raise DeviceError("train.strategy=multi_worker needs TF_CONFIG (the cluster's "
                          "workers and this process' task); see the README")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as exc:
        raise DeviceError(f"TF_CONFIG is not valid JSON: {exc}") from None
    try:
        return _keras_multi_worker_class()()
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(
            f"cannot start MultiWorkerMirroredStrategy ({exc}); it must be created before "
            f"TensorFlow runs anything in this process (start a fresh process per worker)"
        ) from None


def _keras_multi_worker_class() -> type:
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` accepts what Keras 3's ``fit`` passes.

    Keras 3 (3.15 and earlier, keras-team/keras#20585) calls ``strategy.reduce`` with a
    nested data batch (to build the model) and with scalar metric results and ``axis=0``;
    the multi-worker strategy refuses both. Here each leaf is reduced on its own, and a
    scalar across the replicas (``axis=None``): the mean of the replicas' values, which is
    what Keras asks for.
    """
    import tensorflow as tf

    base = tf.distribute.MultiWorkerMirroredStrategy

    class KerasMultiWorkerMirroredStrategy(base):
        def reduce(self, reduce_op: Any, value: Any, axis: int | None) -> Any:
            def one(v: Any) -> Any:
                rank = self.experimental_local_results(v)[0].shape.rank
                return base.reduce(self, reduce_op, v, axis if rank else None)

            return tf.nest.map_structure(one, value)

    return KerasMultiWorkerMirroredStrategy


def chief_task(task_type: str | None, task_id: int, cluster: Mapping[str, Any]) -> bool:
    """Whether a task writes the run folder: the ``chief`` task, or worker 0 when the
    ``cluster`` (job name -> addresses) has no chief; a process outside a cluster does too.

    Example:
        >>> workers = {"worker": ["host1:2222", "host2:2222"]}
        >>> chief_task("worker", 0, workers), chief_task("worker", 1, workers)
        (True, False)
    """
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def is_chief(strategy: Any) -> bool:
    """Whether this process writes the run folder under ``strategy``: always, except on a
    non-chief worker (see :func:`chief_task`).

    Example:
        >>> is_chief(make_strategy("default"))
        True
    """
    if isinstance(strategy, DataParallel):
        return strategy.process == 0
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    return chief_task(resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict())


def chief_from_env(strategy: str, environ: Mapping[str, str] | None = None) -> bool:
    """What :func:`is_chief` will say once ``strategy`` (``train.strategy``) is made, read
    from ``TF_CONFIG`` (on JAX, ``KERAS_DISTRIBUTION_PROCESS_ID``) without starting the
    backend (so that a run folder can be checked before it does). A malformed ``TF_CONFIG``
    counts as chief: making the strategy then reports it.

    Example:
        >>> config = json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
        ...                      "task": {"type": "worker", "index": 1}})
        >>> chief_from_env("multi_worker", {"TF_CONFIG": config}), chief_from_env("default", {})
        (False, True)
    """
    if strategy != "multi_worker":
        return True
    environ = os.environ if environ is None else environ
    if keras_backend() == "jax":
        return environ.get(JAX_CLUSTER_ENV[2], "").strip() in ("", "0")
    try:
        config = json.loads(environ.get("TF_CONFIG", ""))
        task = config["task"]
        return chief_task(task.get("type"), int(task.get("index", 0)), config["cluster"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return True


def num_workers(strategy: Any) -> int:
    """The number of worker processes (``chief`` and ``worker`` tasks) the strategy spans.

    Example:
        >>> num_workers(make_strategy("default"))
        1
    """
    if isinstance(strategy, DataParallel):
        return strategy.processes
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def wait_for_workers(strategy: Any) -> None:
    """Return once every worker of a multi-worker strategy has called this (at once if one).

    The chief runs the coordination service (TensorFlow's, or JAX's): a worker still busy
    when the chief's process ends loses it, so every worker passes this point before leaving
    a run.

    Example:
        >>> wait_for_workers(make_strategy("default"))  # one worker: returns at once
    """
    if num_workers(strategy) > 1 and isinstance(strategy, DataParallel):
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("ct3d: run finished")
    elif num_workers(strategy) > 1:
        import tensorflow as tf

        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def augment_place(setting: str, strategy: Any, jit: bool = False) -> str:
    """Where ``train.augment_on`` augments under ``strategy``: ``input`` or ``device``.

    ``auto``: ``device`` when one GPU trains (one replica) and, on TensorFlow, without
    ``jit``, else ``input``.

    Raises:
        DeviceError: ``device`` with several replicas (each would draw the same numbers), or
            on TensorFlow with ``jit`` (XLA has no kernel for the image transform that
            ``rotate`` and ``zoom`` use).

    Example:
        >>> augment_place("auto", make_strategy("default"))  # no GPU here
        'input'
    """
    replicas = strategy.num_replicas_in_sync
    xla_tf = jit and keras_backend() == "tensorflow"
    if setting == "device" and replicas > 1:
        raise DeviceError(f"train.augment_on='device' needs one replica; this strategy has "
                          f"{replicas}: use augment_on: input (or auto)")
    if setting == "device" and xla_tf:
        raise DeviceError("train.augment_on='device' with jit_compile on TensorFlow: XLA has "
                          "no kernel for the image transform of rotate and zoom; set "
                          "jit_compile: false, or augment_on: input (or auto)")
    if setting == "auto":
        return "device" if replicas == 1 and not xla_tf and visible_gpus() else "input"
    return setting


def resolve_precision(setting: str) -> str:
    """The Keras dtype policy for ``train.mixed_precision``.

    ``off``: ``float32``. ``auto``: ``mixed_float16`` when GPUs are visible and every one
    has compute capability >= 7.0 (tensor cores), else ``float32`` (CPU included).
    ``mixed_float16`` / ``mixed_bfloat16``: that policy.

    Example:
        >>> resolve_precision("off"), resolve_precision("mixed_bfloat16")
        ('float32', 'mixed_bfloat16')
    """
    if setting not in PRECISIONS:
        raise DeviceError(f"unknown mixed_precision {setting!r}; known: {', '.join(PRECISIONS)}")
    if setting == "off":
        return "float32"
    if setting != "auto":
        return setting
    gpus = visible_gpus()
    if gpus and all(c is not None and c >= (7, 0) for _, c in gpus):
        return "mixed_float16"
    return "float32"


def describe(strategy: Any, mixed_precision: str = "off") -> str:
    """In a few words, where training runs and in which precision.

    Example:
        >>> describe(make_strategy("default"))  # on this 2-core test machine
        'training on the CPU (no GPU visible), one replica, float32'
    """
    gpus = visible_gpus()
    names = sorted({name for name, _ in gpus})
    where = (f"{len(gpus)} GPU(s) ({', '.join(names)})" if gpus
             else "the CPU (no GPU visible)")
    replicas = strategy.num_replicas_in_sync
    spread = "one replica" if replicas == 1 else f"{replicas} replicas"
    if num_workers(strategy) > 1:
        spread += f" on {num_workers(strategy)} workers"
    backend = keras_backend()
    on = "" if backend == "tensorflow" else f", {backend} backend"
    return f"training on {where}{on}, {spread}, {resolve_precision(mixed_precision)}"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Set the global Keras dtype policy to ``name`` inside the block, restore it after.

    Layers keep the policy they were built with, so a model built inside the block computes
    in that precision afterwards too (and is saved and loaded with it).

    Example:
        >>> import keras
        >>> with dtype_policy("mixed_bfloat16"):
        ...     keras.layers.Dense(1).compute_dtype
        'bfloat16'
        >>> keras.config.dtype_policy().name
        'float32'
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
