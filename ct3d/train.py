"""The engine: ``run(scenario) -> Result`` (no argparse, no widgets).

validate -> data (generate the synthetic cohort when asked) -> split -> preprocess ->
``tf.data`` with augmentation -> model -> ``fit`` with checkpoint and early stopping on the
same monitored metric -> evaluation of the best checkpoint on every part -> run folder::

    RUN_DIR/scenario.yaml  split.csv  history.csv  metrics.json  predictions.csv  model.keras

Example::

    import ct3d
    result = ct3d.run(ct3d.Scenario.preset("quick"))
    print(result.metrics["auc"], result.run_dir)   # test-part ROC-AUC, runs/quick
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ct3d.augment import build_augment
from ct3d.data import pipeline
from ct3d.data.cache import Cache, FillReport
from ct3d.data.dataset import Scan
from ct3d.data.pipeline import PipelineError
from ct3d.data.sources import load_scans
from ct3d.data.split import holdout, kfold_parts
from ct3d.evaluate import binary_metrics
from ct3d.registry import MODELS
from ct3d.scenario import Scenario

PARTS = ("train", "val", "test")


@dataclass
class Result:
    """What a run learned and measured; the Scenario that produced it is left unchanged."""

    scenario: Scenario
    run_dir: Path
    model: Any
    history: dict[str, list[float]]
    metrics: dict[str, Any]


def split_parts(scenario: Scenario, labels: list[int], patients: list[str]) -> np.ndarray:
    """The part (``train``/``val``/``test``) of every scan, as the scenario's split says."""
    sp = scenario.split
    if sp.kind == "kfold":
        return kfold_parts(labels, patients, sp.k, sp.fold, sp.val, scenario.seed)
    return holdout(labels, patients, sp.train, sp.val, sp.test, scenario.seed)


def run(
    scenario: Scenario, out: str | os.PathLike[str] | None = None, verbose: int = 1
) -> Result:
    """Train and evaluate ``scenario``; write the run folder (``out`` or ``scenario.out``).

    ``verbose``: 0 silent, 1 progress bars and one line per epoch.
    """
    scenario.validate()
    run_dir = Path(out if out is not None else scenario.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario.to_yaml(run_dir / "scenario.yaml")
    keras.utils.set_random_seed(scenario.seed)
    if scenario.train.deterministic:
        tf.config.experimental.enable_op_determinism()

    scans = load_scans(scenario.data, progress=verbose > 0)
    parts = split_parts(scenario, [s.label for s in scans], [s.patient for s in scans])
    report = fill_cache(scenario, scans, verbose)
    _write_split(run_dir / "split.csv", scans, parts, report)
    data = _parts_data(scenario, scans, report, parts)

    shape = pipeline.input_shape([p for part in data.values() for p in part.cached])
    model = MODELS.create(scenario.model.name, input_shape=(*shape, 1), **scenario.model.params)
    model.compile(optimizer=_optimizer(scenario), loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                           keras.metrics.AUC(name="auc"),
                           keras.metrics.MeanSquaredError(name="mse")])
    history = _fit(scenario, model, data, run_dir, verbose)

    best = keras.models.load_model(run_dir / "model.keras")
    metrics = _evaluate(scenario, best, data, run_dir, history, report.failures)
    return Result(scenario, run_dir, best, history, metrics)


def _steps(steps: list[Any]) -> list[dict[str, Any]]:
    return [{"name": s.name, "params": s.params} for s in steps]


def fill_cache(scenario: Scenario, scans: list[Scan], verbose: int = 1) -> FillReport:
    """Preprocess the scans into the scenario's cache (what is not there yet)."""
    cache = Cache(scenario.data.cache, _steps(scenario.preprocess))
    workers = scenario.data.workers or os.cpu_count() or 1
    report = cache.fill(scans, workers=workers, strict=scenario.data.strict,
                        progress=verbose > 0)
    if verbose:
        print(report.summary())
    return report


def _write_split(path: Path, scans: list[Scan], parts: np.ndarray, report: FillReport) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "class", "patient", "part", "skipped"])
        for scan, part in zip(scans, parts, strict=True):
            w.writerow([scan.path, scan.label, scan.cls, scan.patient, part,
                        report.failures.get(scan.path, "")])


@dataclass
class Part:
    """The usable scans of one part: cache files, labels, and the source files they came from."""

    cached: list[Path]
    labels: np.ndarray
    sources: list[str]


def _parts_data(
    scenario: Scenario, scans: list[Scan], report: FillReport, parts: np.ndarray
) -> dict[str, Part]:
    """Each part without the scans that failed to preprocess (those are reported)."""
    data = {}
    for part in PARTS:
        keep = [i for i in np.flatnonzero(parts == part) if report.paths[i] is not None]
        if keep:
            data[part] = Part([report.paths[i] for i in keep],
                              np.array([scans[i].label for i in keep]),
                              [scans[i].path for i in keep])
    needed = ["train"] + (["val"] if scenario.train.monitor.startswith("val_") else [])
    missing = [p for p in needed if p not in data]
    if missing:
        raise PipelineError(f"no usable scans left in part(s) {', '.join(missing)} "
                            f"({len(report.failures)} scan(s) failed to preprocess)")
    return data


def _optimizer(scenario: Scenario) -> Any:
    t = scenario.train
    lr: Any = t.learning_rate
    if t.lr_decay_rate < 1:
        lr = keras.optimizers.schedules.ExponentialDecay(
            t.learning_rate, decay_steps=t.lr_decay_steps, decay_rate=t.lr_decay_rate,
            staircase=True,
        )
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=t.momentum)
    return keras.optimizers.Adam(learning_rate=lr)


def _fit(
    scenario: Scenario, model: Any, data: dict[str, Part], run_dir: Path, verbose: int
) -> dict[str, list[float]]:
    t = scenario.train
    train = data["train"]
    augment = build_augment(_steps(scenario.augment)) if scenario.augment else None
    train_ds = pipeline.training_dataset(train.cached, train.labels, t.batch_size, scenario.seed,
                                         augment)
    val_ds = (pipeline.eval_dataset(data["val"].cached, data["val"].labels, t.batch_size)
              if "val" in data else None)
    mode = "min" if t.monitor.endswith("loss") else "max"
    callbacks = [
        EpochLog(run_dir / "history.csv"),
        keras.callbacks.ModelCheckpoint(run_dir / "model.keras", monitor=t.monitor, mode=mode,
                                        save_best_only=True),
        keras.callbacks.EarlyStopping(monitor=t.monitor, mode=mode, patience=t.patience),
    ]
    fit = model.fit(train_ds, epochs=t.epochs,
                    steps_per_epoch=math.ceil(len(train.cached) / t.batch_size),
                    validation_data=val_ds, callbacks=callbacks, shuffle=False,
                    verbose=2 if verbose else 0)
    return {k: [float(v) for v in vals] for k, vals in fit.history.items()}


class EpochLog(keras.callbacks.Callback):
    """Append each epoch's logs and its wall time to a CSV as training goes."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.path.unlink(missing_ok=True)
        self._start = 0.0
        self.times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.times.append(time.perf_counter() - self._start)
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
               "time_s": self.times[-1]}
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)


def _evaluate(
    scenario: Scenario, model: Any, data: dict[str, Part], run_dir: Path,
    history: dict[str, list[float]], skipped: dict[str, str],
) -> dict[str, Any]:
    batch = scenario.train.batch_size
    probs = {
        name: model.predict(pipeline.eval_dataset(part.cached, part.labels, batch)
                            .map(lambda x, _: x), verbose=0).reshape(-1)
        for name, part in data.items()
    }
    by_part = {name: binary_metrics(part.labels, probs[name]) for name, part in data.items()}
    shown = "test" if "test" in by_part else "val" if "val" in by_part else "train"
    monitored = history.get(scenario.train.monitor, [])
    with (run_dir / "history.csv").open() as f:
        times = [float(row["time_s"]) for row in csv.DictReader(f)]
    metrics = {
        "scenario": scenario.name,
        "evaluated_on": shown,
        **by_part[shown],
        "parts": by_part,
        "epochs_run": len(times),
        "best_epoch": _best_epoch(monitored, scenario.train.monitor),
        "time_per_epoch_s": float(np.mean(times)) if times else None,
        "seed": scenario.seed,
        "skipped": skipped,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with (run_dir / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scan", "label", "probability", "part"])
        for name, part in data.items():
            for source, label, prob in zip(part.sources, part.labels, probs[name], strict=True):
                w.writerow([source, int(label), f"{prob:.6f}", name])
    return metrics


def _best_epoch(values: list[float], monitor: str) -> int | None:
    if not values:
        return None
    pick = np.argmin if monitor.endswith("loss") else np.argmax
    return int(pick(values)) + 1
