"""Metrics from counts and probabilities, their uncertainty, thresholds and calibration."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score

from ct3d.engine.parts import FoldResult, Part
from ct3d.engine.pooling import fold_metrics, write_metrics
from ct3d.evaluate import (
    CI_KEYS,
    METRIC_KEYS,
    binary_metrics,
    bootstrap_ci,
    calibration,
    evaluate_predictions,
    mean_std,
    multiclass_metrics,
    quadratic_kappa,
    resample_counts,
    resample_metrics,
    roc_points,
    summarize_folds,
    summarize_repeats,
    youden_threshold,
)
from ct3d.scenario import Scenario


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


def test_quadratic_kappa_hand_example() -> None:
    # Y3/P3: observed [[2, 1, 0], [0, 2, 1], [1, 0, 3]], both margins (3, 3, 4), n = 10.
    # Weights (i - j)^2: observed disagreement 1*1 + 1*1 + 4*1 = 6; expected by chance
    # (1*9 + 4*12 + 1*9 + 1*12 + 4*12 + 1*12) / 10 = 13.8; kappa = 1 - 6 / 13.8 = 13/23.
    m = multiclass_metrics(Y3, P3)
    assert m["quadratic_kappa"] == pytest.approx(13 / 23)
    assert quadratic_kappa([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], 5) == 1.0
    # a CT-0 called CT-4 is worse than one called CT-1: kappa is lower
    far = quadratic_kappa([0, 0, 4, 4], [4, 0, 4, 4], 5)
    near = quadratic_kappa([0, 0, 4, 4], [1, 0, 4, 4], 5)
    assert far is not None and near is not None and far < near < 1
    assert quadratic_kappa([2, 2], [2, 2], 3) is None  # one class only: undefined


def _repeat_cohort(n: int = 50, repeats: int = 3) -> tuple[list[list[str]], list[np.ndarray],
                                                           list[np.ndarray]]:
    """Each repeat: every scan once, in its own order, with its own probabilities."""
    y, base = _realistic(n=n, seed=11)
    rng = np.random.default_rng(5)
    scans, labels, probs = [], [], []
    for _ in range(repeats):
        order = rng.permutation(n)
        p = np.clip(base + rng.normal(0, 0.1, n), 0, 1).round(2)
        scans.append([f"s{i}" for i in order])
        labels.append(y[order])
        probs.append(p[order])
    return scans, labels, probs


def _folds(repeats: int, k: int, thresholds: list[float]) -> list[dict[str, Any]]:
    """Fold metrics with only what pooling reads: each repeat's folds share a threshold."""
    return [{"threshold": thresholds[r], "accuracy": 0.5 + 0.01 * (r * k + i), "n": 10}
            for r in range(repeats) for i in range(k)]


def test_repeated_kfold_metrics_are_the_mean_over_repeats_with_a_shared_scan_bootstrap() -> None:
    scans, labels, probs = _repeat_cohort()
    thresholds = [0.5, 0.45, 0.55]
    folds = _folds(3, 2, thresholds)
    s = summarize_repeats(folds, scans, labels, probs, n_boot=300, seed=3)
    each = [binary_metrics(y, p, t) for y, p, t in zip(labels, probs, thresholds, strict=True)]
    for key in ("accuracy", "recall", "specificity", "auc", "loss", "threshold"):
        assert s[key] == pytest.approx(np.mean([m[key] for m in each])), key
        assert [r[key] for r in s["repeats"]] == pytest.approx([m[key] for m in each]), key
        assert s["repeat_mean_std"][key] == pytest.approx(
            (np.mean([m[key] for m in each]), np.std([m[key] for m in each], ddof=1))), key
    assert s["auc"] == pytest.approx(np.mean([roc_auc_score(y, p) for y, p in
                                              zip(labels, probs, strict=True)]))
    assert s["n"] == 50 and s["evaluated_on"] == "out-of-fold"
    assert s["confusion_matrix"] == each[0]["confusion_matrix"]
    assert s["roc"] == roc_points(labels[0], probs[0])
    assert s["from_repeat_0"] == ["confusion_matrix", "roc", "calibration"]
    assert s["folds"] == folds and s["fold_mean_std"]["accuracy"][0] == pytest.approx(0.525)
    assert all("ci" not in r and "roc" not in r for r in s["repeats"])
    # the interval, explicitly: one draw of the 50 scans (ids in repeat 0's order) per
    # resample, each repeat scored by scikit-learn on those scans, averaged over the repeats
    counts = resample_counts(50, 300, 3)
    by_id = [dict(zip(ids, zip(y, p, strict=True), strict=True))
             for ids, y, p in zip(scans, labels, probs, strict=True)]
    auc, accuracy = [], []
    for c in counts:
        drawn = np.repeat(scans[0], c)
        rows = [np.array([rep[i] for i in drawn]) for rep in by_id]
        auc.append(np.mean([roc_auc_score(r[:, 0], r[:, 1]) for r in rows]))
        accuracy.append(np.mean([np.mean((r[:, 1] >= t) == r[:, 0])
                                 for r, t in zip(rows, thresholds, strict=True)]))
    assert s["ci"]["auc"] == pytest.approx(tuple(np.percentile(auc, [2.5, 97.5])))
    assert s["ci"]["accuracy"] == pytest.approx(tuple(np.percentile(accuracy, [2.5, 97.5])))
    assert s["ci"]["auc"][0] < s["auc"] < s["ci"]["auc"][1]
    json.dumps(s, allow_nan=False)


def test_one_repeat_gives_the_k_fold_interval() -> None:
    scans, labels, probs = _repeat_cohort(repeats=1)
    one = summarize_repeats(_folds(1, 2, [0.5]), scans, labels, probs, n_boot=200, seed=1)
    assert one["ci"] == bootstrap_ci(labels[0], probs[0], 0.5, 200, 1)
    none = summarize_repeats(_folds(1, 2, [0.5]), scans, labels, probs, n_boot=0)
    assert none["ci"] is None
    with pytest.raises(ValueError, match="as many folds per repeat"):
        summarize_repeats(_folds(1, 3, [0.5]), scans * 2, labels * 2, probs * 2)


def test_repeated_multiclass_averages_scalars_and_keeps_repeat_0s_matrix() -> None:
    hit, miss = [[.8, .1, .1], [.1, .8, .1], [.1, .1, .8]], [.8, .1, .1]
    other = [hit[c] for c in Y3[:9]] + [miss]  # another model: one CT-2-like scan called 0
    folds = [{"accuracy": 0.7}, {"accuracy": 0.6}]
    ids = [f"s{i}" for i in range(10)]
    s = summarize_repeats(folds, [ids, ids], [Y3, Y3], [np.array(P3), np.array(other)],
                          ["a", "b", "c"], n_boot=100)
    first, second = multiclass_metrics(Y3, P3, "abc"), multiclass_metrics(Y3, other, "abc")
    for key in ("accuracy", "macro_f1", "macro_auc", "quadratic_kappa", "loss"):
        assert s[key] == pytest.approx((first[key] + second[key]) / 2), key
    assert first["quadratic_kappa"] != second["quadratic_kappa"]
    assert s["confusion_matrix"] == first["confusion_matrix"] and "ci" not in s
    assert s["per_class"] == first["per_class"] and s["n"] == 10
    assert s["from_repeat_0"] == ["per_class", "confusion_matrix"]


def _fold_result(labels: list[int], probs: list[float], names: list[str]) -> FoldResult:
    """A trained model without a model: a test part and a val part, one epoch of history."""
    parts = {"val": Part([], np.array([0, 1]), ["v0", "v1"]),
             "test": Part([], np.array(labels), names)}
    return FoldResult(None, {"time_s": [1.0], "val_loss": [0.5]}, parts,
                      {"val": np.array([0.3, 0.7]), "test": np.array(probs)})


def test_metrics_json_and_predictions_csv_of_one_and_of_several_repeats(tmp_path: Path) -> None:
    y, p = _realistic(n=12, seed=2)
    halves = [slice(0, 6), slice(6, 12)]
    names = [f"scan{i:02d}" for i in range(12)]
    once = [_fold_result(y[h].tolist(), p[h].tolist(), names[h]) for h in halves]
    s = Scenario().with_overrides({"split.kind": "kfold", "split.k": 2, "evaluate.n_boot": 50})
    (tmp_path / "one").mkdir()
    m = write_metrics(s, tmp_path / "one", once, ["normal", "abnormal"], {})
    assert 0.1 < m.pop("peak_rss_gib") < 64               # measured, like the epoch times
    folds = [fold_metrics(s, r, ["normal", "abnormal"]) for r in once]
    expected = summarize_folds(folds, [y[h] for h in halves], [p[h] for h in halves],
                               ["normal", "abnormal"], 50, s.seed)
    assert m == {"scenario": s.name, "classes": ["normal", "abnormal"], **expected,
                 "seed": s.seed, "skipped": {}}  # one repeat: as before repeats existed
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["auc"] == m["auc"]
    rows = (tmp_path / "one" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "scan,label,probability,fold,repeat,part"
    assert {r.split(",")[-2] for r in rows[1:]} == {"0"}
    # two repeats: the second pairs the scans differently and predicts them a little lower
    order = [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]
    again = [_fold_result(y[order][h].tolist(), (p[order][h] * 0.9).tolist(),
                          [names[i] for i in order][h]) for h in halves]
    s2 = s.with_overrides({"split.repeats": 2})
    (tmp_path / "two").mkdir()
    m2 = write_metrics(s2, tmp_path / "two", once + again, ["normal", "abnormal"], {})
    assert [r["auc"] for r in m2["repeats"]] == pytest.approx(
        [roc_auc_score(y, p), roc_auc_score(y[order], p[order] * 0.9)])
    assert m2["auc"] == pytest.approx(np.mean([r["auc"] for r in m2["repeats"]]))
    assert m2["n"] == 12 and len(m2["folds"]) == 4 and m2["confusion_matrix"] == m[
        "confusion_matrix"]
    assert set(m2) - set(m) == {"repeats", "repeat_mean_std", "from_repeat_0", "peak_rss_gib"}
    rows = [r.split(",") for r in (tmp_path / "two" / "predictions.csv").read_text().split()]
    tested = [(r[0], r[3], r[4]) for r in rows[1:] if r[-1] == "test"]
    assert sorted({(f, rep) for _, f, rep in tested}) == [("0", "0"), ("1", "0"), ("2", "1"),
                                                          ("3", "1")]
    assert sorted(s for s, _, rep in tested if rep == "1") == names
