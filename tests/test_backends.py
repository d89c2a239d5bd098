"""ct3d on the JAX backend on a machine without TensorFlow: devices, a run end to end
(train, evaluate, checkpoint, resume, predict, the CLI's metrics table) and the GPU check's
CPU smoke mode.

The tests run in a fresh virtual environment built once for this module: JAX from PyPI, the
packages of ``benchmarks/offline-wheels.txt`` and ct3d without its dependencies, which is
what a JAX GPU host gets from ``benchmarks/gpu_check.sh --backend jax``. TensorFlow is not
installed there at all. Building it needs PyPI (CI has it; pip's cache makes it quick).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_scenario

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


def _on_jax(python: str, code: str, *args: str) -> dict:
    """Run ``code`` with ``python`` on JAX; its last line of output, read as JSON."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([python, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_environment_has_no_tensorflow(jax_python: str) -> None:
    code = ("import importlib.util, json\n"
            "print(json.dumps([importlib.util.find_spec(m) is None "
            "for m in ('tensorflow', 'jax', 'ct3d')]))")
    assert _on_jax(jax_python, code) == [True, False, False]


DEVICES = """
import json
from ct3d.engine import devices

try:
    devices.make_strategy("mirrored")
    refused = None
except devices.DeviceError as exc:
    refused = str(exc)
try:
    devices.configure_from_env({"CT3D_LOGICAL_CPUS": "2"})
    split = None
except devices.DeviceError as exc:
    split = str(exc)
strategy = devices.make_strategy("auto")
with strategy.scope():
    replicas = devices.replicas_now()
print(json.dumps({"replicas": [strategy.num_replicas_in_sync, replicas],
                  "describe": devices.describe(strategy, "auto"), "refused": refused,
                  "split": split,
                  "jit": devices.jit_compile(False)}))
"""


def test_devices_on_jax_are_one_device_and_say_so(jax_python: str) -> None:
    found = _on_jax(jax_python, DEVICES)
    assert found["replicas"] == [1, 1]
    assert found["describe"] == ("training on the CPU (no GPU visible), jax backend, one "
                                 "replica, float32")
    assert found["refused"] == ("train.strategy='mirrored' uses tf.distribute, which needs the "
                                "TensorFlow backend; on jax ct3d trains on one device "
                                "(train.strategy: auto or default)")
    assert found["split"] == ("CT3D_LOGICAL_CPUS splits TensorFlow's CPU for tf.distribute; "
                              "the jax backend has no such split: unset it")
    assert found["jit"] is True


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
    row = next(r for r in csv.DictReader(f) if r["part"] == "test")
found = predict(out + "/full", [row["scan"]], progress=False)[0]
measured = ("time_per_epoch_s", "peak_rss_gib")
print(json.dumps({
    "backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules,
    "full": {k: v for k, v in full.items() if k not in measured},
    "resumed": {k: v for k, v in resumed.items() if k not in measured},
    "csv": float(row["probability"]), "predicted": found.probability, "error": found.error,
    "table": format_table(full["parts"], full["classes"])}))
"""


@pytest.mark.slow
def test_a_run_on_jax_trains_resumes_and_predicts_as_an_uninterrupted_run(
    jax_python: str, cohort_root: Path, tmp_path: Path,
) -> None:
    scenario = tiny_scenario(cohort_root, tmp_path, **{"train.epochs": 2})
    found = _on_jax(jax_python, RUN, json.dumps(scenario.to_dict()))
    assert (found["backend"], found["tensorflow"]) == ("jax", False)
    assert found["full"] == found["resumed"]  # its first epoch ran twice, in two processes
    assert found["full"]["n"] == 4 and 0.0 <= found["full"]["auc"] <= 1.0
    assert found["full"]["cost"]["gflops_per_scan"] is None
    assert found["error"] is None
    assert found["predicted"] == pytest.approx(found["csv"], abs=1e-5)
    assert "test confusion matrix" in found["table"]


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
    found = _on_jax(jax_python, code, "--cpu-smoke", "--models", "modified_3dcnn",
                    "--report", "thesis", "--out", str(tmp_path),
                    "--work", str(tmp_path / "work"))
    assert found == {"tensorflow": False}
    [written] = tmp_path.glob("gpu_check-cpu-*-cpu-smoke.json")
    result = json.loads(written.read_text())
    assert result["device"]["backend"] == "jax" and result["device"]["name"] == "CPU"
    rows = result["epochs"]
    assert [(r["model"], r["mixed_precision"], r["xla"]) for r in rows] == [
        ("modified_3dcnn", policy, True) for policy in ("off", "mixed_bfloat16", "auto")]
    assert all("error" not in r and r["s_per_epoch"] > 0 for r in rows)
    assert result["input_only"]["aug"]["warm"] > 0
    assert result["report_skipped"].startswith("reports need Grad-CAM")
    assert result["verdicts"] == {"modified_3dcnn": "n/a (not the targets' sizes)",
                                  "baseline_3dcnn": "no run"}
