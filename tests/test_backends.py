"""ct3d on the JAX backend with TensorFlow out of reach: devices, and a run end to end
(train, evaluate, checkpoint, resume, predict), the same when interrupted and resumed.

Each test starts its own Python process with ``KERAS_BACKEND=jax`` in which importing
TensorFlow fails, as on a machine without it. Skipped where JAX is not installed; CI
installs it (the ``test`` extra).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_scenario

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax is not installed (pip install jax)")

WITHOUT_TENSORFLOW = """
import sys


class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")


sys.meta_path.insert(0, NoTensorFlow())
"""


def _on_jax(code: str, *args: str) -> dict:
    """Run ``code`` on JAX without TensorFlow; its last line of output, read as JSON."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW + code, *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


DEVICES = """
import json
from ct3d.engine import devices

try:
    devices.make_strategy("mirrored")
    refused = None
except devices.DeviceError as exc:
    refused = str(exc)
strategy = devices.make_strategy("auto")
with strategy.scope():
    replicas = devices.replicas_now()
print(json.dumps({"replicas": [strategy.num_replicas_in_sync, replicas],
                  "describe": devices.describe(strategy, "auto"), "refused": refused,
                  "jit": devices.jit_compile(False)}))
"""


def test_devices_on_jax_are_one_device_and_say_so() -> None:
    found = _on_jax(DEVICES)
    assert found["replicas"] == [1, 1]
    assert found["describe"] == ("training on the CPU (no GPU visible) (jax backend), one "
                                 "replica, float32")
    assert found["refused"] == ("train.strategy='mirrored' uses tf.distribute, which needs the "
                                "TensorFlow backend; on jax ct3d trains on one device "
                                "(train.strategy: auto or default)")
    assert found["jit"] is True


RUN = """
import csv, json, sys
import keras
from ct3d.engine import run
from ct3d.inference import predict
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
    "csv": float(row["probability"]), "predicted": found.probability, "error": found.error}))
"""


@pytest.mark.slow
def test_a_run_on_jax_trains_resumes_and_predicts_as_an_uninterrupted_run(
    cohort_root: Path, tmp_path: Path,
) -> None:
    scenario = tiny_scenario(cohort_root, tmp_path, **{"train.epochs": 2})
    found = _on_jax(RUN, json.dumps(scenario.to_dict()))
    assert (found["backend"], found["tensorflow"]) == ("jax", False)
    assert found["full"] == found["resumed"]  # its first epoch ran twice, in two processes
    assert found["full"]["n"] == 4 and 0.0 <= found["full"]["auc"] <= 1.0
    assert found["full"]["cost"]["gflops_per_scan"] is None
    assert found["error"] is None
    assert found["predicted"] == pytest.approx(found["csv"], abs=1e-5)
