"""Devices and distribution: logical CPUs, strategies, mixed precision and XLA flags, and
training on 2 logical CPUs (``mirrored``) and on 2 local worker processes (``multi_worker``)
compared with one device.

Every test sets up what it uses (no test relies on another having run first). The
distributed runs happen in subprocesses (the logical CPU split and the multi-worker
strategy must be set up before TensorFlow starts, and this process has started it). They
train with SGD and without dropout so that their numbers can be compared with one device:
dropout masks are drawn per replica, and Adam turns the rounding noise of gradients that
are 0 in exact arithmetic (the conv biases in front of BatchNormalization) into steps of
the size of the learning rate.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

import ct3d
from ct3d.data import pipeline
from ct3d.engine import devices, run
from ct3d.engine.fit import check_batch, compiled_model
from ct3d.engine.state import EpochState
from ct3d.scenario import Scenario

# Replicas see other batch sizes, so every sum runs in another order: float32 rounding,
# which the BatchNormalization backward pass amplifies (it subtracts nearly equal means).
# Measured on 2 CPU cores: predictions within 2.1e-5 on the old stand-in and within 2.5e-3
# on the new one (lungs that fill the rib cage over domed bases; the same scans in both
# runs, none sitting out), training loss within 6e-5, validation loss within 1.9e-3.
# Unsynchronized BatchNormalization (per-replica statistics of 2 scans) is off by 0.18, 0.1
# and 0.09, so these bounds tell the two apart.
PROBABILITY_ATOL = 5e-3
LOSS_ATOL = 5e-3
RUN_FILES = ["history.csv", "metrics.json", "model.keras", "predictions.csv", "scenario.yaml",
             "split.csv", "state"]
CLI_FILES = ["MODEL_CARD.md", *RUN_FILES]
"""What ``ct3d train`` (``ct3d.run``) leaves: the engine's files and the model card."""


def _comparable(root: Path, out: Path, make_scenario: Callable[..., Scenario],
                **overrides: object) -> Scenario:
    return make_scenario(root, out, **{
        "model.params.dropout": 0.0, "model.params.head_dropout": 0.0,
        "train.optimizer": "sgd", **overrides})


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_training(run_dir: Path, reference: Path) -> None:
    """Same epochs, metrics, best epoch and predictions as ``reference``, within rounding."""
    ours, theirs = _rows(run_dir / "history.csv"), _rows(reference / "history.csv")
    assert [r["epoch"] for r in ours] == [r["epoch"] for r in theirs] == ["1", "2"]
    assert list(ours[0]) == list(theirs[0])  # the same history.csv columns
    for a, b in zip(ours, theirs, strict=True):
        for key in ("accuracy", "auc", "val_accuracy", "val_auc"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-6), key
        for key in ("loss", "mse", "val_loss", "val_mse"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=LOSS_ATOL), key
    p, q = _rows(run_dir / "predictions.csv"), _rows(reference / "predictions.csv")
    assert [r["scan"] for r in p] == [r["scan"] for r in q]
    np.testing.assert_allclose([float(r["probability"]) for r in p],
                               [float(r["probability"]) for r in q], atol=PROBABILITY_ATOL)
    m, n = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    assert (m["best_epoch"], m["confusion_matrix"]) == (n["best_epoch"], n["confusion_matrix"])


def _synchronized_batch_norm(run_dir: Path) -> list[bool]:
    model = keras.models.load_model(run_dir / "model.keras")
    return [layer.synchronized for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "CT3D_LOGICAL_CPUS")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single_device(
    cohort_root: Path, tmp_path_factory: pytest.TempPathFactory,
    make_scenario: Callable[..., Scenario],
) -> Path:
    """The reference: the comparable scenario trained on this process' one CPU device.

    Running first, it also generates the cohort and fills the cache that the subprocesses
    share (they only read them)."""
    out = tmp_path_factory.mktemp("single") / "run"
    result = run(_comparable(cohort_root, out, make_scenario, **{"train.strategy": "default"}),
                 verbose=0)
    assert sorted(p.name for p in result.run_dir.iterdir()) == RUN_FILES
    return out


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_trains_like_one_device(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario],
    single_device: Path,
) -> None:
    path = tmp_path / "s.yaml"
    _comparable(cohort_root, tmp_path / "unused", make_scenario).to_yaml(path)
    out = tmp_path / "mirrored"
    proc = subprocess.run(
        [sys.executable, "-m", "ct3d.cli", "train", str(path), "--out", str(out),
         "--set", "train.strategy=mirrored"],
        env=_env(CT3D_LOGICAL_CPUS="2"), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == CLI_FILES
    assert _synchronized_batch_norm(out) == [True] * 4  # 2 replicas: global-batch statistics
    assert _synchronized_batch_norm(single_device) == [False] * 4
    _assert_same_training(out, single_device)


@pytest.mark.multiworker
def test_two_workers_train_like_one_device_and_only_the_chief_writes(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario],
    single_device: Path,
) -> None:
    path = tmp_path / "s.yaml"
    out = tmp_path / "cluster-run"
    _comparable(cohort_root, out, make_scenario,
                **{"train.strategy": "multi_worker"}).to_yaml(path)
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    scratch = [tmp_path / "tmp0", tmp_path / "tmp1"]
    procs = []
    for index in (0, 1):
        scratch[index].mkdir()
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ct3d.cli", "train", str(path)],
            env=_env(TF_CONFIG=json.dumps(config), TMPDIR=str(scratch[index])),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 240
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for index, (proc, (stdout, stderr)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"worker {index}:\n{stderr[-3000:]}"
        assert f"run folder: {out}" in stdout
    assert sorted(p.name for p in out.iterdir()) == CLI_FILES
    assert list(scratch[1].iterdir()) == []  # the worker's temporary run folder is gone
    assert _synchronized_batch_norm(out) == [True] * 4
    _assert_same_training(out, single_device)


def _fake_strategy(task_type: str, task_id: int, replicas: int = 1,
                   **jobs: list[str]) -> SimpleNamespace:
    """A stand-in for a multi-worker strategy: a real cluster resolver, no servers."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(jobs), task_type=task_type, task_id=task_id)
    return SimpleNamespace(cluster_resolver=resolver, num_replicas_in_sync=replicas)


def test_first_batch_must_split_evenly_between_workers() -> None:
    two = ["127.0.0.1:1", "127.0.0.1:2"]
    check_batch(9, 4, _fake_strategy("worker", 0, 2, worker=two))
    with pytest.raises(devices.DeviceError, match=r"first training batch \(3 scans.*multiple "
                                                  r"of the 2 replicas; with train.strategy"):
        check_batch(3, 4, _fake_strategy("worker", 1, 2, worker=two))
    with pytest.warns(UserWarning, match="2 replicas: the replicas get unequal parts"):
        check_batch(3, 4, SimpleNamespace(num_replicas_in_sync=2))


@pytest.mark.slow
def test_mixed_bfloat16_trains_saves_resumes_and_predicts_in_float32(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario],
) -> None:
    bf16 = {"train.mixed_precision": "mixed_bfloat16", "train.strategy": "default"}
    full = run(make_scenario(cohort_root, tmp_path / "full", **bf16), verbose=0)
    assert keras.config.dtype_policy().name == "float32"  # restored after building
    model = keras.models.load_model(tmp_path / "full" / "model.keras")
    assert model.get_layer("block1_conv").compute_dtype == "bfloat16"
    assert model.get_layer("block1_conv").variable_dtype == "float32"
    assert model.get_layer("probability").compute_dtype == "float32"
    assert model.predict(np.zeros((1, 46, 46, 46, 1), "float32"), verbose=0).dtype == np.float32
    test_rows = [r for r in _rows(tmp_path / "full" / "predictions.csv") if r["part"] == "test"]
    predicted = ct3d.predict(tmp_path / "full", [r["scan"] for r in test_rows], progress=False)
    np.testing.assert_allclose([r.probability for r in predicted],
                               [float(r["probability"]) for r in test_rows], atol=1e-5)

    part = tmp_path / "part"
    run(make_scenario(cohort_root, part, **bf16, **{"train.epochs": 1}), verbose=0)
    Scenario.from_file(part / "scenario.yaml").with_overrides(
        {"train.epochs": 2}).to_yaml(part / "scenario.yaml")
    resumed = run(resume=part, verbose=0)
    assert [r["epoch"] for r in _rows(part / "history.csv")] == ["1", "2"]
    for key in ("loss", "val_loss", "accuracy", "auc"):
        assert resumed.history[key] == full.history[key], key
    measured = ("time_per_epoch_s", "peak_rss_gib")
    assert ({k: v for k, v in resumed.metrics.items() if k not in measured}
            == {k: v for k, v in full.metrics.items() if k not in measured})


def test_mixed_float16_and_xla_are_compiled_in_and_resume_with_loss_scaling(
    tmp_path: Path,
) -> None:
    s = Scenario.preset("quick").with_overrides({
        "train.mixed_precision": "mixed_float16", "train.jit_compile": True,
        "train.deterministic": False}).validate()
    tf.config.experimental.enable_op_determinism()  # as any deterministic run leaves it
    jit_dropped = "doesn't support `jit_compile=True`"
    with pytest.warns(UserWarning, match=jit_dropped):
        model = compiled_model(s, (46, 46, 46), classes=2, steps=2)
    assert keras.config.dtype_policy().name == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    # Compiled asking for XLA, which Keras drops under op determinism (hence the rule that
    # jit_compile needs deterministic: false).
    assert model.get_compile_config()["jit_compile"] is True and model.jit_compile is False
    assert model.get_layer("block1_conv").compute_dtype == "float16"
    assert model.get_layer("probability").compute_dtype == "float32"
    assert [layer.synchronized for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)] == [False] * 4  # 1 replica

    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(7)
    (tmp_path / "state").mkdir()
    model.save(tmp_path / "state" / "last-3.keras")
    (tmp_path / "state" / "state.json").write_text(json.dumps({
        "epoch": 3, "best": 0.5, "wait": 0, "stopped": False, "best_file": "last-3.keras",
        "last_file": "last-3.keras"}))
    with pytest.warns(UserWarning, match=jit_dropped):
        loaded = EpochState(tmp_path, "val_loss", 5, "mixed_float16").load_last()
    assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)
    assert int(loaded.optimizer.iterations) == 7
    assert loaded.get_compile_config()["jit_compile"] is True
    assert loaded.get_layer("block2_conv").compute_dtype == "float16"
    assert keras.config.dtype_policy().name == "float32"

    plain = compiled_model(Scenario.preset("quick"), (46, 46, 46), classes=3, steps=2)
    assert not isinstance(plain.optimizer, keras.optimizers.LossScaleOptimizer)
    assert plain.get_compile_config()["jit_compile"] is False and plain.jit_compile is False
    assert plain.get_layer("block1_conv").compute_dtype == "float32"
    assert plain.get_layer("probability").compute_dtype == "float32"


def test_logical_cpus_from_the_environment() -> None:
    assert devices.configure_from_env({}) is None
    assert devices.configure_from_env({"CT3D_LOGICAL_CPUS": " "}) is None
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(devices.DeviceError, match="CT3D_LOGICAL_CPUS must be an integer"):
            devices.configure_from_env({"CT3D_LOGICAL_CPUS": bad})
    assert len(tf.config.list_logical_devices("CPU")) == 1  # TensorFlow has started here
    assert devices.configure_from_env({"CT3D_LOGICAL_CPUS": "1"}) == 1  # what it has: fine
    with pytest.raises(devices.DeviceError, match="already started with 1 logical CPU"):
        devices.configure_from_env({"CT3D_LOGICAL_CPUS": "2"})


def test_strategies_and_chief(monkeypatch: pytest.MonkeyPatch) -> None:
    assert devices.make_strategy("auto") is tf.distribute.get_strategy()  # no GPU here
    assert devices.make_strategy("default").num_replicas_in_sync == 1
    assert devices.make_strategy("mirrored").num_replicas_in_sync == 1  # one logical CPU
    with pytest.raises(devices.DeviceError, match="unknown strategy 'mirored'"):
        devices.make_strategy("mirored")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(devices.DeviceError, match="multi_worker needs TF_CONFIG"):
        devices.make_strategy("multi_worker")

    two = ["127.0.0.1:1", "127.0.0.1:2"]
    assert devices.is_chief(_fake_strategy("worker", 0, worker=two))
    assert not devices.is_chief(_fake_strategy("worker", 1, worker=two))
    assert devices.is_chief(_fake_strategy("chief", 0, chief=["127.0.0.1:3"], worker=two))
    assert not devices.is_chief(_fake_strategy("worker", 0, chief=["127.0.0.1:3"], worker=two))
    assert devices.num_workers(_fake_strategy("chief", 0, chief=["127.0.0.1:3"], worker=two)) == 3
    assert devices.num_workers(devices.make_strategy("default")) == 1


def test_other_backends_refuse_what_they_cannot_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch: one device only; JAX: the cluster variables first, and the process index
    says who writes the run folder (the JAX strategies themselves: tests/test_backends.py)."""
    monkeypatch.setattr(devices, "keras_backend", lambda: "torch")
    with pytest.raises(devices.DeviceError, match="Keras has no distribution for the torch "
                                                  "backend; ct3d trains on one device there"):
        devices.make_strategy("mirrored")
    assert isinstance(devices.make_strategy("auto"), devices.OneDevice)
    with pytest.raises(devices.DeviceError, match="the torch backend has no such split"):
        devices.configure_logical_cpus(2)
    monkeypatch.setattr(devices, "keras_backend", lambda: "jax")
    for name in devices.JAX_CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    with pytest.raises(devices.DeviceError, match="not set: KERAS_DISTRIBUTION_JOB_ADDRESSES, "
                                                  "KERAS_DISTRIBUTION_PROCESS_ID$"):
        devices.make_strategy("multi_worker")
    assert devices.chief_from_env("multi_worker", {"KERAS_DISTRIBUTION_PROCESS_ID": "0"})
    assert not devices.chief_from_env("multi_worker", {"KERAS_DISTRIBUTION_PROCESS_ID": "1"})


def test_auto_precision_needs_tensor_core_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    def with_gpus(*capabilities: tuple[int, int]) -> str:
        gpus = [f"GPU:{i}" for i in range(len(capabilities))]
        details = dict(zip(gpus, capabilities, strict=True))
        monkeypatch.setattr(tf.config, "list_physical_devices",
                            lambda kind=None: gpus if kind == "GPU" else [])
        monkeypatch.setattr(tf.config.experimental, "get_device_details",
                            lambda gpu: {"compute_capability": details[gpu]})
        return devices.resolve_precision("auto")

    assert with_gpus() == "float32"
    assert with_gpus((8, 0), (7, 0)) == "mixed_float16"
    assert with_gpus((8, 0), (6, 1)) == "float32"
    assert devices.resolve_precision("off") == "float32"
    assert devices.resolve_precision("mixed_float16") == "mixed_float16"
    with pytest.raises(devices.DeviceError, match="unknown mixed_precision 'fp16'"):
        devices.resolve_precision("fp16")


def test_dtype_policy_is_restored_after_an_error() -> None:
    with pytest.raises(ValueError, match="inside"), devices.dtype_policy("mixed_bfloat16"):
        assert keras.layers.Conv3D(1, 3).compute_dtype == "bfloat16"
        raise ValueError("inside")
    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Conv3D(1, 3).compute_dtype == "float32"


def test_datasets_shard_by_data_in_a_fixed_order(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario(cohort_root, tmp_path / "unused", **{"data.cache": str(tmp_path)})
    paths = [str(p) for p in ct3d.preprocess_cache(scenario, verbose=0).paths[:5]]
    train = pipeline.training_dataset(paths, [0.0] * 5, 2, seed=0, augment=None, epochs=1)
    evaluation = pipeline.eval_dataset(paths, [0.0] * 5, 2)
    for ds in (train, evaluation):
        options = ds.options()
        assert options.deterministic is True
        assert (options.experimental_distribute.auto_shard_policy
                == tf.data.experimental.AutoShardPolicy.DATA)
    assert [int(x.shape[0]) for x, _ in evaluation] == [2, 2, 1]
