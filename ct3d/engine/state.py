"""Checkpoint, early-stop and resume state of one fit: a Keras callback on one metric.

Example::

    state = EpochState(fold_dir, monitor="val_loss", patience=15)
    model = state.load_last() or build()          # resumes from the last completed epoch
    model.fit(..., initial_epoch=state.epoch, callbacks=[state])
    state.export_best(fold_dir / "model.keras")
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import keras

from ct3d import atomic
from ct3d.engine import devices
from ct3d.models import load_model

__all__ = ["EpochState"]


class EpochState(keras.callbacks.Callback):
    """Best checkpoint, early stopping and resumable state, all on one monitored metric.

    After every epoch: the epoch's logs, learning rate (at the epoch's end) and wall time go
    to ``history.csv``; the model is
    saved as ``state/last-<epoch>.keras`` (with its optimizer) and, when ``monitor``
    improved, as ``state/best-<epoch>.keras``; then ``state/state.json`` (epoch, best value,
    epochs without improvement, file names, and the random-seed states of the dropout
    layers, which ``.keras`` files leave out) is replaced atomically. A run killed at any
    moment therefore resumes from a consistent epoch, with the dropout masks an
    uninterrupted run would draw. ``precision``: the dtype policy the model was built with
    (:func:`ct3d.engine.devices.resolve_precision`); :meth:`load_last` loads under it, so
    that a ``mixed_float16`` model gets its loss-scaling optimizer back. :meth:`export_best`
    writes the best model to ``model.keras``. ``can_stop`` (set by the fit loop) is False
    during a frozen phase, which always runs to its end; :meth:`new_phase` restarts the
    patience count when it ends.
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
        self.can_stop = True

    @property
    def epoch(self) -> int:
        """Epochs completed so far."""
        return int(self.state["epoch"])

    def finished(self, epochs: int) -> bool:
        """Whether this fit already ran to its end (all epochs, or stopped early)."""
        return bool(self.state["stopped"]) or self.epoch >= epochs

    def new_phase(self) -> None:
        """A new training phase begins (the frozen one ended): patience counts from 0."""
        self.state = {**self.state, "wait": 0}

    def load_last(self) -> Any | None:
        """The model (with optimizer and seed states) of the last completed epoch, if any."""
        last = self.state["last_file"]
        if not last:
            return None
        with devices.dtype_policy(self.precision):
            model = load_model(self.state_dir / last)
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
                       "learning_rate": _learning_rate(self.model),
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
        state["stopped"] = self.can_stop and state["wait"] >= self.patience
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


def _learning_rate(model: Any) -> float:
    """The optimizer's current learning rate (its schedule evaluated at the current step)."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _seed_states(model: Any) -> list[Any]:
    """The model's random-seed state variables (of dropout layers): variables, not weights."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts; none when the file does not exist."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
