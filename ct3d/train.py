"""The engine: ``run(scenario) -> Result`` (no argparse, no widgets).

validate -> data (generate the synthetic cohort when asked) -> split by patient -> cache of
preprocessed scans -> ``tf.data`` with augmentation -> model -> ``fit`` with the best
checkpoint and early stopping on the *same* monitored metric -> evaluation of the best
checkpoint -> run folder. A ``kfold`` split trains one model per fold (``fold<i>/``) and
evaluates every scan once, out of fold::

    RUN_DIR/scenario.yaml  split.csv  metrics.json  predictions.csv
            model.keras  history.csv  state/         (holdout; under fold<i>/ for k-fold)

An interrupted run continues from its last completed epoch with ``run(resume=RUN_DIR)``,
with the same result as an uninterrupted one on CPU.

The same code trains on one device, on several (``train.strategy``: ``mirrored``) and on
several hosts (``multi_worker``, :mod:`ct3d.devices`): the model and its optimizer are built
and compiled inside the strategy's scope, in the precision of ``train.mixed_precision``, with
``train.jit_compile``; Keras splits every global batch of ``train.batch_size`` scans between
the replicas and aggregates the metrics over all of them, so ``history.csv``, the best
checkpoint and early stopping see the same numbers everywhere. With more than one replica
the BatchNormalization layers are synchronized (statistics of the global batch, as on one
device). Only the chief worker writes the run folder; the others write the same files into
a temporary folder that is removed at the end.

Example::

    import ct3d
    result = ct3d.run(ct3d.Scenario.preset("quick"))
    print(result.metrics["auc"], result.metrics["ci"]["auc"], result.run_dir)
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from ct3d import atomic, devices
from ct3d.augment import build_augment
from ct3d.data import pipeline
from ct3d.data.cache import Cache, FillReport
from ct3d.data.dataset import Scan
from ct3d.data.pipeline import PipelineError
from ct3d.data.sources import load_scans
from ct3d.data.split import holdout, kfold
from ct3d.evaluate import evaluate_predictions, mean_std, youden_threshold
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


@dataclass
class Part:
    """The usable scans of one part: cache files, labels, and the source files they came from."""

    cached: list[Path]
    labels: np.ndarray
    sources: list[str]


def split_folds(scenario: Scenario, labels: list[int], patients: list[str]) -> list[np.ndarray]:
    """The part (``train``/``val``/``test``) of every scan, one array per model to train."""
    sp = scenario.split
    if sp.kind == "holdout":
        return [holdout(labels, patients, sp.train, sp.val, sp.test, scenario.seed)]
    folds = kfold(labels, patients, sp.k, scenario.seed)
    chosen = range(sp.k) if sp.fold is None else [sp.fold]
    out = []
    for fold in chosen:
        parts = np.where(folds == fold, "test", "train").astype("<U5")
        rest = np.flatnonzero(folds != fold)
        if sp.val > 0:
            parts[rest] = holdout([labels[i] for i in rest], [patients[i] for i in rest],
                                  1 - sp.val, sp.val, 0.0, scenario.seed + 1 + fold)
        out.append(parts)
    return out


def run(
    scenario: Scenario | None = None, out: str | os.PathLike[str] | None = None,
    verbose: int = 1, resume: str | os.PathLike[str] | None = None,
    callbacks: list[Any] | None = None,
) -> Result:
    """Train and evaluate ``scenario``; write the run folder (``out`` or ``scenario.out``).

    ``resume``: a run folder to continue (its own ``scenario.yaml`` is used; completed folds
    and epochs are kept). ``verbose``: 0 silent, 1 progress bars and one line per epoch.
    ``callbacks``: extra Keras callbacks for every fit (e.g. a live plot in a notebook).

    ``CT3D_LOGICAL_CPUS`` is applied first (:func:`ct3d.devices.configure_from_env`). On a
    non-chief worker of a ``multi_worker`` run the files go to a temporary folder (removed
    at the end; a resumed run starts from a copy of the chief's folder, which must be
    readable there) and ``Result.run_dir`` names the chief's folder.
    """
    devices.configure_from_env()
    if resume is not None:
        run_dir = Path(resume)
        scenario = Scenario.from_file(run_dir / "scenario.yaml")
    elif scenario is None:
        raise ValueError("run() needs a scenario, or resume=RUN_DIR")
    else:
        run_dir = Path(out if out is not None else scenario.out)
    scenario.validate()
    strategy = devices.make_strategy(scenario.train.strategy)
    chief = devices.is_chief(strategy)
    work_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="ct3d-worker-"))
    try:
        if chief and resume is None:
            _fresh_run_dir(run_dir)
            scenario.to_yaml(run_dir / "scenario.yaml")
        elif not chief and resume is not None:
            shutil.copytree(run_dir, work_dir, dirs_exist_ok=True)
        result = _run(scenario, run_dir, work_dir, strategy, verbose, callbacks or [])
        devices.wait_for_workers(strategy)
        return result
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)


def _run(
    scenario: Scenario, run_dir: Path, work_dir: Path, strategy: Any, verbose: int,
    callbacks: list[Any],
) -> Result:
    """Data, folds, training and metrics, writing into ``work_dir``."""
    if scenario.train.deterministic:
        tf.config.experimental.enable_op_determinism()

    scans = load_scans(scenario.data, progress=verbose > 0)
    folds = split_folds(scenario, [s.label for s in scans], [s.patient for s in scans])
    report = fill_cache(scenario, scans, verbose)
    _write_split(work_dir / "split.csv", scans, folds, report)
    classes = list(scenario.data.labels)

    fold_results = []
    for i, parts in enumerate(folds):
        fold_dir = work_dir if len(folds) == 1 else work_dir / f"fold{i}"
        if verbose and len(folds) > 1:
            print(f"fold {i + 1}/{len(folds)}")
        data = _parts_data(scenario, scans, report, parts)
        fold_results.append(_train_fold(scenario, data, fold_dir, len(classes), i, verbose,
                                        callbacks, strategy))

    metrics = _write_metrics(scenario, work_dir, fold_results, classes, report.failures)
    model, history, _, _ = fold_results[-1]
    return Result(scenario, run_dir, model, history, metrics)


def _fresh_run_dir(run_dir: Path) -> None:
    """Create the run folder; refuse to mix a new run into another run's files."""
    if (run_dir / "scenario.yaml").exists():
        for stale in ("state", "model.keras", "history.csv", "metrics.json", "predictions.csv"):
            target = run_dir / stale
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        for fold_dir in run_dir.glob("fold*"):
            shutil.rmtree(fold_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def fill_cache(scenario: Scenario, scans: list[Scan], verbose: int = 1) -> FillReport:
    """Preprocess the scans into the scenario's cache (what is not there yet)."""
    cache = Cache(scenario.data.cache, _steps(scenario.preprocess))
    workers = scenario.data.workers or os.cpu_count() or 1
    report = cache.fill(scans, workers=workers, strict=scenario.data.strict,
                        progress=verbose > 0)
    if verbose:
        print(report.summary())
    return report


def _steps(steps: list[Any]) -> list[dict[str, Any]]:
    return [{"name": s.name, "params": s.params} for s in steps]


def _write_split(
    path: Path, scans: list[Scan], folds: list[np.ndarray], report: FillReport
) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        fold_cols = ["part"] if len(folds) == 1 else [f"fold{i}" for i in range(len(folds))]
        w.writerow(["path", "label", "class", "patient", *fold_cols, "skipped"])
        for j, scan in enumerate(scans):
            w.writerow([scan.path, scan.label, scan.cls, scan.patient,
                        *(parts[j] for parts in folds), report.failures.get(scan.path, "")])


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


def _optimizer(scenario: Scenario, total_steps: int) -> Any:
    t = scenario.train
    lr: Any = t.learning_rate
    if t.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(
            t.learning_rate, decay_steps=t.lr_decay_steps, decay_rate=t.lr_decay_rate,
            staircase=True)
    elif t.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(t.learning_rate, decay_steps=total_steps)
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=t.momentum)
    return keras.optimizers.Adam(learning_rate=lr)


def _build_model(scenario: Scenario, shape: tuple[int, ...], classes: int, steps: int) -> Any:
    """The compiled model, in the current strategy's scope and the scenario's precision."""
    t = scenario.train
    with devices.dtype_policy(devices.resolve_precision(t.mixed_precision)):
        model = MODELS.create(scenario.model.name, input_shape=(*shape, 1), classes=classes,
                              **scenario.model.params)
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            for layer in _all_layers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        if classes == 2:
            loss = "binary_crossentropy"
            metrics = [keras.metrics.BinaryAccuracy(name="accuracy"),
                       keras.metrics.AUC(name="auc"), keras.metrics.MeanSquaredError(name="mse")]
        else:
            loss = "sparse_categorical_crossentropy"
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        model.compile(optimizer=_optimizer(scenario, steps * t.epochs), loss=loss,
                      metrics=metrics, jit_compile=t.jit_compile)
    return model


def _all_layers(layer: Any) -> list[Any]:
    """``layer``'s sub-layers, nested models included, depth first."""
    out = []
    for sub in getattr(layer, "layers", []):
        out += [sub, *_all_layers(sub)]
    return out


def _class_weight(scenario: Scenario, labels: np.ndarray, classes: int) -> dict[int, float] | None:
    if scenario.train.class_weight == "none":
        return None
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    by_class = dict(zip(present.tolist(), weights.tolist(), strict=True))
    return {c: by_class.get(c, 1.0) for c in range(classes)}


def _train_fold(
    scenario: Scenario, data: dict[str, Part], fold_dir: Path, classes: int, fold: int,
    verbose: int, extra_callbacks: list[Any], strategy: Any,
) -> tuple[Any, dict[str, list[float]], dict[str, Part], dict[str, np.ndarray]]:
    """Train one model under ``strategy`` (resuming its saved state if any); its best
    checkpoint's predictions, made on this process' default device."""
    t = scenario.train
    fold_dir.mkdir(parents=True, exist_ok=True)
    monitor = EpochState(fold_dir, t.monitor, t.patience,
                         devices.resolve_precision(t.mixed_precision))
    train = data["train"]
    steps = math.ceil(len(train.cached) / t.batch_size)
    _check_batch(min(t.batch_size, len(train.cached)), strategy)
    if not monitor.finished(t.epochs):
        keras.utils.set_random_seed(scenario.seed + fold)
        shape = pipeline.input_shape([p for part in data.values() for p in part.cached])
        augment = build_augment(_steps(scenario.augment)) if scenario.augment else None
        train_ds = pipeline.training_dataset(train.cached, train.labels, t.batch_size,
                                             scenario.seed + fold, augment, t.epochs,
                                             monitor.epoch)
        val_ds = (pipeline.eval_dataset(data["val"].cached, data["val"].labels, t.batch_size)
                  if "val" in data else None)
        callbacks: list[Any] = [monitor, *extra_callbacks]
        if t.schedule == "plateau":
            callbacks.insert(0, keras.callbacks.ReduceLROnPlateau(
                monitor=t.monitor, factor=t.plateau_factor, patience=t.plateau_patience,
                mode=monitor.mode, verbose=0))
        with strategy.scope():
            model = monitor.load_last() or _build_model(scenario, shape, classes, steps)
            model.fit(train_ds, epochs=t.epochs, initial_epoch=monitor.epoch,
                      steps_per_epoch=steps, validation_data=val_ds, callbacks=callbacks,
                      class_weight=_class_weight(scenario, train.labels, classes),
                      shuffle=False, verbose=2 if verbose else 0)
    monitor.export_best(fold_dir / "model.keras")
    best = keras.models.load_model(fold_dir / "model.keras")
    probs = {name: _predict(best, part, t.batch_size) for name, part in data.items()}
    return best, monitor.history(), data, probs


def _check_batch(first: int, strategy: Any) -> None:
    """Warn when the replicas get unequal parts of a batch; on several workers, refuse
    (Keras builds the model from the first batch, which must have one shape everywhere)."""
    replicas = strategy.num_replicas_in_sync
    if first % replicas == 0:
        return
    problem = (f"the first training batch ({first} scans: train.batch_size, or fewer "
               f"training scans) is not a multiple of the {replicas} replicas")
    if devices.num_workers(strategy) > 1:
        raise devices.DeviceError(f"{problem}; with train.strategy=multi_worker it must be")
    warnings.warn(f"{problem}: the replicas get unequal parts of it", stacklevel=3)


def _predict(model: Any, part: Part, batch_size: int) -> np.ndarray:
    ds = pipeline.eval_dataset(part.cached, part.labels, batch_size).map(lambda x, _: x)
    prob = model.predict(ds, verbose=0)
    return prob.reshape(-1) if prob.shape[-1] == 1 else prob


class EpochState(keras.callbacks.Callback):
    """Best checkpoint, early stopping and resumable state, all on one monitored metric.

    After every epoch: the epoch's logs and wall time go to ``history.csv``; the model is
    saved as ``state/last-<epoch>.keras`` (with its optimizer) and, when ``monitor``
    improved, as ``state/best-<epoch>.keras``; then ``state/state.json`` (epoch, best value,
    epochs without improvement, file names, and the random-seed states of the dropout
    layers, which ``.keras`` files leave out) is replaced atomically. A run killed at any
    moment therefore resumes from a consistent epoch, with the dropout masks an
    uninterrupted run would draw. ``precision``: the dtype policy the model was built with
    (:func:`ct3d.devices.resolve_precision`); :meth:`load_last` loads under it, so that a
    ``mixed_float16`` model gets its loss-scaling optimizer back. :meth:`export_best` writes
    the best model to ``model.keras``.
    """

    def __init__(self, folder: Path, monitor: str, patience: int,
                 precision: str = "float32") -> None:
        super().__init__()
        self.folder, self.monitor, self.patience = folder, monitor, patience
        self.precision = precision
        self.mode = "min" if monitor.endswith("loss") else "max"
        self.state_dir = folder / "state"
        file = self.state_dir / "state.json"
        self.state: dict[str, Any] = json.loads(file.read_text()) if file.is_file() else {
            "epoch": 0, "best": None, "wait": 0, "stopped": False, "best_file": None,
            "last_file": None}
        self._start = 0.0

    @property
    def epoch(self) -> int:
        """Epochs completed so far."""
        return int(self.state["epoch"])

    def finished(self, epochs: int) -> bool:
        """Whether this fit already ran to its end (all epochs, or stopped early)."""
        return bool(self.state["stopped"]) or self.epoch >= epochs

    def load_last(self) -> Any | None:
        """The model (with optimizer and seed states) of the last completed epoch, if any."""
        last = self.state["last_file"]
        if not last:
            return None
        with devices.dtype_policy(self.precision):
            model = keras.models.load_model(self.state_dir / last)
        if "seeds" in self.state:
            for variable, value in zip(_seed_states(model), self.state["seeds"], strict=True):
                variable.assign(value)
        return model

    def export_best(self, path: Path) -> None:
        """Copy the best epoch's model to ``path`` (atomically)."""
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.copyfile(self.state_dir / self.state["best_file"], tmp)
        os.replace(tmp, path)

    def history(self) -> dict[str, list[float]]:
        """Every logged value per epoch, from ``history.csv``."""
        rows = _read_rows(self.folder / "history.csv")
        return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {})}

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self._log_row({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()},
                       "time_s": time.perf_counter() - self._start})
        value, best = float(logs[self.monitor]), self.state["best"]
        state = {**self.state, "epoch": epoch + 1, "last_file": f"last-{epoch + 1}.keras",
                 "seeds": [v.numpy().tolist() for v in _seed_states(self.model)]}
        self.state_dir.mkdir(exist_ok=True)
        if best is None or (value < best if self.mode == "min" else value > best):
            state.update(best=value, wait=0, best_file=f"best-{epoch + 1}.keras")
            self.model.save(self.state_dir / state["best_file"])
        else:
            state["wait"] += 1
        state["stopped"] = state["wait"] >= self.patience
        self.model.stop_training = state["stopped"]
        self.model.save(self.state_dir / state["last_file"])
        atomic.write_text(self.state_dir / "state.json", json.dumps(state))
        self.state = state
        for stale in self.state_dir.glob("*.keras"):
            if stale.name not in (state["best_file"], state["last_file"]):
                stale.unlink()

    def _log_row(self, row: dict[str, Any]) -> None:
        path = self.folder / "history.csv"
        rows = [r for r in _read_rows(path) if int(r["epoch"]) < row["epoch"]] + [row]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(rows)


def _seed_states(model: Any) -> list[Any]:
    """The model's random-seed state variables (of dropout layers): variables, not weights."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]




def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _threshold(scenario: Scenario, data: dict[str, Part], probs: dict[str, np.ndarray]) -> float:
    """The decision threshold: fixed, or Youden's J on the validation part (never test)."""
    if scenario.evaluate.threshold == "youden":
        return youden_threshold(data["val"].labels, probs["val"])
    return float(scenario.evaluate.threshold)


def _write_metrics(
    scenario: Scenario, run_dir: Path, fold_results: list[Any], classes: list[str],
    skipped: dict[str, str],
) -> dict[str, Any]:
    """metrics.json and predictions.csv for one model or for k folds (pooled out of fold)."""
    ev = scenario.evaluate
    binary = len(classes) == 2
    per_fold, rows, pooled_y, pooled_p = [], [], [], []
    for fold, (_, history, data, probs) in enumerate(fold_results):
        threshold = _threshold(scenario, data, probs) if binary else 0.5
        parts = {name: evaluate_predictions(part.labels, probs[name], threshold, classes,
                                            ev.n_boot if name == "test" else 0, scenario.seed)
                 for name, part in data.items()}
        shown = "test" if "test" in parts else "val" if "val" in parts else "train"
        times = history.get("time_s", [])
        per_fold.append({"evaluated_on": shown, **parts[shown], "parts": parts,
                         "epochs_run": len(times), "best_epoch": _best_epoch(
                             history.get(scenario.train.monitor, []), scenario.train.monitor),
                         "time_per_epoch_s": float(np.mean(times)) if times else None})
        for name, part in data.items():
            for source, label, prob in zip(part.sources, part.labels, probs[name], strict=True):
                rows.append([source, int(label), *np.atleast_1d(prob).tolist(), fold, name])
        if "test" in data:
            pooled_y.append(data["test"].labels)
            pooled_p.append(probs["test"])
    if len(fold_results) == 1:
        metrics = per_fold[0]
    else:
        thresholds = [f.get("threshold", 0.5) for f in per_fold]
        metrics = {"evaluated_on": "out-of-fold",
                   **evaluate_predictions(np.concatenate(pooled_y), np.concatenate(pooled_p),
                                          float(np.mean(thresholds)) if binary else 0.5,
                                          classes, ev.n_boot, scenario.seed),
                   "folds": per_fold,
                   "fold_mean_std": mean_std([{k: v for k, v in f.items() if k != "parts"}
                                              for f in per_fold])}
    metrics = {"scenario": scenario.name, "classes": classes, **metrics, "seed": scenario.seed,
               "skipped": skipped}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    prob_cols = ["probability"] if binary else [f"p_{c}" for c in classes]
    with (run_dir / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scan", "label", *prob_cols, "fold", "part"])
        w.writerows(_format_row(r, len(prob_cols)) for r in rows)
    return metrics


def _format_row(row: list[Any], n_probs: int) -> list[Any]:
    scan, label, *rest = row
    probs, fold, part = rest[:n_probs], rest[n_probs], rest[n_probs + 1]
    return [scan, label, *(f"{p:.6f}" for p in probs), fold, part]


def _best_epoch(values: list[float], monitor: str) -> int | None:
    if not values:
        return None
    pick = np.argmin if monitor.endswith("loss") else np.argmax
    return int(pick(values)) + 1
