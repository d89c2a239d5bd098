"""Metrics of a classifier from counts and probabilities (scikit-learn arithmetic).

Besides point estimates this module gives what an honest report needs: bootstrap confidence
intervals, a decision threshold chosen on the validation part only (Youden's J), ROC points,
reliability bins with the Brier score, multi-class metrics, the mean ± std over
cross-validation folds, and the mean over the repeats of repeated k-fold with a bootstrap
shared by the repeats. Every result is JSON-serialisable (plain floats, ints, lists, None).

Example:
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9])
    >>> m["confusion_matrix"], m["accuracy"], m["specificity"]
    ([[1, 1], [0, 2]], 0.75, 0.5)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

METRIC_KEYS = ("accuracy", "precision", "recall", "specificity", "f1", "auc", "mse", "loss")
MULTICLASS_KEYS = ("accuracy", "macro_f1", "macro_auc", "quadratic_kappa")
CI_KEYS = ("accuracy", "sensitivity", "specificity", "f1", "auc")


def _binary_arrays(y_true: Sequence[int], prob: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0/1 ints) and probabilities as 1D arrays of equal, non-zero length."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(prob, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"need two equal-length, non-empty 1D sequences; got {y.shape}, {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"binary labels must be 0 or 1; got {sorted(set(y.tolist()))}")
    return y, p


def _has_both_classes(y: np.ndarray) -> bool:
    """Whether ``y`` holds at least one 0 and one 1."""
    return len(np.unique(y)) == 2


def binary_metrics(
    y_true: Sequence[int], prob: Sequence[float], threshold: float = 0.5
) -> dict[str, Any]:
    """Confusion matrix (counts, rows = true class) and the thesis' metrics, plus ROC-AUC.

    A scan is predicted positive when its probability is ``>= threshold``. A ratio whose
    denominator is 0 is undefined and given as ``None``, not 0: ``precision`` when no scan is
    predicted positive, ``recall`` with no positive scan, ``specificity`` with no negative
    one, ``f1`` with neither positives nor positive predictions. ``auc`` is ``None`` when only
    one class is present; ``loss`` is the binary cross-entropy of the probabilities and
    ``mse`` their mean squared error against the labels.

    >>> binary_metrics([0, 1, 1], [0.2, 0.4, 0.8], threshold=0.3)["recall"]
    1.0
    >>> binary_metrics([0, 1], [0.2, 0.4])["precision"] is None  # nothing predicted positive
    True
    """
    y, p = _binary_arrays(y_true, prob)
    pred = (p >= threshold).astype(int)
    cm = skm.confusion_matrix(y, pred, labels=[0, 1])
    (tn, fp), (fn, tp) = cm.tolist()
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": _defined(tp, tp + fp),
        "recall": _defined(tp, tp + fn),
        "specificity": _defined(tn, tn + fp),
        "f1": _defined(2 * tp, 2 * tp + fp + fn),
        "auc": float(skm.roc_auc_score(y, p)) if _has_both_classes(y) else None,
        "mse": float(np.mean((p - y) ** 2)),
        "loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "confusion_matrix": cm.tolist(),
        "n": len(y),
        "threshold": float(threshold),
    }


def _defined(num: int, den: int) -> float | None:
    """``num / den``, or None (undefined) when ``den`` is 0."""
    return num / den if den else None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` element-wise, NaN where ``den`` is 0."""
    out = np.full(num.shape, np.nan)
    return np.divide(num, den, out=out, where=den > 0)


def resample_counts(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` scans is drawn in each of ``n_boot`` resamples with replacement.

    Drawing ``n`` scans uniformly with replacement is a multinomial draw of the counts, an
    (n_boot, n) int array whose rows sum to ``n``; the bootstrap of every function here draws
    its resamples this way (``np.random.default_rng(seed)``), so the same ``n`` and ``seed``
    give the same resamples, to pass to :func:`resample_metrics`.

    >>> counts = resample_counts(4, n_boot=3, seed=0)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((3, 4), [4, 4, 4])
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1 / n), size=n_boot)


def _resample_auc(counts: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC-AUC of each resample by the rank-sum statistic (ties count ½); NaN if a class is missing.

    Scans are grouped by equal probability; a positive scores the negatives strictly below it
    plus half of those tied with it.
    """
    order = np.argsort(p, kind="stable")
    p_sorted, y_sorted, c = p[order], y[order], counts[:, order]
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    pos = np.add.reduceat(c * y_sorted, starts, axis=1)
    neg = np.add.reduceat(c * (1 - y_sorted), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    wins = (pos * (below + neg / 2)).sum(axis=1)
    return _ratio(wins, pos.sum(axis=1) * neg.sum(axis=1))


def resample_metrics(
    counts: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    """The :data:`CI_KEYS` metrics of every resample given by its draw ``counts`` (n_boot, n).

    scikit-learn scores one sample at a time, far too slow for a thousand resamples, so the
    confusion counts are weighted sums here; sensitivity, specificity and AUC are NaN where a
    class is missing, and F1 is 0 where it is 0/0 (as ``zero_division=0`` gives).
    """
    pos, pred = y == 1, p >= threshold
    tp, fn = counts @ (pos & pred), counts @ (pos & ~pred)
    fp, tn = counts @ (~pos & pred), counts @ (~pos & ~pred)
    return {
        "accuracy": (tp + tn) / counts.sum(axis=1),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "f1": np.nan_to_num(_ratio(2 * tp, 2 * tp + fp + fn)),
        "auc": _resample_auc(counts, y, p),
    }


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of the non-NaN ``values``; None if none.

    >>> percentile_interval(np.array([np.nan, *range(101)]), 0.5)
    (25.0, 75.0)
    """
    kept = values[~np.isnan(values)]
    if not len(kept):
        return None
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(kept, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    y_true: Sequence[int],
    prob: Sequence[float],
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float] | None]:
    """Percentile-bootstrap confidence intervals of accuracy, sensitivity, specificity, F1, AUC.

    Scans are resampled with replacement ``n_boot`` times (``np.random.default_rng(seed)``)
    and the ``threshold`` stays fixed. Resamples that miss a class are skipped for
    sensitivity (no positives), specificity (no negatives) and AUC (either); a metric with no
    usable resample (e.g. one class in the data) gets ``None`` instead of an interval.

    >>> ci = bootstrap_ci([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.6, 0.4, 0.8, 0.9], n_boot=200)
    >>> sorted(ci) == sorted(CI_KEYS), ci["accuracy"][0] <= 4 / 6 <= ci["accuracy"][1]
    (True, True)
    """
    y, p = _binary_arrays(y_true, prob)
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1; got {n_boot}, {level}")
    counts = resample_counts(len(y), n_boot, seed)
    by_metric = resample_metrics(counts, y, p, threshold)
    return {k: percentile_interval(v, level) for k, v in by_metric.items()}


def _roc_curve(y_true: Sequence[int], prob: Sequence[float], **kw: Any) -> tuple[np.ndarray, ...]:
    """``sklearn.metrics.roc_curve`` after checking that both classes are present."""
    y, p = _binary_arrays(y_true, prob)
    if not _has_both_classes(y):
        raise ValueError("the ROC curve needs both classes in y_true")
    return skm.roc_curve(y, p, **kw)


def youden_threshold(y_true: Sequence[int], prob: Sequence[float]) -> float:
    """The threshold maximising Youden's J = sensitivity + specificity - 1.

    Choose it on the validation part only, then apply it unchanged to the test part: picking
    it on the test part would make the test metrics optimistic. Candidates are the finite
    thresholds of ``roc_curve`` (scans with probability ``>= threshold`` are positive); ties
    go to the one closest to 0.5.

    >>> youden_threshold([0, 0, 1, 1], [0.1, 0.3, 0.4, 0.8])
    0.4
    """
    fpr, tpr, thresholds = _roc_curve(y_true, prob, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    j, candidates = (tpr - fpr)[finite], thresholds[finite]
    best = candidates[np.isclose(j, j.max(), rtol=0, atol=1e-12)]
    return float(best[np.argmin(np.abs(best - 0.5))])


def roc_points(y_true: Sequence[int], prob: Sequence[float]) -> dict[str, list[float]]:
    """ROC curve as JSON-safe lists ``fpr``, ``tpr`` and ``thresholds`` (decreasing).

    ``roc_curve`` starts at (0, 0) with an infinite threshold; it is replaced by 1.0, or by the
    next float above the largest probability when that is 1.0 itself, so that it still
    predicts no scan positive.

    >>> roc_points([0, 1], [0.3, 0.7])
    {'fpr': [0.0, 0.0, 1.0], 'tpr': [0.0, 1.0, 1.0], 'thresholds': [1.0, 0.7, 0.3]}
    """
    fpr, tpr, thresholds = _roc_curve(y_true, prob)
    top = max(1.0, float(np.nextafter(np.max(prob), np.inf)))
    thresholds = np.where(np.isfinite(thresholds), thresholds, top)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def _bin_means(values: np.ndarray, bins: np.ndarray, counts: np.ndarray) -> list[float | None]:
    """Mean of ``values`` in each bin; None for empty bins."""
    sums = np.bincount(bins, weights=values, minlength=len(counts))
    return [float(s / c) if c else None for s, c in zip(sums, counts, strict=True)]


def calibration(y_true: Sequence[int], prob: Sequence[float], n_bins: int = 10) -> dict[str, Any]:
    """Reliability bins (equal width on [0, 1]) and the Brier score.

    Bin i holds probabilities in ``[edges[i], edges[i+1])``, the last bin also 1.0. Per bin:
    ``mean_predicted`` probability, ``observed`` fraction of positives and ``count``; empty
    bins stay listed with count 0 and None means (``sklearn.calibration.calibration_curve``
    drops them and gives no counts, hence the hand binning).

    >>> c = calibration([0, 1, 1], [0.2, 0.7, 0.9], n_bins=2)
    >>> c["count"], c["observed"], round(c["brier"], 4)
    ([1, 2], [0.0, 1.0], 0.0467)
    """
    y, p = _binary_arrays(y_true, prob)
    if n_bins < 1 or ((p < 0) | (p > 1)).any():
        raise ValueError("need n_bins >= 1 and probabilities within [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    return {
        "edges": edges.tolist(),
        "mean_predicted": _bin_means(p, bins, counts),
        "observed": _bin_means(y.astype(np.float64), bins, counts),
        "count": counts.tolist(),
        "brier": float(skm.brier_score_loss(y, p, labels=[0, 1])),
    }


def _multiclass_arrays(
    y_true: Sequence[int], prob: Any, class_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels in ``range(k)``, the (n, k) probabilities and k class names."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(prob, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 2 or len(y) != len(p) or not len(y) or p.shape[1] < 2:
        raise ValueError(f"need labels (n,) and probabilities (n, k>=2); got {y.shape}, {p.shape}")
    k = p.shape[1]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k or ((y < 0) | (y >= k)).any():
        raise ValueError(f"need {k} class names and labels in 0..{k - 1}")
    return y, p, names


def _ovr_auc(y: np.ndarray, p: np.ndarray) -> list[float | None]:
    """One-vs-rest ROC-AUC of each class; None where the class is absent (or alone) in ``y``."""
    return [
        float(skm.roc_auc_score(y == c, p[:, c])) if _has_both_classes(y == c) else None
        for c in range(p.shape[1])
    ]


def quadratic_kappa(y_true: Sequence[int], y_pred: Sequence[int], k: int) -> float | None:
    """Cohen's kappa with quadratic weights of ``k`` ordered classes (labels ``0 .. k - 1``).

    A disagreement between classes i and j weighs (i - j)², so predicting CT-3 for a CT-1
    scan costs four times as much as predicting CT-2; 1 is perfect agreement, 0 agreement
    by chance. None where it is undefined (both label and prediction a single, equal class).

    >>> quadratic_kappa([0, 1, 2, 2], [0, 2, 2, 1], 3)
    0.6363636363636364
    >>> quadratic_kappa([1, 1], [1, 1], 3) is None
    True
    """
    with warnings.catch_warnings():  # an undefined kappa warns (its type depends on the
        warnings.simplefilter("ignore")  # scikit-learn version) and is NaN: None below
        kappa = skm.cohen_kappa_score(y_true, y_pred, labels=list(range(k)),
                                      weights="quadratic")
    return float(kappa) if np.isfinite(kappa) else None


def multiclass_metrics(
    y_true: Sequence[int], prob: Any, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics of a k-class classifier from (n, k) probabilities; predicted class = argmax.

    Rows of ``prob`` should sum to 1 (softmax outputs); labels are integers in ``range(k)``.

    Returns the k×k ``confusion_matrix`` (counts, rows = true), ``accuracy``, ``per_class``
    (by class name: precision, recall, f1, support, one-vs-rest auc), macro precision, recall
    and F1 over all k classes (0/0 counts as 0), ``macro_auc`` (None if any class is absent,
    as scikit-learn refuses it then), ``quadratic_kappa`` (:func:`quadratic_kappa`: the
    classes taken as ordered, e.g. CT-0 .. CT-4), ``loss`` (log loss), ``n`` and
    ``class_names``.

    >>> m = multiclass_metrics([0, 1, 2], [[.8, .1, .1], [.2, .7, .1], [.5, .2, .3]])
    >>> m["accuracy"], m["confusion_matrix"][2], m["per_class"]["2"]["recall"]
    (0.6666666666666666, [1, 0, 0], 0.0)
    """
    y, p, names = _multiclass_arrays(y_true, prob, class_names)
    labels = list(range(p.shape[1]))
    pred = p.argmax(axis=1)
    per_class = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    auc = _ovr_auc(y, p)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "macro_precision": float(np.mean(per_class[0])),
        "macro_recall": float(np.mean(per_class[1])),
        "macro_f1": float(np.mean(per_class[2])),
        "macro_auc": None if None in auc else float(np.mean(auc)),
        "quadratic_kappa": quadratic_kappa(y, pred, len(labels)),
        "loss": float(skm.log_loss(y, p / p.sum(axis=1, keepdims=True), labels=labels)),
        "per_class": {
            name: {"precision": float(pr), "recall": float(rc), "f1": float(f1),
                   "support": int(sup), "auc": a}
            for name, pr, rc, f1, sup, a in zip(names, *per_class, auc, strict=True)
        },
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        "n": len(y),
        "class_names": names,
    }


def evaluate_predictions(
    y_true: Sequence[int],
    prob: Any,
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything to report for one part: binary or multi-class, chosen by the shape of ``prob``.

    1D (or (n, 1)) probabilities give :func:`binary_metrics` plus ``brier``, ``ci``
    (:func:`bootstrap_ci`; None when ``n_boot`` is 0), ``roc`` (:func:`roc_points`; None with
    one class) and ``calibration``. (n, k ≥ 2) probabilities give :func:`multiclass_metrics`
    (``threshold``, ``n_boot`` and ``seed`` are then unused).

    >>> r = evaluate_predictions([0, 1, 1, 0], [0.2, 0.8, 0.6, 0.4], n_boot=50)
    >>> r["accuracy"], r["brier"], sorted(r["ci"]) == sorted(CI_KEYS), r["roc"]["fpr"][-1]
    (1.0, 0.1, True, 1.0)
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] > 1:
        return multiclass_metrics(y_true, p, class_names)
    p = p.reshape(-1) if p.ndim == 2 else p
    cal = calibration(y_true, p)
    both = _has_both_classes(np.asarray(y_true))
    return {
        **binary_metrics(y_true, p, threshold),
        "brier": cal["brier"],
        "ci": bootstrap_ci(y_true, p, threshold, n_boot, seed) if n_boot else None,
        "roc": roc_points(y_true, p) if both else None,
        "calibration": cal,
    }


def mean_std(values_by_fold: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one fold) of each scalar metric.

    Scalars are the top-level ints and floats of each fold's metrics (nested values such as
    the confusion matrix are left out); None values are ignored, and a metric that is None in
    every fold is left out.

    >>> mean_std([{"f1": 0.25, "auc": None}, {"f1": 0.75, "auc": 0.7}, {"f1": 0.5}])
    {'f1': (0.5, 0.25), 'auc': (0.7, 0.0)}
    """
    by_key: dict[str, list[float]] = {}
    for fold in values_by_fold:
        for key, value in fold.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                by_key.setdefault(key, []).append(float(value))
    return {
        k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
        for k, v in by_key.items()
    }


def decision_threshold(
    rule: float | str, val_labels: Sequence[int] | None = None,
    val_prob: Sequence[float] | None = None,
) -> float:
    """The decision threshold of a binary model: ``rule`` itself when it is a number, or
    with ``"youden"`` :func:`youden_threshold` on the validation part (never the test part).

    >>> decision_threshold(0.5), decision_threshold("youden", [0, 0, 1, 1], [.1, .3, .4, .8])
    (0.5, 0.4)
    """
    if rule == "youden":
        if val_labels is None or val_prob is None:
            raise ValueError("the 'youden' threshold needs the validation part's labels and "
                             "probabilities")
        return youden_threshold(val_labels, val_prob)
    return float(rule)


def summarize_folds(
    folds: list[dict[str, Any]], y_true: Sequence[Sequence[int]], prob: Sequence[Any],
    class_names: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
) -> dict[str, Any]:
    """The k-fold summary: every scan predicted once, by the fold model that did not see it.

    ``folds``: each fold's metrics (with its ``threshold``); ``y_true`` and ``prob``: each
    fold's test labels and probabilities. The pooled out-of-fold predictions are evaluated
    with :func:`evaluate_predictions` at the mean of the folds' thresholds (binary), then
    come ``folds`` and ``fold_mean_std`` (:func:`mean_std` of the folds' scalar metrics).

    >>> a = evaluate_predictions([0, 1], [0.2, 0.9], n_boot=0)
    >>> b = evaluate_predictions([0, 1], [0.6, 0.7], n_boot=0)
    >>> s = summarize_folds([a, b], [[0, 1], [0, 1]], [[0.2, 0.9], [0.6, 0.7]], n_boot=0)
    >>> s["evaluated_on"], s["n"], s["accuracy"], s["fold_mean_std"]["accuracy"]
    ('out-of-fold', 4, 0.75, (0.75, 0.3535533905932738))
    """
    pooled_p = np.concatenate([np.asarray(p, dtype=np.float64) for p in prob])
    binary = pooled_p.ndim == 1 or pooled_p.shape[1] == 1
    threshold = float(np.mean([f.get("threshold", 0.5) for f in folds])) if binary else 0.5
    pooled = evaluate_predictions(np.concatenate([np.asarray(y) for y in y_true]), pooled_p,
                                  threshold, class_names, n_boot, seed)
    return {"evaluated_on": "out-of-fold", **pooled, "folds": folds,
            "fold_mean_std": mean_std([{k: v for k, v in f.items() if k != "parts"}
                                       for f in folds])}


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float | int | None]:
    """The number-valued entries of one evaluation (``None`` where undefined); the nested ones
    (confusion matrix, ``ci``, ``roc``, calibration, per-class metrics) left out.

    >>> scalar_metrics(binary_metrics([0, 1], [0.2, 0.4]))["precision"] is None
    True
    >>> sorted(scalar_metrics({"auc": 0.5, "n": 4, "ci": None, "roc": None, "cm": [[1]]}))
    ['auc', 'n']
    """
    return {k: v for k, v in metrics.items() if k not in ("ci", "roc")
            and (v is None or isinstance(v, (int, float)) and not isinstance(v, bool))}


def summarize_repeats(
    folds: list[dict[str, Any]], scans: Sequence[Sequence[str]],
    y_true: Sequence[Sequence[int]], prob: Sequence[Any],
    class_names: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0,
) -> dict[str, Any]:
    """The repeated k-fold summary: each repeat's out-of-fold predictions pooled, then averaged.

    ``folds``: every model's metrics, repeat 0's folds first (as many per repeat); ``scans``,
    ``y_true`` and ``prob``: one entry per repeat, that repeat's pooled out-of-fold test scans
    (any unique ids, e.g. paths), labels and probabilities. Each repeat is pooled as
    :func:`summarize_folds` pools a k-fold run (at the mean of its folds' thresholds); the
    top-level scalar metrics are the mean over repeats (None values ignored), ``n`` the
    number of distinct scans. ``repeats``: each repeat's :func:`scalar_metrics`;
    ``repeat_mean_std``: their :func:`mean_std`; ``folds`` and ``fold_mean_std`` as in
    :func:`summarize_folds`. The nested entries (confusion matrix, ROC, calibration,
    per-class metrics) are repeat 0's, listed under ``from_repeat_0``.

    Binary ``ci``: one bootstrap over scans shared by every repeat: each resample
    (:func:`resample_counts` over the distinct scans) weighs a scan the same in every repeat;
    each repeat's :func:`resample_metrics` at its own threshold are averaged over the repeats
    and the 95% percentile interval taken (None with ``n_boot`` 0). Multi-class: no ``ci``.

    >>> a = evaluate_predictions([0, 1], [0.2, 0.9], n_boot=0)
    >>> b = evaluate_predictions([0, 1], [0.6, 0.7], n_boot=0)
    >>> s = summarize_repeats([a, b], [["x", "y"], ["y", "x"]], [[0, 1], [1, 0]],
    ...                       [[0.2, 0.9], [0.7, 0.6]], n_boot=0)
    >>> s["n"], s["accuracy"], [r["accuracy"] for r in s["repeats"]], s["from_repeat_0"]
    (2, 0.75, [1.0, 0.5], ['confusion_matrix', 'roc', 'calibration'])
    """
    repeats = len(y_true)
    if not repeats or len(scans) != repeats or len(prob) != repeats or len(folds) % repeats:
        raise ValueError(f"need scans, y_true and prob of each repeat, and as many folds per "
                         f"repeat; got {len(scans)}, {repeats}, {len(prob)} and {len(folds)}")
    per = len(folds) // repeats
    pooled = [summarize_folds(folds[r * per:(r + 1) * per], [y_true[r]], [prob[r]],
                              class_names, 0, seed) for r in range(repeats)]
    each = [scalar_metrics(m) for m in pooled]
    spread = mean_std(each)
    ids = list(dict.fromkeys(s for group in scans for s in group))
    first = {k: v for k, v in pooled[0].items() if k not in ("folds", "fold_mean_std")}
    top = {**first, **{k: spread[k][0] if k in spread else None for k in each[0]},
           "n": len(ids)}
    if "ci" in first and n_boot:
        at = {s: i for i, s in enumerate(ids)}
        counts = resample_counts(len(ids), n_boot, seed)
        by_repeat = [resample_metrics(counts[:, [at[s] for s in group]],
                                      *_binary_arrays(y, np.reshape(p, len(y))),
                                      m["threshold"])
                     for group, y, p, m in zip(scans, y_true, prob, pooled, strict=True)]
        top["ci"] = {k: percentile_interval(np.mean([m[k] for m in by_repeat], axis=0))
                     for k in CI_KEYS}
    nested = [k for k, v in first.items()
              if isinstance(v, (dict, list)) and k not in ("ci", "class_names")]
    return {**top, "from_repeat_0": nested, "repeats": each, "repeat_mean_std": spread,
            "folds": folds,
            "fold_mean_std": mean_std([{k: v for k, v in f.items() if k != "parts"}
                                       for f in folds])}
