"""Paired comparison of two binary classifiers on the same scans: is run B better than run A?

Two runs evaluated on the same scans (same split, same labels) are compared by the
difference of their metric, B - A, with a paired bootstrap: each resample draws scans with
replacement (:func:`~ct3d.evaluate.resample_counts`) and applies the same draw to both runs
and to every repeat of a repeated k-fold run, so what the scans share (easy or hard cases)
cancels out of the difference. A run with repeats scores the mean of its repeats' metrics.

The two-sided p-value is the percentile-bootstrap one: with d*_1 .. d*_B the differences of
the B usable resamples, ``p = min(1, 2 * min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (B + 1))``
(the +1 counts the observed sample, so p is never 0). Identical predictions give every
d* = 0 and p = 1; a run better in almost every resample gives p near 2 / (B + 1). p < 0.05
where 0 lies outside the 95% percentile interval, roughly: the two answer one question.

Example:
    >>> y = [0, 0, 0, 1, 1, 1]
    >>> r = paired_auc_difference(y, [.2, .6, .4, .5, .7, .3], [.1, .2, .3, .7, .8, .9])
    >>> round(r["auc_a"], 4), r["auc_b"], round(r["difference"], 4), r["ci"], r["n"]
    (0.6667, 1.0, 0.3333, [0.0, 1.0], 6)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ct3d.errors import Ct3dError
from ct3d.evaluate import CI_KEYS, percentile_interval, resample_counts, resample_metrics

__all__ = ["ComparisonError", "compare_runs", "paired_auc_difference", "paired_difference",
           "paired_p_value"]


class ComparisonError(Ct3dError, ValueError):
    """A comparison that cannot be made: runs not on the same scans and split, not binary, not
    finished, or no resample asked for."""


def paired_p_value(differences: Sequence[float]) -> float:
    """Two-sided bootstrap p-value of a zero difference, from the resampled ``differences``.

    ``min(1, 2 * min(1 + #{d <= 0}, 1 + #{d >= 0}) / (B + 1))`` over the B non-NaN values.

    Example:
        >>> paired_p_value([0.0, 0.0, 0.0]), paired_p_value([0.1, 0.2, 0.3])
        (1.0, 0.5)
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    if not len(d):
        raise ValueError("no usable resample: every difference is NaN")
    tail = min(1 + np.count_nonzero(d <= 0), 1 + np.count_nonzero(d >= 0))
    return float(min(1.0, 2 * tail / (len(d) + 1)))


def _by_repeat(prob: Any, n: int, name: str) -> np.ndarray:
    """``prob`` as (repeats, n) floats."""
    p = np.asarray(prob, dtype=np.float64)
    p = p[None] if p.ndim == 1 else p
    if p.ndim != 2 or p.shape[1] != n or not len(p):
        raise ValueError(f"`{name}` must be (n,) or (repeats, n) with n = {n} scans; received "
                         f"shape {np.shape(prob)}")
    return p


def _thresholds(threshold: float | Sequence[float], repeats: int, name: str) -> list[float]:
    """One threshold per repeat (a single number is used for every repeat)."""
    t = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
    if len(t) == 1:
        return [float(t[0])] * repeats
    if len(t) != repeats:
        raise ValueError(f"`{name}` must be one threshold or one per repeat ({repeats}); "
                         f"received {threshold}")
    return t.tolist()


def _mean_over_repeats(counts: np.ndarray, y: np.ndarray, p: np.ndarray,
                       thresholds: list[float], metric: str) -> np.ndarray:
    """``metric`` of every resample in ``counts``, each the mean over the repeats of ``p``."""
    return np.mean([resample_metrics(counts, y, row, t)[metric]
                    for row, t in zip(p, thresholds, strict=True)], axis=0)


def paired_difference(
    y_true: Sequence[int], prob_a: Any, prob_b: Any, metric: str = "auc",
    threshold_a: float | Sequence[float] = 0.5, threshold_b: float | Sequence[float] = 0.5,
    n_boot: int = 2000, seed: int = 0, counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metric of run A, of run B, their difference B - A, its 95% interval and p-value.

    Args:
        y_true: labels (0/1) of the n scans, the same for both runs.
        prob_a: run A's probabilities, (n,) or (repeats, n), scans in the order of y_true.
        prob_b: run B's, likewise (its number of repeats may differ from A's).
        metric: one of ``accuracy``, ``sensitivity``, ``specificity``, ``f1``, ``auc``.
        threshold_a: run A's decision threshold, one or one per repeat (not used by auc).
        threshold_b: run B's, likewise.
        n_boot: bootstrap resamples drawn (ignored when counts is given), >= 1.
        seed: seed of the resamples (:func:`~ct3d.evaluate.resample_counts`).
        counts: the resamples themselves, (n_boot, n) draw counts; None draws them.

    Returns ``metric``, ``a`` and ``b`` (each the mean over its repeats), ``difference``,
    ``ci`` (the 95% percentile interval of the resampled differences), ``p_value``
    (:func:`paired_p_value`), ``n`` and ``n_boot`` (resamples used: those where the metric
    is defined, e.g. with both classes for auc).

    Example:
        >>> y, a, b = [0, 1] * 4, [.2, .4, .6, .8] * 2, [.2, .8, .4, .6] * 2
        >>> r = paired_difference(y, a, b, "accuracy")
        >>> r["a"], r["b"], r["difference"], r["ci"], round(r["p_value"], 3)
        (0.5, 1.0, 0.5, [0.125, 0.875], 0.014)
    """
    if metric not in CI_KEYS:
        raise ValueError(f"`metric` must be one of {', '.join(CI_KEYS)}; received {metric!r}")
    y = np.asarray(y_true, dtype=int)
    if y.ndim != 1 or not len(y) or not np.isin(y, (0, 1)).all():
        raise ValueError(f"`y_true` must be 0/1 labels, one per scan; received {y_true!r}")
    if metric == "auc" and len(np.unique(y)) < 2:
        raise ValueError("a paired AUC needs both classes in `y_true`")
    n = len(y)
    a, b = _by_repeat(prob_a, n, "prob_a"), _by_repeat(prob_b, n, "prob_b")
    ta, tb = _thresholds(threshold_a, len(a), "threshold_a"), _thresholds(threshold_b, len(b),
                                                                         "threshold_b")
    if counts is None:
        if n_boot < 1:
            raise ValueError(f"`n_boot` must be >= 1; received n_boot={n_boot}")
        counts = resample_counts(n, n_boot, seed)
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != n:
        raise ValueError(f"`counts` must be (n_boot, {n}); received shape {counts.shape}")
    whole = np.ones((1, n), dtype=int)
    point_a = float(_mean_over_repeats(whole, y, a, ta, metric)[0])
    point_b = float(_mean_over_repeats(whole, y, b, tb, metric)[0])
    d = _mean_over_repeats(counts, y, b, tb, metric) - _mean_over_repeats(counts, y, a, ta,
                                                                          metric)
    low, high = percentile_interval(d)
    return {"metric": metric, "a": point_a, "b": point_b, "difference": point_b - point_a,
            "ci": [low, high], "p_value": paired_p_value(d), "n": n,
            "n_boot": int(np.count_nonzero(~np.isnan(d)))}


def paired_auc_difference(
    y_true: Sequence[int], prob_a: Any, prob_b: Any, n_boot: int = 2000, seed: int = 0,
    counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """ROC-AUC of run A and B on the same scans, B - A, its paired 95% interval and p-value.

    :func:`paired_difference` with ``metric="auc"``; the keys are ``auc_a``, ``auc_b``,
    ``difference``, ``ci``, ``p_value``, ``n``, ``n_boot``.

    Example:
        >>> r = paired_auc_difference([0, 1, 0, 1], [.2, .4, .6, .8], [.2, .4, .6, .8])
        >>> r["difference"], r["ci"], r["p_value"]
        (0.0, [0.0, 0.0], 1.0)
    """
    r = paired_difference(y_true, prob_a, prob_b, "auc", n_boot=n_boot, seed=seed,
                          counts=counts)
    return {"auc_a": r["a"], "auc_b": r["b"],
            **{k: r[k] for k in ("difference", "ci", "p_value", "n", "n_boot")}}


def _read_tested(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """A binary run's metrics and its test predictions: one row per scan and repeat."""
    metrics_file, predictions_file = run_dir / "metrics.json", run_dir / "predictions.csv"
    if not metrics_file.is_file() or not predictions_file.is_file():
        raise ComparisonError(f"{run_dir}: not a finished ct3d run (no metrics.json or "
                              f"predictions.csv)")
    metrics = json.loads(metrics_file.read_text())
    rows = pd.read_csv(predictions_file, dtype={"scan": str, "part": str})
    if "probability" not in rows:
        raise ComparisonError(f"{run_dir}: {len(metrics.get('classes', []))} classes; only "
                              f"binary runs are compared")
    if "repeat" not in rows:  # written before repeated k-fold: a single repeat
        rows["repeat"] = 0
    rows = rows[rows["part"] == "test"]
    if rows.empty:
        raise ComparisonError(f"{run_dir}: no test predictions in predictions.csv")
    return metrics, rows[["scan", "label", "probability", "fold", "repeat"]]


def _run_thresholds(metrics: dict[str, Any]) -> list[float]:
    """The decision threshold of each repeat, as its out-of-fold metrics used it."""
    repeats = metrics.get("repeats")
    if isinstance(repeats, list):
        return [float(r["threshold"]) for r in repeats]
    return [float(metrics.get("threshold", 0.5))]


def _check_paired(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str) -> None:
    """Refuse two runs unless the same scans, with the same labels, are tested in the same
    fold of the same repeat; the message names the first scan (by name) that differs."""
    both = a.merge(b, on=["scan", "repeat"], how="outer", suffixes=("_a", "_b"),
                   indicator=True).sort_values(["scan", "repeat"])
    head = f"{name_a} and {name_b} are not paired"
    for _, row in both[both["_merge"] != "both"].head(1).iterrows():
        missing = name_b if row["_merge"] == "left_only" else name_a
        raise ComparisonError(f"{head}: scan {row['scan']} (repeat {row['repeat']}) is not "
                              f"tested in {missing}")
    for _, row in both[both["label_a"] != both["label_b"]].head(1).iterrows():
        raise ComparisonError(f"{head}: scan {row['scan']} has label {row['label_a']} in "
                              f"{name_a} and {row['label_b']} in {name_b}")
    for _, row in both[both["fold_a"] != both["fold_b"]].head(1).iterrows():
        raise ComparisonError(f"{head} (not the same split): scan {row['scan']} (repeat "
                              f"{row['repeat']}) is tested by fold {row['fold_a']} in "
                              f"{name_a} and fold {row['fold_b']} in {name_b}")


def compare_runs(
    run_a: str | os.PathLike[str], run_b: str | os.PathLike[str], n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired comparison of two binary runs on their test scans: AUC and accuracy, B - A.

    The runs are compared on the repeats both ran (repeat r of a repeated k-fold is seeded
    ``seed + r``, so a 3-repeat run pairs with a 1-repeat run of the same split on repeat 0).
    On those, both runs' ``predictions.csv`` must test the same scans, with the same labels,
    in the same fold of the same repeat (same split: e.g. the same ``seed`` and ``split``),
    else :class:`ComparisonError` naming both runs and the first scan that differs. Each
    run's accuracy uses its own decision threshold (of each repeat, as in its metrics.json),
    so with every repeat in common ``auc_a`` and ``accuracy.a`` equal run A's metrics.json
    ``auc`` and ``accuracy``. One set of ``n_boot`` resamples (``seed``) serves both metrics
    (:func:`paired_difference`).

    Returns JSON-able data: ``runs`` (``a`` and ``b``: scenario name, folder name and the
    number of repeats it ran), ``n``, ``repeats`` (compared), ``n_boot``, ``seed``,
    ``auc_a``, ``auc_b``, ``difference``, ``ci``, ``p_value`` (AUC) and ``accuracy`` (``a``,
    ``b``, ``difference``, ``ci``, ``p_value``, ``threshold_a``, ``threshold_b``).

    Example::

        c = compare_runs("runs/baseline", "runs/lung-crop")
        c["difference"], c["ci"], c["p_value"]      # AUC of lung-crop minus baseline's
    """
    if n_boot < 1:
        raise ComparisonError(f"the comparison needs n_boot >= 1 resamples, got {n_boot}")
    folders = Path(run_a), Path(run_b)
    (metrics_a, rows_a), (metrics_b, rows_b) = (_read_tested(f) for f in folders)
    ran = sorted(set(rows_a["repeat"])), sorted(set(rows_b["repeat"]))
    common = sorted(set(ran[0]) & set(ran[1]))
    if not common:
        raise ComparisonError(f"{run_a} and {run_b} are not paired: no repeat in common "
                              f"({ran[0]} and {ran[1]})")
    rows_a, rows_b = (rows[rows["repeat"].isin(common)] for rows in (rows_a, rows_b))
    _check_paired(rows_a, rows_b, str(run_a), str(run_b))
    prob_a, prob_b = (rows.pivot(index="scan", columns="repeat", values="probability")
                      for rows in (rows_a, rows_b))
    if prob_a.isna().to_numpy().any():
        raise ComparisonError(f"{run_a}: not every scan is tested in every repeat (one fold "
                              f"per repeat, split.fold?); compare runs of every fold")
    y = rows_a.groupby("scan")["label"].first().loc[prob_a.index].to_numpy()
    scans, repeats = prob_a.index, prob_a.columns
    counts = resample_counts(len(scans), n_boot, seed)
    thresholds = tuple([t[r] if len(t) > 1 else t[0] for r in common]
                       for t in (_run_thresholds(metrics_a), _run_thresholds(metrics_b)))
    a, b = prob_a.to_numpy().T, prob_b.to_numpy().T
    auc = paired_auc_difference(y, a, b, counts=counts)
    accuracy = paired_difference(y, a, b, "accuracy", *thresholds, counts=counts)
    return {
        "runs": {side: {"scenario": m.get("scenario"), "folder": f.resolve().name,
                        "repeats": len(r)}
                 for side, m, f, r in zip("ab", (metrics_a, metrics_b), folders, ran,
                                          strict=True)},
        "n": len(scans), "repeats": len(repeats), "n_boot": n_boot, "seed": seed,
        **{k: v for k, v in auc.items() if k not in ("n", "n_boot")},
        "accuracy": {**{k: accuracy[k] for k in ("a", "b", "difference", "ci", "p_value")},
                     "threshold_a": thresholds[0], "threshold_b": thresholds[1]},
    }
