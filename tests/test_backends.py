"""ct3d on the JAX backend on a machine without TensorFlow: devices, a run end to end
(train, evaluate, checkpoint, resume, predict with Grad-CAM, the CLI's metrics table) and
the GPU check's CPU smoke mode; the same run on PyTorch where ``torch`` is installed
(marked ``torch``: CI does not install it, its Linux wheels bring GBs of CUDA libraries).

The tests run in a fresh virtual environment built once for this module: JAX from PyPI, the
packages of ``benchmarks/offline-wheels.txt`` and ct3d without its dependencies, which is
what a JAX GPU host gets from ``benchmarks/gpu_check.sh --backend jax``. TensorFlow is not
installed there at all. Building it needs PyPI (CI has it; pip's cache makes it quick).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_scenario

from ct3d.inference import predict
from ct3d.io import read_volume
from ct3d.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def jax_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Python of a fresh environment with JAX and ct3d, and no TensorFlow."""
    venv = tmp_path_factory.mktemp("jax-env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    try:
        jax = f"jax=={importlib.metadata.version('jax')}"
    except importlib.metadata.PackageNotFoundError:
        jax = "jax"
    for args in (["install", "-q", jax, "-r", str(ROOT / "benchmarks" / "offline-wheels.txt")],
                 ["install", "-q", "--no-deps", "-e", str(ROOT)]):
        done = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stderr[-3000:]}"
    return python


def _start(python: str, code: str, *args: str, backend: str = "jax",
           env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``code`` with ``python`` on JAX (or ``backend``), with ``env`` added."""
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
           "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    env.pop("PYTHONPATH", None)
    return subprocess.Popen([python, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _on_backend(python: str, code: str, *args: str, backend: str = "jax",
                env: dict[str, str] | None = None) -> dict:
    """Run ``code`` as :func:`_start` does; its last line of output, read as JSON."""
    done = _start(python, code, *args, backend=backend, env=env)
    out, err = done.communicate(timeout=900)
    assert done.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_environment_has_no_tensorflow(jax_python: str) -> None:
    code = ("import importlib.util, json\n"
            "print(json.dumps([importlib.util.find_spec(m) is None "
            "for m in ('tensorflow', 'jax', 'ct3d')]))")
    assert _on_backend(jax_python, code) == [True, False, False]


DEVICES = """
import json, sys, warnings
from pathlib import Path

import numpy as np
from ct3d.engine import devices

devices.configure_from_env({"CT3D_LOGICAL_CPUS": "3"})
import keras
from ct3d.data.inputs import evaluation_input
from ct3d.engine.fit import PaddedValLoss, check_batch, compiled_model, share
from ct3d.engine.state import EpochState
from ct3d.scenario import Scenario

one, three = devices.make_strategy("auto"), devices.make_strategy("mirrored")
try:
    check_batch(8, 4, three)
    refused = None
except devices.DeviceError as exc:
    refused = str(exc)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    check_batch(8, 6, three)
rng = np.random.default_rng(0)
paths = [Path(sys.argv[1]) / f"scan{i}.npy" for i in range(4)]
for path in paths:
    np.save(path, rng.random((46, 46, 46), dtype=np.float32))
labels = [0.0, 1.0, 0.0, 1.0]


scenario = Scenario.preset("quick")
keras.utils.set_random_seed(0)
alone = compiled_model(scenario, (46, 46, 46), classes=2, steps=1)
reference = alone.evaluate(evaluation_input(paths, labels, 6), return_dict=True, verbose=0)
with three.scope():
    spread = compiled_model(scenario, (46, 46, 46), classes=2, steps=1)
    spread.set_weights(alone.get_weights())
    batches = evaluation_input(paths, labels, 6, share(three))
    found = spread.evaluate(batches, return_dict=True, verbose=0)
logs = {"val_loss": found["loss"]}
PaddedValLoss(len(paths), batches.padding).on_epoch_end(0, logs)

half = compiled_model(scenario.with_overrides({"train.mixed_precision": "mixed_float16"}),
                      (46, 46, 46), classes=2, steps=1)
half.fit(evaluation_input(paths, labels, 4), epochs=1, verbose=0)
(Path(sys.argv[1]) / "state").mkdir()
half.save(Path(sys.argv[1]) / "state" / "last-1.keras")
(Path(sys.argv[1]) / "state" / "state.json").write_text(json.dumps({
    "epoch": 1, "best": 0.5, "wait": 0, "stopped": False, "best_file": "last-1.keras",
    "last_file": "last-1.keras"}))
loaded = EpochState(Path(sys.argv[1]), "val_loss", 5, "mixed_float16").load_last()
fp16 = {"optimizer": type(loaded.optimizer).__name__,
        "steps": int(loaded.optimizer.iterations) == int(half.optimizer.iterations),
        "conv": loaded.get_layer("block1_conv").compute_dtype,
        "out": loaded.get_layer("probability").compute_dtype,
        "scale": float(loaded.optimizer.dynamic_scale) == float(half.optimizer.dynamic_scale)}
print(json.dumps({"replicas": [one.num_replicas_in_sync, three.num_replicas_in_sync],
                  "describe": [devices.describe(s, "auto") for s in (one, three)],
                  "refused": refused, "left_out": [str(w.message) for w in caught],
                  "padding": batches.padding, "reference": reference,
                  "padded": found, "loss": logs["val_loss"], "fp16": fp16,
                  "jit": devices.jit_compile(False)}))
"""


def test_devices_on_jax_split_the_cpu_and_evaluate_padded_batches_exactly(
    jax_python: str, tmp_path: Path,
) -> None:
    """``CT3D_LOGICAL_CPUS=3`` gives ``keras.distribution.DataParallel`` over 3 CPU devices;
    4 validation scans in a batch of 6 are filled up with 2 copies weighed 0: the metrics
    are those of one device, and so is the loss once :class:`PaddedValLoss` rescales it.
    ``mixed_float16`` trains with loss scaling and resumes with it."""
    found = _on_backend(jax_python, DEVICES, str(tmp_path))
    assert found["replicas"] == [1, 3]
    assert found["describe"] == [
        f"training on the CPU (no GPU visible), jax backend, {n}, float32"
        for n in ("one replica", "3 replicas")]
    assert found["refused"] == ("train.batch_size=4 is not a multiple of the 3 devices; JAX "
                                "splits every batch evenly between them: use a multiple of 3")
    assert found["left_out"] == ["8 training scans in batches of 6 split evenly between 3 "
                                 "devices: each epoch leaves 2 scan(s) out (other ones each "
                                 "epoch: the order changes)"]
    assert found["padding"] == 2
    reference, padded = found["reference"], found["padded"]
    assert padded["auc"] == pytest.approx(reference["auc"], abs=1e-6)
    assert padded["accuracy"] == pytest.approx(reference["accuracy"], abs=1e-6)
    assert padded["mse"] == pytest.approx(reference["mse"], rel=1e-5)
    assert padded["loss"] == pytest.approx(reference["loss"] * 4 / 6, rel=1e-5)
    assert found["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    assert found["fp16"] == {"optimizer": "LossScaleOptimizer", "steps": True,
                             "conv": "float16", "out": "float32", "scale": True}
    assert found["jit"] is True


DATA_PARALLEL = """
import csv, json, os, sys
from ct3d.engine import run
from ct3d.scenario import Scenario

scenario = Scenario.from_dict(json.loads(sys.argv[1]))
found = {}
for strategy in sys.argv[2:]:
    out = f"{scenario.out}/{strategy}"
    metrics = run(scenario.with_overrides({"train.strategy": strategy}), out=out,
                  verbose=0).metrics
    rows = []
    if os.path.exists(out):
        with open(f"{out}/predictions.csv", newline="") as f:
            rows = [float(r["probability"]) for r in csv.DictReader(f)]
    found[strategy] = {"trained_on": metrics["trained_on"], "probabilities": rows,
                       "loss": metrics["parts"]["train"]["loss"]}
print(json.dumps(found))
"""


@pytest.mark.slow
def test_data_parallel_on_jax_two_devices_and_two_processes_train_as_one_device(
    jax_python: str, jax_run: tuple[Scenario, dict], cohort_root: Path, tmp_path: Path,
) -> None:
    """The tiny run (flip augmentation) on two CPU devices (``mirrored``, one process) and
    on two processes of one device each (``multi_worker``, joined through
    ``KERAS_DISTRIBUTION_*`` on 127.0.0.1) gives the predictions of the same run on one
    device (:func:`jax_run`), up to float rounding (largest difference seen: 2e-4)."""
    scenario = tiny_scenario(cohort_root, tmp_path)
    arg = json.dumps(scenario.to_dict())
    one_process = _on_backend(jax_python, DATA_PARALLEL, arg, "mirrored",
                              env={"CT3D_LOGICAL_CPUS": "2"})
    cluster = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{_free_port()}",
               "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    worker = _start(jax_python, DATA_PARALLEL, arg, "multi_worker",
                    env={**cluster, "KERAS_DISTRIBUTION_PROCESS_ID": "1"})
    chief = _on_backend(jax_python, DATA_PARALLEL, arg, "multi_worker",
                        env={**cluster, "KERAS_DISTRIBUTION_PROCESS_ID": "0"})
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err[-4000:]
    other = json.loads(out.strip().splitlines()[-1])
    runs = {**one_process, "cluster": chief["multi_worker"]}
    assert [r["trained_on"] for r in runs.values()] == [
        f"training on the CPU (no GPU visible), jax backend, {n}, float32"
        for n in ("2 replicas", "2 replicas on 2 workers")]
    reference = jax_run[1]["probabilities"]
    assert len(reference) == 16
    for found in runs.values():
        assert found["probabilities"] == pytest.approx(reference, abs=1e-3)
    assert other["multi_worker"]["loss"] == pytest.approx(chief["multi_worker"]["loss"])


RUN = """
import csv, json, sys
import keras
from ct3d.engine import run
from ct3d.inference import predict
from ct3d.report.text import format_table
from ct3d.scenario import Scenario


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


scenario = Scenario.from_dict(json.loads(sys.argv[1]))
out = scenario.out
full = run(scenario, out=out + "/full", verbose=0).metrics
try:
    run(scenario, out=out + "/killed", verbose=0, callbacks=[Interrupt()])
except KeyboardInterrupt:
    pass
resumed = run(resume=out + "/killed", verbose=0).metrics
with open(out + "/full/predictions.csv", newline="") as f:
    rows = list(csv.DictReader(f))
row = next(r for r in rows if r["part"] == "test")
found = predict(out + "/full", [row["scan"]], saliency_dir=out + "/maps", progress=False)[0]
measured = ("time_per_epoch_s", "peak_rss_gib")
print(json.dumps({
    "backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules,
    "full": {k: v for k, v in full.items() if k not in measured},
    "resumed": {k: v for k, v in resumed.items() if k not in measured},
    "csv": float(row["probability"]), "predicted": found.probability, "error": found.error,
    "scan": row["scan"], "saliency": found.saliency, "layer": found.saliency_layer,
    "table": format_table(full["parts"], full["classes"]),
    "probabilities": [float(r["probability"]) for r in rows]}))
"""


def _check_run(found: dict, backend: str) -> None:
    """A run on ``backend`` gives the metrics of an uninterrupted one, and predicts."""
    assert found["backend"] == backend
    assert found["full"] == found["resumed"]  # its first epoch ran twice, in two processes
    assert found["full"]["n"] == 4 and 0.0 <= found["full"]["auc"] <= 1.0
    assert found["full"]["cost"]["gflops_per_scan"] is None
    assert found["error"] is None
    assert found["predicted"] == pytest.approx(found["csv"], abs=1e-5)
    assert "test confusion matrix" in found["table"]
    assert found["layer"] is not None


def _same_map(found: dict, reference: dict, tied: bool = False) -> None:
    """Same probability, layer and Grad-CAM map (within 0.001) on two backends.

    With ``tied``, one backend is TensorFlow, which sends a max pooling's gradient to every
    tied input where JAX and PyTorch send it to one (:func:`ct3d.saliency.gradcam`): where
    this model has tied inputs the maps differ, so only their agreement on where the
    lesion-scale structure lies (a correlation) is checked.
    """
    assert reference["predicted"] == pytest.approx(found["predicted"], abs=1e-4)
    assert reference["layer"] == found["layer"]
    ours = read_volume(found["saliency"], hu=False).array
    theirs = read_volume(reference["saliency"], hu=False).array
    # normalised to 1 on the model's grid, then sampled linearly onto the scan's voxels
    assert 0.9 < ours.max() <= 1.0 + 1e-6
    if tied:
        r = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
        assert r > 0.5, r
    else:
        assert np.abs(ours - theirs).max() < 1e-3


PREDICT = """
import json, sys
from ct3d.inference import predict

found = predict(sys.argv[1], [sys.argv[2]], saliency_dir=sys.argv[3], progress=False)[0]
print(json.dumps({"predicted": found.probability, "saliency": found.saliency,
                  "layer": found.saliency_layer}))
"""


@pytest.fixture(scope="module")
def jax_run(jax_python: str, cohort_root: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Scenario, dict]:
    """The tiny scenario on JAX, once for the module: trained, killed and resumed,
    predicted (:data:`RUN`); the scenario and what the run printed."""
    scenario = tiny_scenario(cohort_root, tmp_path_factory.mktemp("jax-run"))
    return scenario, _on_backend(jax_python, RUN, json.dumps(scenario.to_dict()))


@pytest.mark.slow
def test_a_run_on_jax_trains_resumes_and_predicts_as_an_uninterrupted_run(
    jax_run: tuple[Scenario, dict], tmp_path: Path,
) -> None:
    """... with no TensorFlow installed, and its Grad-CAM map (``jax.grad``) agrees with the
    one TensorFlow's tape gives for the same saved model and scan (exactly where no max
    pooling has tied inputs: see :func:`ct3d.saliency.gradcam`)."""
    scenario, found = jax_run
    assert found["tensorflow"] is False
    _check_run(found, "jax")
    on_tf = predict(scenario.out + "/full", [found["scan"]], saliency_dir=tmp_path / "tf-maps",
                    progress=False)[0]
    _same_map(found, {"predicted": on_tf.probability, "saliency": on_tf.saliency,
                      "layer": on_tf.saliency_layer}, tied=True)


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (pip install -e '.[torch]')")
def test_a_run_on_torch_trains_resumes_and_predicts_as_an_uninterrupted_run(
    cohort_root: Path, tmp_path: Path,
) -> None:
    """The same on PyTorch (in this environment); its Grad-CAM map (``torch.autograd``) is
    the one JAX gives for the same saved model and scan (both send a max pooling's gradient
    to one of tied inputs; TensorFlow, to all)."""
    scenario = tiny_scenario(cohort_root, tmp_path, **{"train.epochs": 2})
    found = _on_backend(sys.executable, RUN, json.dumps(scenario.to_dict()), backend="torch")
    _check_run(found, "torch")
    on_jax = _on_backend(sys.executable, PREDICT, scenario.out + "/full", found["scan"],
                     str(tmp_path / "jax-maps"))
    _same_map(found, on_jax)


@pytest.mark.slow
def test_gpu_check_cpu_smoke_runs_on_jax_without_tensorflow(jax_python: str, tmp_path: Path
                                                            ) -> None:
    """``benchmarks/gpu_check.py --cpu-smoke``, as a JAX GPU host without TensorFlow runs it
    (but on the CPU, at tiny sizes): every setting trains, the JSON says where it ran."""
    code = ("import runpy, sys\nsys.path.insert(0, 'benchmarks')\n"
            "sys.argv = ['gpu_check.py', *sys.argv[1:]]\n"
            "try:\n    runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')\n"
            "except SystemExit as end:\n    assert not end.code, end.code\n"
            "print('{\"tensorflow\": %s}' % str('tensorflow' in sys.modules).lower())\n")
    found = _on_backend(jax_python, code, "--cpu-smoke", "--models", "modified_3dcnn",
                    "--report", "all-slices-noaug-5", "--out", str(tmp_path),
                    "--work", str(tmp_path / "work"))
    assert found == {"tensorflow": False}
    [written] = tmp_path.glob("gpu_check-cpu-*-cpu-smoke.json")
    result = json.loads(written.read_text())
    assert result["device"]["backend"] == "jax" and result["device"]["name"] == "CPU"
    rows = result["epochs"]
    assert [(r["model"], r["mixed_precision"], r["xla"], r["augment_place"]) for r in rows] == [
        ("modified_3dcnn", policy, True, place) for policy, place in (
            ("off", "input"), ("mixed_bfloat16", "input"), ("off", "device"), ("auto", "input"))]
    assert all("error" not in r and r["s_per_epoch"] > 0 for r in rows)
    assert result["input_only"]["aug"]["warm"] > 0
    assert result["report_skipped"].startswith("the report needs papermill, nbconvert, "
                                               "ipykernel, matplotlib, pandas, not installed")
    assert result["verdicts"] == {"modified_3dcnn": "n/a (not the targets' sizes)",
                                  "baseline_3dcnn": "no run"}
