"""Metrics of a binary classifier from counts and probabilities (scikit-learn arithmetic).

Example:
    >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9])
    >>> m["confusion_matrix"], m["accuracy"], m["specificity"]
    ([[1, 1], [0, 2]], 0.75, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

METRIC_KEYS = ("accuracy", "precision", "recall", "specificity", "f1", "auc", "mse", "loss")


def binary_metrics(
    y_true: Sequence[int], prob: Sequence[float], threshold: float = 0.5
) -> dict[str, Any]:
    """Confusion matrix (counts, rows = true class) and the thesis' metrics, plus ROC-AUC.

    ``auc`` is ``None`` when only one class is present; ``loss`` is the binary cross-entropy
    of the probabilities and ``mse`` their mean squared error against the labels.
    """
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(prob, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"need two equal-length, non-empty 1D sequences; got {y.shape}, {p.shape}")
    pred = (p >= threshold).astype(int)
    cm = skm.confusion_matrix(y, pred, labels=[0, 1])
    tn, fp = int(cm[0, 0]), int(cm[0, 1])
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "auc": float(skm.roc_auc_score(y, p)) if both else None,
        "mse": float(np.mean((p - y) ** 2)),
        "loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "confusion_matrix": cm.tolist(),
        "n": len(y),
        "threshold": threshold,
    }


def format_table(by_part: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per part (train/val/test), one column per metric."""
    cols = ("n", *METRIC_KEYS)
    lines = ["part   " + "".join(f"{c:>12}" for c in cols)]
    for part, m in by_part.items():
        cells = "".join(
            f"{'-' if m[c] is None else m[c]:>12}" if c == "n" or m[c] is None
            else f"{m[c]:>12.4f}" for c in cols
        )
        lines.append(f"{part:<7}{cells}")
    for part, m in by_part.items():
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        lines.append(f"{part} confusion matrix (rows = true 0/1): [[{tn} {fp}] [{fn} {tp}]]")
    return "\n".join(lines)
