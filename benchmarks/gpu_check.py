"""GPU check: training-epoch times of the thesis and baseline models against the targets.

It runs on the Keras backend in use (``KERAS_BACKEND``: TensorFlow, JAX or PyTorch), so a GPU
host that has JAX or PyTorch with CUDA and no TensorFlow can run it. On 140 cached scans (a
synthetic quick-preset cohort preprocessed with the thesis preset's chain first, not timed),
each model is built and compiled by ``ct3d.engine.fit`` from the thesis scenario and trains
through ct3d's own input (cache -> ``tf.data`` or the ``PyDataset`` -> the thesis
augmentation), in five settings of the scenario keys ``train.mixed_precision`` /
``train.jit_compile`` / ``train.deterministic``: float32 and ``mixed_float16``, each without
and with XLA, all without op determinism (under it Keras turns XLA off); then the thesis
preset's own settings, unchanged (op determinism cannot be turned off again in a process, so
these rows come last). On JAX, which always compiles with XLA, the rows without XLA are
left out. Every setting trains one warm-up epoch (tracing, XLA compilation, cuDNN
autotuning), then ``--epochs`` timed epochs; the GPU memory peak is read per setting (on
JAX, the process' peak so far: JAX cannot reset it).
Before that the input alone is timed (``input_pipeline.input_rates``); after it one
thesis-grid scenario report runs end to end (``ct3d report --grid thesis --only SCENARIO``,
a child process) for its wall time, on the same backend; it needs the report's packages
(``REPORT_PACKAGES``: not in ``offline-wheels.txt``), and is skipped, saying which are
missing, where they are not installed.

The JSON (device, backend and versions, every measurement, the targets) is rewritten after each
step, so a run cut short keeps what it measured. Targets, per epoch of 140 scans at the
thesis input 128x128x64: thesis model <= 1 s, baseline <= 3 s.

Usage:
    python benchmarks/gpu_check.py [--out benchmarks/results] [--epochs 3]
    python benchmarks/gpu_check.py --cpu-smoke     # 4 scans, 46x46x46, 1 timed epoch, quick
                                                   # report: checks the script, not the targets
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from input_pipeline import cohort, fill, input_rates

from ct3d.augment import build_augment
from ct3d.backend import keras_backend
from ct3d.data.inputs import training_input
from ct3d.engine import devices
from ct3d.engine.fit import compiled_model
from ct3d.scenario import Scenario

THESIS = Scenario.preset("thesis")
BASELINE = "baseline_3dcnn"
TARGETS_S_PER_EPOCH = {THESIS.model.name: 1.0, BASELINE: 3.0}
"""Seconds per training epoch of 140 scans at 128x128x64 (batch 4), on one H100."""
REPORT_SCENARIO = "all-slices-aug-25"
REPORT_PACKAGES = ("papermill", "nbconvert", "ipykernel", "matplotlib", "pandas")
SHAPE = next(s.params["shape"] for s in THESIS.preprocess if s.name == "resize")


def settings(mixed: str, backend: str = "tensorflow") -> list[dict[str, Any]]:
    """The ``train`` overrides timed for each model: float32 and ``mixed``, each without and
    with XLA (JAX: with only), without op determinism (Keras turns XLA off under it), all
    augmenting in the input pipeline; float32 augmenting in the train step
    (``augment_on: device``; XLA on JAX only, TensorFlow's cannot rotate); then the thesis
    preset's own training settings, unchanged.

    Example:
        >>> jax_rows = settings("mixed_float16", "jax")
        >>> [(o["train.mixed_precision"], o["train.augment_on"]) for o in jax_rows[:-1]]
        [('off', 'input'), ('mixed_float16', 'input'), ('off', 'device')]
        >>> len(settings("mixed_float16")), jax_rows[-1]
        (6, {})
    """
    xlas = (True,) if backend == "jax" else (False, True)
    free = [{"train.mixed_precision": policy, "train.jit_compile": xla,
             "train.deterministic": False, "train.augment_on": "input"}
            for xla in xlas for policy in ("off", mixed)]
    on_device = {"train.mixed_precision": "off", "train.jit_compile": backend == "jax",
                 "train.deterministic": False, "train.augment_on": "device"}
    return [*free, on_device, {}]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--cpu-smoke`` shrinks every size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for gpu_check-<device>-<date>.json (default "
                                      "benchmarks/results; with --cpu-smoke the temp folder)")
    parser.add_argument("--work", help="folder for cohort, cache and report (default: temp)")
    parser.add_argument("--n", type=int, default=140, help="training scans (default 140)")
    parser.add_argument("--shape", type=int, nargs=3, default=list(SHAPE),
                        metavar=("W", "H", "D"),
                        help=f"input shape (default {' '.join(map(str, SHAPE))})")
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs after the warm-up one (default 3)")
    parser.add_argument("--mixed", default="mixed_float16",
                        choices=["mixed_float16", "mixed_bfloat16"],
                        help="the mixed-precision policy timed (default mixed_float16)")
    parser.add_argument("--models", nargs="+", default=list(TARGETS_S_PER_EPOCH),
                        choices=list(TARGETS_S_PER_EPOCH),
                        help="models to time (default: both)")
    parser.add_argument("--report", default=REPORT_SCENARIO, metavar="SCENARIO",
                        help=f"thesis-grid scenario to report (default {REPORT_SCENARIO}); "
                             "'none' skips the report")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="4 scans, 46x46x46, 1 timed epoch, mixed_bfloat16 (the CPU has "
                             "no float16 MaxPool3D kernel), `ct3d report --quick`")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        args.n, args.shape, args.epochs, args.mixed = 4, [46, 46, 46], 1, "mixed_bfloat16"
    if args.out is None:
        args.out = tempfile.gettempdir() if args.cpu_smoke else "benchmarks/results"
    if args.n < 2 or args.epochs < 1:
        parser.error(f"need --n >= 2 and --epochs >= 1; received n={args.n}, "
                     f"epochs={args.epochs}")
    return args


def device() -> dict[str, Any]:
    """The accelerator (or CPU) this process sees, the backend and the software versions."""
    gpus = devices.visible_gpus()
    backend = keras_backend()
    found = {"name": gpus[0][0] if gpus else "CPU",
             "compute_capability": list(gpus[0][1] or []) if gpus else None,
             "gpus": [name for name, _ in gpus], "cpu_count": os.cpu_count(),
             "backend": backend, "keras": keras.__version__, "python": sys.version.split()[0]}
    if backend == "tensorflow":
        import tensorflow as tf

        build = tf.sysconfig.get_build_info()
        found.update(version=tf.__version__, cuda=build.get("cuda_version"),
                     cudnn=build.get("cudnn_version"))
    elif backend == "jax":
        import jax
        import jaxlib

        found.update(version=jax.__version__, jaxlib=jaxlib.__version__)
    else:
        import torch

        found.update(version=torch.__version__, cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version())
    return found


def reset_gpu_peak() -> None:
    """Start the GPU memory peak afresh (JAX keeps one peak for the process: not reset)."""
    if not devices.visible_gpus():
        return
    if keras_backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("GPU:0")
    elif keras_backend() == "torch":
        import torch

        torch.cuda.reset_peak_memory_stats()


def gpu_peak_mib() -> float | None:
    """The first GPU's memory peak in MiB (None without a GPU, or if the backend says none)."""
    if not devices.visible_gpus():
        return None
    backend = keras_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def failures() -> tuple[type[BaseException], ...]:
    """The errors a setting may end with (out of memory, an op with no kernel) and be recorded."""
    errors: tuple[type[BaseException], ...] = (ValueError, RuntimeError, MemoryError)
    if keras_backend() == "tensorflow":
        import tensorflow as tf

        errors += (tf.errors.OpError,)
    return errors


def time_setting(model_name: str, overrides: dict[str, Any], data: dict[str, Any],
                 args: argparse.Namespace) -> dict[str, Any]:
    """One model built and compiled by ``ct3d.engine.fit`` under the thesis scenario with
    ``overrides``: a warm-up epoch, then ``args.epochs`` timed epochs."""
    scenario = THESIS.with_overrides({"model": {"name": model_name, "params": {}},
                                      **overrides}).with_plugin_defaults()
    t = scenario.train
    row: dict[str, Any] = {"model": model_name, "mixed_precision": t.mixed_precision,
                           "jit_compile": t.jit_compile, "deterministic": t.deterministic,
                           "augment_on": t.augment_on}
    keras.backend.clear_session()
    reset_gpu_peak()
    if t.deterministic:
        devices.set_deterministic()
    steps = math.ceil(len(data["paths"]) / t.batch_size)
    keras.utils.set_random_seed(scenario.seed)
    marks: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: marks.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: marks.append(time.perf_counter()))
    try:
        place = devices.augment_place(t.augment_on, devices.make_strategy("default"),
                                      t.jit_compile)
        on_device = place == "device" and bool(data["augment"])
        model = compiled_model(scenario, tuple(args.shape), 2, steps,
                               augment_seed=scenario.seed if on_device else None)
        row.update(policy=model.dtype_policy.name, xla=bool(model.jit_compile),
                   augment_place=place)
        dataset = training_input(data["paths"], data["labels"], t.batch_size, scenario.seed,
                                 None if on_device else data["augment"], 1 + args.epochs)
        model.fit(dataset, epochs=1 + args.epochs, steps_per_epoch=steps, callbacks=[timer],
                  shuffle=False, verbose=0)
    except failures() as exc:
        return {**row, "error": f"{type(exc).__name__}: {exc}"[:500]}
    epochs = [marks[i + 1] - marks[i] for i in range(2, len(marks), 2)]
    s_per_epoch = float(np.mean(epochs))
    peak = gpu_peak_mib()
    return {**row, "warmup_epoch_s": marks[1] - marks[0], "epoch_s": epochs,
            "s_per_epoch": s_per_epoch, "epochs_per_s": 1 / s_per_epoch,
            "scans_per_s": len(data["paths"]) / s_per_epoch,
            "gpu_peak_mib": peak}


def label(row: dict[str, Any]) -> str:
    """A row's setting in words: policy, XLA (asked for but turned off by Keras), determinism."""
    xla = row.get("xla", row["jit_compile"])
    words = [row.get("policy", row["mixed_precision"])]
    if xla or row["jit_compile"]:
        words.append("+ XLA" if xla else "+ XLA (off)")
    if row["deterministic"]:
        words.append("det")
    if row.get("augment_place", row.get("augment_on")) == "device":
        words.append("aug on device")
    return " ".join(words)


def run_report(scenario: str, quick: bool, work: Path) -> dict[str, Any]:
    """``ct3d report --grid thesis --only SCENARIO`` in a child process: wall time, metrics."""
    out = work / "reports" / "thesis"
    argv = [sys.executable, "-m", "ct3d.cli", "report", "--grid", "thesis", "--only", scenario,
            "--out", str(out), *(["--quick"] if quick else [])]
    start = time.perf_counter()
    status = subprocess.run(argv, check=False).returncode
    wall = time.perf_counter() - start
    metrics_file = out / scenario / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {"scenario": scenario, "quick": quick, "exit_status": status, "wall_s": wall,
            "time_per_epoch_s": metrics.get("time_per_epoch_s"),
            "epochs_run": metrics.get("epochs_run"), "auc": metrics.get("auc"),
            "accuracy": metrics.get("accuracy")}


def verdicts(result: dict[str, Any]) -> dict[str, str]:
    """PASS/MISS per model, for its fastest setting and for the thesis preset's own settings
    (the last row of each model), where the sizes are the targets' own."""
    s = result["settings"]
    comparable = s["scans"] == 140 and s["shape"] == list(SHAPE) and s["batch"] == 4
    out = {}
    for model, target in TARGETS_S_PER_EPOCH.items():
        runs = [r for r in result["epochs"] if r["model"] == model and "s_per_epoch" in r]
        if not runs or not comparable:
            out[model] = "n/a (not the targets' sizes)" if runs else "no run"
            continue
        picked = {"fastest": min(runs, key=lambda r: r["s_per_epoch"])}
        if runs[-1]["preset"]:
            picked["thesis preset"] = runs[-1]
        out[model] = "; ".join(
            f"{what} {label(r)}: {'PASS' if r['s_per_epoch'] <= target else 'MISS'} "
            f"({r['s_per_epoch']:.2f} s)" for what, r in picked.items())
    return out


def summary(result: dict[str, Any]) -> str:
    """The measurements as a text table, with the verdicts."""
    s = result["settings"]
    lines = [f"{result['device']['name']} - {result['device']['backend']} "
             f"{result['device']['version']} - "
             f"{s['scans']} scans {'x'.join(map(str, s['shape']))}, batch {s['batch']}, "
             f"{s['timed_epochs']} timed epoch(s) after 1 warm-up",
             f"{'model':<16}{'setting':<28}{'s/epoch':>9}{'epochs/s':>10}{'scans/s':>9}"
             f"{'warm-up s':>11}{'peak MiB':>10}"]
    for r in result["epochs"]:
        if "error" in r:
            lines.append(f"{r['model']:<16}{label(r):<28}FAILED: {r['error'].splitlines()[0]}")
            continue
        peak = "-" if r["gpu_peak_mib"] is None else f"{r['gpu_peak_mib']:.0f}"
        lines.append(f"{r['model']:<16}{label(r):<28}{r['s_per_epoch']:>9.3f}"
                     f"{r['epochs_per_s']:>10.2f}{r['scans_per_s']:>9.1f}"
                     f"{r['warmup_epoch_s']:>11.1f}{peak:>10}")
    rates = result["input_only"]
    lines.append("input only, scans/s (cold first epoch / warm): "
                 f"no augmentation {rates['no_aug']['cold_first_epoch']:.0f} / "
                 f"{rates['no_aug']['warm']:.0f}, augmented "
                 f"{rates['aug']['cold_first_epoch']:.0f} / {rates['aug']['warm']:.0f}")
    if "report_skipped" in result:
        lines.append(f"report: {result['report_skipped']}")
    if "report" in result:
        rep = result["report"]
        per_epoch = rep["time_per_epoch_s"]
        lines.append(f"report {rep['scenario']}{' (quick)' if rep['quick'] else ''}: "
                     f"{'ok' if rep['exit_status'] == 0 else 'FAILED'}, {rep['wall_s']:.0f} s "
                     f"wall, {rep['epochs_run']} epochs at "
                     f"{'-' if per_epoch is None else f'{per_epoch:.2f}'} s/epoch "
                     "(with validation and checkpoints)")
    lines += [f"target {model} <= {TARGETS_S_PER_EPOCH[model]:g} s/epoch: {verdict}"
              for model, verdict in result["verdicts"].items()]
    return "\n".join(lines)


def measure(args: argparse.Namespace, work: Path, json_path: Path) -> dict[str, Any]:
    """Every step in turn; the JSON is rewritten after each."""
    result: dict[str, Any] = {
        "device": device(), "date": datetime.date.today().isoformat(),
        "settings": {"scans": args.n, "shape": list(args.shape),
                     "batch": THESIS.train.batch_size, "timed_epochs": args.epochs,
                     "cpu_smoke": args.cpu_smoke, "augment": [s.name for s in THESIS.augment],
                     "thesis_train": dataclasses.asdict(THESIS.train)},
        "targets_s_per_epoch_of_140_scans": TARGETS_S_PER_EPOCH, "epochs": []}

    def save() -> None:
        result["verdicts"] = verdicts(result)
        json_path.write_text(json.dumps(result, indent=2))

    scans = cohort(work / f"data-quick-{args.n}", args.n, seed=0)
    augment = build_augment([{"name": s.name, "params": s.params} for s in THESIS.augment])
    data = {"paths": fill(scans, work / "cache", args.shape), "augment": augment,
            "labels": np.array([s.label for s in scans], dtype=np.float32)}
    batch = THESIS.train.batch_size
    result["input_only"] = {
        "no_aug": input_rates(data["paths"], data["labels"], batch, args.epochs, 0, None),
        "aug": input_rates(data["paths"], data["labels"], batch, args.epochs, 0, augment)}
    save()
    for overrides in settings(args.mixed, keras_backend()):
        for model in args.models:
            row = time_setting(model, overrides, data, args)
            result["epochs"].append({**row, "preset": not overrides})
            save()
    result["epochs"].sort(key=lambda r: r["model"] != THESIS.model.name)
    missing = [m for m in REPORT_PACKAGES if importlib.util.find_spec(m) is None]
    if args.report != "none" and missing:
        result["report_skipped"] = (f"the report needs {', '.join(missing)}, not installed "
                                    "here: add them (and their dependencies) to --wheels, or "
                                    "pass --report none")
    elif args.report != "none":
        result["report"] = run_report(args.report, args.cpu_smoke, work)
    save()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, write the JSON, print the summary; 1 if a setting or the report failed."""
    args = parse_args(argv)
    name = re.sub(r"[^A-Za-z0-9]+", "-", device()["name"]).strip("-").lower()
    suffix = "-cpu-smoke" if args.cpu_smoke else ""
    json_path = Path(args.out) / f"gpu_check-{name}-{datetime.date.today()}{suffix}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if args.work:
        result = measure(args, Path(args.work), json_path)
    else:
        with tempfile.TemporaryDirectory(prefix="ct3d-gpu-check-") as tmp:
            result = measure(args, Path(tmp), json_path)
    print(summary(result))
    print(f"written: {json_path}")
    failed = any("error" in r for r in result["epochs"])
    return int(failed or result.get("report", {}).get("exit_status", 0) != 0)


if __name__ == "__main__":
    sys.exit(main())
