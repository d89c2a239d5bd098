"""Metrics from counts and probabilities, their uncertainty, thresholds and calibration."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score

from ct3d.evaluate import (
    CI_KEYS,
    METRIC_KEYS,
    binary_metrics,
    bootstrap_ci,
    calibration,
    evaluate_predictions,
    mean_std,
    multiclass_metrics,
    resample_metrics,
    roc_points,
    youden_threshold,
)


def test_metrics_from_counts_not_normalized_matrix() -> None:
    # 6 normal (5 right), 2 abnormal (both right): precision from counts is 2/3,
    # from a row-normalized matrix it would be 1 / (1 + 1/6) = 0.857.
    y = [0, 0, 0, 0, 0, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.2, 0.1, 0.7, 0.8, 0.9]
    m = binary_metrics(y, p)
    assert m["confusion_matrix"] == [[5, 1], [0, 2]]
    assert m["accuracy"] == pytest.approx(7 / 8)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == 1.0
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(0.8)
    assert m["auc"] == 1.0
    assert m["mse"] == pytest.approx(sum((a - b) ** 2 for a, b in zip(p, y, strict=True)) / 8)
    expected_loss = -sum(math.log(q if t else 1 - q) for t, q in zip(y, p, strict=True)) / 8
    assert m["loss"] == pytest.approx(expected_loss)
    assert m["n"] == 8


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        binary_metrics([0, 1], [0.5])


def _realistic(n: int = 240, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A moderately good classifier: labels and probabilities overlapping around 0.5."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.18), 0, 1).round(2)
    return y, p


def _assert_plain(obj: Any) -> None:
    """Only JSON's own Python types (no numpy scalars) and finite floats, all the way down."""
    assert type(obj) in (dict, list, tuple, str, int, float, bool, type(None)), type(obj)
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert type(key) is str
            _assert_plain(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _assert_plain(value)
    elif type(obj) is float:
        assert math.isfinite(obj)


def test_bootstrap_ci_contains_the_point_estimate() -> None:
    y, p = _realistic()
    point = binary_metrics(y, p)
    point["sensitivity"] = point["recall"]
    ci = bootstrap_ci(y, p)
    assert set(ci) == set(CI_KEYS)
    for key, (lo, hi) in ci.items():
        assert lo < point[key] < hi, key
        assert 0.0 <= lo and hi <= 1.0


def test_bootstrap_ci_shrinks_with_more_scans() -> None:
    y, p = _realistic()
    small = bootstrap_ci(y, p)
    large = bootstrap_ci(np.tile(y, 4), np.tile(p, 4))
    for key in CI_KEYS:
        # Four times the scans with the same proportions: about half the width.
        assert large[key][1] - large[key][0] < 0.7 * (small[key][1] - small[key][0]), key


def test_bootstrap_ci_is_deterministic_with_a_seed() -> None:
    y, p = _realistic()
    assert bootstrap_ci(y, p, seed=7) == bootstrap_ci(y, p, seed=7)
    assert bootstrap_ci(y, p, seed=7) != bootstrap_ci(y, p, seed=8)


def test_bootstrap_skips_resamples_missing_a_class() -> None:
    # One positive in 20 scans: many resamples miss it; they must not count as sensitivity 0.
    y = [0] * 19 + [1]
    p = [0.1] * 19 + [0.9]
    ci = bootstrap_ci(y, p, n_boot=300)
    assert ci["sensitivity"] == (1.0, 1.0) and ci["auc"] == (1.0, 1.0)
    one_class = bootstrap_ci([1, 1, 1], [0.2, 0.6, 0.9], n_boot=50)
    assert one_class["sensitivity"] is not None
    assert one_class["specificity"] is None and one_class["auc"] is None
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(y, p, n_boot=0)


def test_resample_metrics_match_sklearn() -> None:
    # Cross-check of the vectorised arithmetic (ties in p included) on explicit resamples.
    y, p = _realistic(n=60)
    counts = np.random.default_rng(0).multinomial(60, np.full(60, 1 / 60), size=5)
    got = resample_metrics(counts, y, p, 0.5)
    for b, c in enumerate(counts):
        ys, ps = np.repeat(y, c), np.repeat(p, c)
        m = binary_metrics(ys, ps)
        assert got["accuracy"][b] == pytest.approx(m["accuracy"])
        assert got["sensitivity"][b] == pytest.approx(m["recall"])
        assert got["specificity"][b] == pytest.approx(m["specificity"])
        assert got["f1"][b] == pytest.approx(m["f1"])
        assert got["auc"][b] == pytest.approx(roc_auc_score(ys, ps))


def test_bootstrap_is_fast() -> None:
    y, p = _realistic(n=500)
    start = time.perf_counter()
    bootstrap_ci(y, p, n_boot=1000)
    assert time.perf_counter() - start < 1.0  # about 0.05 s on one core


def test_youden_threshold_known_answer_and_ties() -> None:
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9]) == 0.6
    # J = 2/3 at both 0.7 and 0.4: the tie goes to 0.4, the one closer to 0.5.
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.2, 0.6, 0.4, 0.7, 0.9]
    assert youden_threshold(y, p) == 0.4
    # roc_curve's first threshold is inf (J = 0 there as at 0.5): a finite one is returned.
    assert youden_threshold([0, 0, 1, 1], [0.5] * 4) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        youden_threshold([1, 1], [0.3, 0.8])


def test_youden_threshold_depends_only_on_the_validation_arrays() -> None:
    y_val, p_val = _realistic(n=120, seed=1)
    y_test, p_test = _realistic(n=120, seed=2)
    kept = y_val.copy(), p_val.copy()
    chosen = youden_threshold(y_val, p_val)
    before = binary_metrics(y_test, p_test, threshold=chosen)
    # Altering the test part (labels flipped, probabilities moved) leaves the threshold alone...
    y_test[:60] = 1 - y_test[:60]
    p_test[:] = p_test[::-1] ** 2
    assert youden_threshold(y_val, p_val) == chosen
    assert binary_metrics(y_test, p_test, threshold=chosen)["threshold"] == chosen
    assert binary_metrics(y_test, p_test, threshold=chosen) != before
    # ...the inputs are not modified, and the threshold does follow the data it is given.
    np.testing.assert_array_equal(y_val, kept[0])
    np.testing.assert_array_equal(p_val, kept[1])
    assert youden_threshold(y_test, p_test) != chosen


def test_roc_points_json_safe_and_monotone() -> None:
    y, p = _realistic()
    roc = roc_points(y, p)
    json.dumps(roc, allow_nan=False)
    _assert_plain(roc)
    fpr, tpr, thr = (np.array(roc[k]) for k in ("fpr", "tpr", "thresholds"))
    assert len(fpr) == len(tpr) == len(thr)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and (np.diff(thr) < 0).all()
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert thr[0] > p.max()  # no scan is predicted positive at (0, 0)
    assert roc_points([0, 1], [0.2, 0.8])["thresholds"][0] == 1.0
    # With a probability of exactly 1.0, the first threshold must still predict nothing positive.
    assert 1.0 < roc_points([0, 1], [0.2, 1.0])["thresholds"][0] < 1.0 + 1e-12


def test_calibration_of_a_perfectly_calibrated_sample() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    cal = calibration(y, p)
    assert sum(cal["count"]) == p.size and len(cal["edges"]) == 11
    for predicted, observed in zip(cal["mean_predicted"], cal["observed"], strict=True):
        assert observed == pytest.approx(predicted, abs=0.03)
    observed, predicted = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(cal["observed"], observed)
    np.testing.assert_allclose(cal["mean_predicted"], predicted)


def test_calibration_hand_example_with_exact_counts() -> None:
    # Bins [0, .25), [.25, .5), [.5, .75), [.75, 1]: 0.25 goes up, 1.0 into the last bin.
    y = [0, 0, 1, 0, 1, 1]
    p = [0.0, 0.1, 0.25, 0.3, 0.9, 1.0]
    cal = calibration(y, p, n_bins=4)
    assert cal["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cal["count"] == [2, 2, 0, 2]
    assert cal["mean_predicted"] == pytest.approx([0.05, 0.275, None, 0.95])
    assert cal["observed"] == [0.0, 0.5, None, 1.0]
    assert cal["brier"] == pytest.approx((0.01 + 0.5625 + 0.09 + 0.01) / 6)
    json.dumps(cal, allow_nan=False)
    with pytest.raises(ValueError, match="within"):
        calibration([0, 1], [0.2, 1.2])


def test_brier_exact() -> None:
    cal = calibration([1, 0, 1, 0], [0.9, 0.2, 0.6, 0.5])
    assert cal["brier"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.25) / 4)


# Three classes; true -> predicted: 0->0, 0->0, 0->1, 1->1, 1->1, 1->2, 2->2, 2->2, 2->0, 2->2.
Y3 = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
P3 = [
    [0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3],
    [0.1, 0.4, 0.5], [0.1, 0.1, 0.8], [0.2, 0.3, 0.5], [0.5, 0.1, 0.4], [0.3, 0.2, 0.5],
]


def test_multiclass_hand_example() -> None:
    m = multiclass_metrics(Y3, P3, class_names=["normal", "covid", "other"])
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
    assert m["accuracy"] == pytest.approx(0.7)
    expected = {"normal": (2 / 3, 2 / 3, 3), "covid": (2 / 3, 2 / 3, 3), "other": (3 / 4, 3 / 4, 4)}
    for name, (precision, recall, support) in expected.items():
        c = m["per_class"][name]
        assert (c["precision"], c["recall"], c["support"]) == pytest.approx(
            (precision, recall, support))
        assert c["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    for key in ("macro_precision", "macro_recall", "macro_f1"):
        assert m[key] == pytest.approx(25 / 36)
    ovr = roc_auc_score(Y3, P3, multi_class="ovr", average="macro")
    assert m["macro_auc"] == pytest.approx(ovr)
    assert m["per_class"]["normal"]["auc"] == pytest.approx(
        roc_auc_score(np.array(Y3) == 0, np.array(P3)[:, 0]))
    p_true = [row[t] for row, t in zip(P3, Y3, strict=True)]
    assert m["loss"] == pytest.approx(-np.mean(np.log(p_true)))
    assert m["n"] == 10 and m["class_names"] == ["normal", "covid", "other"]


def test_multiclass_absent_class_has_no_auc() -> None:
    m = multiclass_metrics(Y3[:6], P3[:6])
    assert m["per_class"]["2"]["support"] == 0 and m["per_class"]["2"]["auc"] is None
    assert m["per_class"]["0"]["auc"] is not None and m["macro_auc"] is None
    assert m["confusion_matrix"][2] == [0, 0, 0]
    with pytest.raises(ValueError, match="class names"):
        multiclass_metrics(Y3, P3, class_names=["a", "b"])


def test_evaluate_predictions_is_json_serialisable() -> None:
    y, p = _realistic(n=80)
    binary = evaluate_predictions(y, p, n_boot=200)
    assert set(binary) >= {*METRIC_KEYS, "brier", "ci", "roc", "calibration", "confusion_matrix"}
    assert binary["brier"] == binary["calibration"]["brier"]
    assert evaluate_predictions(y, p.reshape(-1, 1), n_boot=200) == binary
    threshold = youden_threshold(y, p)
    tuned = evaluate_predictions(y, p, threshold=np.float64(threshold), n_boot=0)
    assert tuned["threshold"] == threshold and tuned["ci"] is None
    single = evaluate_predictions([1, 1, 1], [0.2, 0.6, 0.9], n_boot=50)
    assert single["roc"] is None and single["auc"] is None
    multi = evaluate_predictions(Y3, np.array(P3), class_names=["a", "b", "c"])
    assert multi == multiclass_metrics(Y3, P3, ["a", "b", "c"])
    for result in (binary, tuned, single, multi):
        json.dumps(result, allow_nan=False)
        _assert_plain({k: v for k, v in result.items() if v is not None})


def test_mean_std_across_folds() -> None:
    folds = [
        {"accuracy": 0.8, "auc": 0.9, "n": 10, "confusion_matrix": [[1, 0], [0, 1]]},
        {"accuracy": 0.6, "auc": None, "n": 20, "confusion_matrix": [[1, 0], [0, 1]]},
        {"accuracy": 0.7, "auc": 0.7, "n": 30, "confusion_matrix": [[1, 0], [0, 1]]},
    ]
    summary = mean_std(folds)
    assert set(summary) == {"accuracy", "auc", "n"}
    assert summary["accuracy"] == pytest.approx((0.7, 0.1))
    assert summary["auc"] == pytest.approx((0.8, math.sqrt(0.02)))
    assert summary["n"] == pytest.approx((20.0, 10.0))
    folds_metrics = [binary_metrics(*_realistic(n=40, seed=s)) for s in range(3)]
    assert set(mean_std(folds_metrics)) >= set(METRIC_KEYS)


def test_ratios_with_a_zero_denominator_are_undefined_not_zero() -> None:
    none_predicted = binary_metrics([0, 0, 1], [0.1, 0.2, 0.3])  # nothing >= 0.5
    assert none_predicted["precision"] is None and none_predicted["recall"] == 0.0
    assert none_predicted["f1"] == 0.0 and none_predicted["specificity"] == 1.0
    only_negatives = binary_metrics([0, 0], [0.1, 0.2])
    assert only_negatives["recall"] is None and only_negatives["f1"] is None
    assert only_negatives["precision"] is None and only_negatives["specificity"] == 1.0
    only_positives = binary_metrics([1, 1], [0.9, 0.2])
    assert only_positives["specificity"] is None and only_positives["precision"] == 1.0
    assert "precision" not in mean_std([none_predicted, only_negatives])
