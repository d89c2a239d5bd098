"""Fake run folders for the report tests: the files ``ct3d.run`` writes, without training.

Metrics come from :func:`ct3d.evaluate.evaluate_predictions` on made-up probabilities;
histories, ``split.csv`` and ``predictions.csv`` follow the run folder format.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ct3d.evaluate import evaluate_predictions, mean_std, summarize_repeats
from ct3d.report import Run, read_run

BINARY = ["CT-0", "CT-23"]
THREE = ["normal", "covid", "other"]
GRADES = ["CT-0", "CT-1", "CT-2", "CT-3", "CT-4"]
SKIPPED = "/data/CT-23/broken.nii.gz"
PARTS = ("train", "val", "test")


def history(epochs: int, fold: int = 0) -> dict[str, list[Any]]:
    """A plausible ``history.csv`` of ``epochs`` epochs (values differ by fold)."""
    e = np.arange(1, epochs + 1)
    shift = 0.01 * fold
    return {"epoch": e.tolist(), "loss": (0.8 - 0.1 * e + shift).round(4).tolist(),
            "accuracy": (0.5 + 0.1 * e - shift).round(4).tolist(), "auc": [0.6] * epochs,
            "mse": (0.3 - 0.02 * e).round(4).tolist(),
            "val_loss": (0.9 - 0.05 * e + shift).round(4).tolist(),
            "val_accuracy": (0.45 + 0.05 * e).round(4).tolist(), "val_auc": [0.55] * epochs,
            "val_mse": [0.25] * epochs, "learning_rate": [0.001] * epochs,
            "time_s": (2.0 + 0.5 * (e == 1) + 0.1 * fold).round(3).tolist()}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _probabilities(labels: np.ndarray, k: int, seed: int, skill: float = 0.4) -> np.ndarray:
    """Made-up model outputs that lean towards the true class (binary: by ``skill``): (n,) if
    binary, else (n, k)."""
    rng = np.random.default_rng(seed)
    if k == 2:
        return np.clip(0.3 + skill * labels + rng.normal(0, 0.25, len(labels)), 0.01, 0.99)
    logits = rng.normal(size=(len(labels), k))
    logits[np.arange(len(labels)), labels] += 1.5
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _evaluate(labels: np.ndarray, probs: np.ndarray, parts: np.ndarray, classes: list[str],
              hist: dict[str, list[Any]]) -> dict[str, Any]:
    """One model's metrics as ``ct3d.run`` writes them: the test part, then every part."""
    evaluated = {p: evaluate_predictions(labels[parts == p], probs[parts == p], 0.5, classes,
                                         200 if p == "test" else 0, 0) for p in PARTS}
    return {"evaluated_on": "test", **evaluated["test"], "parts": evaluated,
            "epochs_run": len(hist["epoch"]), "best_epoch": 2,
            "time_per_epoch_s": float(np.mean(hist["time_s"]))}


def _kfold_parts(n: int, folds: int, repeats: int) -> list[np.ndarray]:
    """Parts of each model, repeat by repeat: the scans go in pairs (one of each class), pair
    ``j`` tested in fold ``j % folds`` in repeat 0, the pairs shuffled in later repeats."""
    out = []
    for r in range(repeats):
        pairs = np.arange(n // 2)
        order = pairs if r == 0 else np.random.default_rng(r).permutation(pairs)
        position = np.repeat(order, 2) % folds
        out += [np.where(position == i, "test", np.where((position + 1) % folds == i, "val",
                                                         "train"))
                for i in range(folds)]
    return out


def fake_run(folder: Path, kind: str = "holdout", folds: int = 3, repeats: int = 1,
             skill: float = 0.4, classes: list[str] | None = None) -> Path:
    """Write a run folder: ``holdout`` (2 classes), ``kfold`` (``folds`` folds, ``repeats``
    times) or ``multiclass`` (``classes``: :data:`THREE` unless given, e.g. :data:`GRADES`).

    Holdout runs have 20 usable scans (train 8, val 4, test 8, as many of each class; three
    classes: 12, 6, 6) and one skipped scan; k-fold runs 4 scans per fold (2 of each class),
    model ``j`` trained for ``2 + j % 3`` epochs. Binary probabilities lean to the true class
    by ``skill`` (0: chance); every model draws its own noise, the same for any ``skill``.
    """
    classes = (classes or THREE) if kind == "multiclass" else BINARY
    k = len(classes)
    sizes = (8, 4, 8) if k == 2 else (12, 6, 6)
    n = 4 * folds if kind == "kfold" else sum(sizes)
    labels = np.arange(n) % k
    paths = [f"/data/{classes[y]}/scan{j:02d}.nii.gz" for j, y in enumerate(labels)]
    if kind == "kfold":
        fold_parts = _kfold_parts(n, folds, repeats)
        columns = [f"fold{i}" for i in range(len(fold_parts))]
    else:
        fold_parts = [np.repeat(PARTS, sizes)]
        columns = ["part"]
    split_rows = [[p, y, classes[y], f"P{j:02d}", *(parts[j] for parts in fold_parts), ""]
                  for j, (p, y) in enumerate(zip(paths, labels, strict=True))]
    split_rows.append([SKIPPED, 1, classes[1], "P99", *(["train"] * len(fold_parts)),
                       "gzip stream is truncated"])
    _write_csv(folder / "split.csv", ["path", "label", "class", "patient", *columns, "skipped"],
               split_rows)
    per_fold, predictions, pooled = [], [], []
    for i, parts in enumerate(fold_parts):
        hist = history(2 + i % 3 if kind == "kfold" else 3, i)
        fold_dir = folder / f"fold{i}" if kind == "kfold" else folder
        _write_csv(fold_dir / "history.csv", list(hist),
                   [list(r) for r in zip(*hist.values(), strict=True)])
        probs = _probabilities(labels, k, seed=i + 5, skill=skill)
        per_fold.append(_evaluate(labels, probs, parts, classes, hist))
        predictions += [[paths[j], int(labels[j]), *np.atleast_1d(probs[j]).round(6), i,
                         i // folds if kind == "kfold" else 0, parts[j]]
                        for part in PARTS for j in np.flatnonzero(parts == part)]
        pooled.append((np.array(paths)[parts == "test"], labels[parts == "test"],
                       probs[parts == "test"]))
    if kind == "kfold" and repeats > 1:
        groups = [pooled[r * folds:(r + 1) * folds] for r in range(repeats)]
        metrics = summarize_repeats(
            per_fold, [np.concatenate([s for s, _, _ in g]).tolist() for g in groups],
            [np.concatenate([y for _, y, _ in g]) for g in groups],
            [np.concatenate([p for _, _, p in g]) for g in groups], classes, 200, 0)
    elif kind == "kfold":
        metrics = {"evaluated_on": "out-of-fold",
                   **evaluate_predictions(np.concatenate([y for _, y, _ in pooled]),
                                          np.concatenate([p for _, _, p in pooled]), 0.5,
                                          classes, 200, 0),
                   "folds": per_fold,
                   "fold_mean_std": mean_std([{k: v for k, v in f.items() if k != "parts"}
                                              for f in per_fold])}
    else:
        metrics = per_fold[0]
    metrics = {"scenario": f"fake-{kind}", "classes": classes, **metrics, "seed": 0,
               "skipped": {SKIPPED: "gzip stream is truncated"}}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    prob_cols = ["probability"] if k == 2 else [f"p_{c}" for c in classes]
    _write_csv(folder / "predictions.csv",
               ["scan", "label", *prob_cols, "fold", "repeat", "part"], predictions)
    return folder


def fake_runs(root: Path) -> dict[str, Run]:
    """One fake run of each kind (``holdout``, ``kfold``, ``multiclass``) under ``root``, read."""
    return {kind: read_run(fake_run(root / kind, kind))
            for kind in ("holdout", "kfold", "multiclass")}
