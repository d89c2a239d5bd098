"""From trained models to the run's numbers: each model's parts evaluated, k folds pooled,
``metrics.json`` and ``predictions.csv`` written.

Example::

    metrics = write_metrics(scenario, run_dir, fold_results, ["normal", "abnormal"], skipped)
    metrics["auc"], metrics["ci"]["auc"], metrics["parts"]["val"]["accuracy"]
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ct3d.engine.cost import peak_rss_gib
from ct3d.engine.parts import FoldResult
from ct3d.evaluate import (
    decision_threshold,
    evaluate_predictions,
    summarize_folds,
    summarize_repeats,
)
from ct3d.scenario import Scenario

__all__ = ["best_epoch", "fold_metrics", "write_metrics"]


def best_epoch(values: list[float], monitor: str) -> int | None:
    """The 1-based epoch with the best ``monitor`` value (lowest loss, else highest).

    Example:
        >>> best_epoch([0.7, 0.5, 0.6], "val_loss"), best_epoch([0.6, 0.8], "val_auc")
        (2, 2)
    """
    if not values:
        return None
    pick = np.argmin if monitor.endswith("loss") else np.argmax
    return int(pick(values)) + 1


def fold_metrics(scenario: Scenario, result: FoldResult, classes: list[str]) -> dict[str, Any]:
    """One model's metrics: every part at the decision threshold (chosen on ``val``), the
    evaluated part's (test, else val, else train) at the top, and its training summary."""
    binary = len(classes) == 2
    data, probs = result.data, result.probs
    rule = scenario.evaluate.threshold
    threshold = 0.5
    if binary:
        val = data.get("val")
        threshold = decision_threshold(rule, None if val is None else val.labels,
                                       probs.get("val"))
    parts = {name: evaluate_predictions(part.labels, probs[name], threshold, classes,
                                        scenario.evaluate.n_boot if name == "test" else 0,
                                        scenario.seed)
             for name, part in data.items()}
    shown = "test" if "test" in parts else "val" if "val" in parts else "train"
    times = result.history.get("time_s", [])
    monitor = scenario.train.monitor
    return {"evaluated_on": shown, **parts[shown], "parts": parts, "epochs_run": len(times),
            "best_epoch": best_epoch(result.history.get(monitor, []), monitor),
            "time_per_epoch_s": float(np.mean(times)) if times else None}


def write_metrics(
    scenario: Scenario, run_dir: Path, results: list[FoldResult], classes: list[str],
    skipped: dict[str, str], cost: dict[str, Any] | None = None, trained_on: str | None = None,
) -> dict[str, Any]:
    """``metrics.json`` and ``predictions.csv`` of one model, or of k folds (pooled out of
    fold by :func:`~ct3d.evaluate.summarize_folds`), or of k folds repeated
    ``split.repeats`` times (:func:`~ct3d.evaluate.summarize_repeats`: the mean over the
    repeats); returns the metrics. ``cost``: what the model costs
    (:func:`ct3d.engine.cost.model_cost`), kept as ``metrics["cost"]``; ``peak_rss_gib``:
    this process's peak memory so far (measured, like ``time_per_epoch_s``); ``trained_on``:
    the devices, backend and precision they were measured with
    (:func:`ct3d.engine.devices.describe`)."""
    per_fold = [fold_metrics(scenario, result, classes) for result in results]
    repeats = scenario.split.repeats
    if len(results) == 1:
        metrics = per_fold[0]
    elif repeats == 1:
        tested = [r.data["test"] for r in results if "test" in r.data]
        metrics = summarize_folds(per_fold, [p.labels for p in tested],
                                  [r.probs["test"] for r in results if "test" in r.data],
                                  classes, scenario.evaluate.n_boot, scenario.seed)
    else:
        per = len(results) // repeats  # the models come repeat by repeat, as many each
        groups = [[r for r in results[i * per:(i + 1) * per] if "test" in r.data]
                  for i in range(repeats)]
        metrics = summarize_repeats(
            per_fold, [[s for r in g for s in r.data["test"].sources] for g in groups],
            [np.concatenate([r.data["test"].labels for r in g]) for g in groups],
            [np.concatenate([r.probs["test"] for r in g]) for g in groups],
            classes, scenario.evaluate.n_boot, scenario.seed)
    metrics = {"scenario": scenario.name, "classes": classes, **metrics, "seed": scenario.seed,
               "skipped": skipped, **({"cost": cost} if cost is not None else {}),
               "peak_rss_gib": round(peak_rss_gib(), 3),
               **({"trained_on": trained_on} if trained_on is not None else {})}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_predictions(run_dir / "predictions.csv", results, classes, repeats)
    return metrics


def _write_predictions(path: Path, results: list[FoldResult], classes: list[str],
                       repeats: int) -> None:
    """One row per scan and model: scan, label, probability (or ``p_<class>``), fold (the
    model's number, as in ``fold<i>/``), repeat, part."""
    prob_cols = ["probability"] if len(classes) == 2 else [f"p_{c}" for c in classes]
    per_repeat = len(results) // repeats
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scan", "label", *prob_cols, "fold", "repeat", "part"])
        for fold, result in enumerate(results):
            for name, part in result.data.items():
                for source, label, prob in zip(part.sources, part.labels, result.probs[name],
                                               strict=True):
                    w.writerow([source, int(label),
                                *(f"{p:.6f}" for p in np.atleast_1d(prob).tolist()), fold,
                                fold // per_repeat, name])
