"""Paired comparison of two runs: the bootstrap difference against an explicit loop, the
cases that must come out one way, and two run folders compared (or refused)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_runs import fake_run
from sklearn.metrics import roc_auc_score

from ct3d.evaluate import resample_counts
from ct3d.paired import (
    ComparisonError,
    compare_runs,
    paired_auc_difference,
    paired_difference,
    paired_p_value,
)


def _runs(n: int = 60, repeats: int = 2, gap: float = 0.1,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two overlapping runs' probabilities (repeats, n); B leans ``gap`` more."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    noise = rng.normal(0, 0.2, (repeats, n))
    a = np.clip(0.4 + 0.2 * y + noise, 0, 1).round(3)
    b = np.clip(0.4 + (0.2 + gap) * y + noise + rng.normal(0, 0.05, (repeats, n)), 0, 1)
    return y, a, b.round(3)


def test_the_vectorised_paired_bootstrap_equals_an_explicit_loop() -> None:
    y, a, b = _runs()
    counts = resample_counts(len(y), 400, seed=9)
    got = paired_auc_difference(y, a, b, counts=counts)
    assert got == paired_auc_difference(y, a, b, n_boot=400, seed=9)  # the same draws
    differences = []
    for c in counts:
        idx = np.repeat(np.arange(len(y)), c)
        if len(set(y[idx])) < 2:
            continue
        auc = [[roc_auc_score(y[idx], run[r][idx]) for r in range(len(run))] for run in (a, b)]
        differences.append(np.mean(auc[1]) - np.mean(auc[0]))
    d = np.array(differences)
    assert got["n_boot"] == len(d) == 400 and got["n"] == 60
    assert got["ci"] == pytest.approx(np.percentile(d, [2.5, 97.5]), abs=1e-12)
    tail = min(1 + (d <= 0).sum(), 1 + (d >= 0).sum())
    assert got["p_value"] == pytest.approx(min(1.0, 2 * tail / (len(d) + 1)), abs=1e-12)
    auc_a = np.mean([roc_auc_score(y, row) for row in a])
    auc_b = np.mean([roc_auc_score(y, row) for row in b])
    assert (got["auc_a"], got["auc_b"]) == pytest.approx((auc_a, auc_b), abs=1e-12)
    assert got["difference"] == pytest.approx(auc_b - auc_a, abs=1e-12)


def test_accuracy_uses_each_runs_threshold_of_each_repeat() -> None:
    y, a, b = _runs(n=40)
    got = paired_difference(y, a, b, "accuracy", [0.5, 0.55], 0.45, n_boot=200, seed=2)
    acc_a = np.mean([np.mean((a[0] >= 0.5) == y), np.mean((a[1] >= 0.55) == y)])
    acc_b = np.mean([np.mean((row >= 0.45) == y) for row in b])
    assert (got["a"], got["b"]) == pytest.approx((acc_a, acc_b))
    def accuracy(run: np.ndarray, thresholds: list[float], weights: np.ndarray) -> float:
        return np.mean([np.average((row >= t) == y, weights=weights)
                        for row, t in zip(run, thresholds, strict=True)])

    explicit = [accuracy(b, [0.45, 0.45], c) - accuracy(a, [0.5, 0.55], c)
                for c in resample_counts(40, 200, 2)]
    assert got["ci"] == pytest.approx(np.percentile(explicit, [2.5, 97.5]))


def test_identical_runs_differ_by_exactly_nothing() -> None:
    y, a, _ = _runs(repeats=3)
    got = paired_auc_difference(y, a, a.copy(), n_boot=500)
    assert got["difference"] == 0.0 and got["ci"] == [0.0, 0.0] and got["p_value"] == 1.0
    assert got["auc_a"] == got["auc_b"] == pytest.approx(
        np.mean([roc_auc_score(y, row) for row in a]))


def test_a_clearly_better_run_excludes_zero() -> None:
    y, a, b = _runs(n=80, gap=0.3)
    got = paired_auc_difference(y, a, b, n_boot=1000)
    assert got["difference"] > 0.1 and got["ci"][0] > 0
    assert got["p_value"] < 0.01
    reverse = paired_auc_difference(y, b, a, n_boot=1000)  # B worse: the mirror image
    assert reverse["difference"] == pytest.approx(-got["difference"])
    assert reverse["ci"] == pytest.approx([-got["ci"][1], -got["ci"][0]])
    assert reverse["p_value"] == got["p_value"]


def test_single_runs_and_the_p_value_definition() -> None:
    y, a, b = _runs(repeats=1)
    assert paired_auc_difference(y, a[0], b[0], seed=4) == paired_auc_difference(y, a, b, seed=4)
    assert paired_p_value([0.1, 0.2, 0.3, -0.1]) == pytest.approx(2 * 2 / 5)
    assert paired_p_value([0.0, np.nan, 0.0]) == 1.0
    assert paired_p_value([0.2] * 999) == pytest.approx(2 / 1000)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prob_b": np.zeros(5)}, "`prob_b` must be \\(n,\\) or \\(repeats, n\\) with n = 6"),
    ({"metric": "precision"}, "`metric` must be one of"),
    ({"y_true": [0, 0, 0, 0, 0, 0]}, "needs both classes"),
    ({"threshold_a": [0.5, 0.5, 0.5]}, "one threshold or one per repeat \\(1\\)"),
    ({"counts": np.ones((3, 5), int)}, "`counts` must be \\(n_boot, 6\\)"),
])
def test_bad_inputs_are_refused(kwargs: dict, message: str) -> None:
    args = {"y_true": [0, 1] * 3, "prob_a": np.linspace(0, 1, 6), "prob_b": np.ones(6)}
    with pytest.raises(ValueError, match=message):
        paired_difference(**{**args, **kwargs})


# -- two run folders -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two repeated k-fold runs on the same split; B's outputs lean further to the truth."""
    root = tmp_path_factory.mktemp("pair")
    return (fake_run(root / "base", "kfold", folds=5, repeats=2),
            fake_run(root / "better", "kfold", folds=5, repeats=2, skill=0.6))


def test_compare_runs_reads_both_runs_as_their_metrics_say(pair: tuple[Path, Path]) -> None:
    base, better = pair
    c = compare_runs(base, better, n_boot=500, seed=1)
    ma, mb = (json.loads((f / "metrics.json").read_text()) for f in pair)
    assert (c["auc_a"], c["auc_b"]) == pytest.approx((ma["auc"], mb["auc"]), abs=1e-5)
    assert (c["accuracy"]["a"], c["accuracy"]["b"]) == pytest.approx(
        (ma["accuracy"], mb["accuracy"]), abs=1e-5)
    assert c["n"] == 20 and c["repeats"] == 2 and c["n_boot"] == 500
    assert c["runs"] == {"a": {"scenario": "fake-kfold", "folder": "base", "repeats": 2},
                         "b": {"scenario": "fake-kfold", "folder": "better", "repeats": 2}}
    assert c["difference"] == pytest.approx(c["auc_b"] - c["auc_a"]) and c["difference"] > 0
    assert c["ci"][0] <= c["difference"] <= c["ci"][1] and 0 < c["p_value"] <= 1
    assert c["accuracy"]["threshold_a"] == [0.5, 0.5]
    text = json.dumps(c, allow_nan=False)
    assert str(base.parent) not in text  # names, never paths
    # the same numbers from the arrays: scans sorted by name, one row per repeat
    rows = pd.read_csv(base / "predictions.csv").query("part == 'test'")
    probs = [pd.read_csv(f / "predictions.csv").query("part == 'test'").pivot(
        index="scan", columns="repeat", values="probability").to_numpy().T for f in pair]
    y = rows.groupby("scan")["label"].first().to_numpy()
    direct = paired_auc_difference(y, *probs, n_boot=500, seed=1)
    assert (c["difference"], c["ci"], c["p_value"]) == (direct["difference"], direct["ci"],
                                                        direct["p_value"])


def test_a_run_compared_with_itself(pair: tuple[Path, Path]) -> None:
    c = compare_runs(pair[0], pair[0], n_boot=200)
    assert c["difference"] == 0.0 and c["ci"] == [0.0, 0.0] and c["p_value"] == 1.0
    assert c["accuracy"]["difference"] == 0.0 and c["accuracy"]["p_value"] == 1.0


def test_holdout_runs_compare_on_their_test_part(tmp_path: Path) -> None:
    a, b = fake_run(tmp_path / "a"), fake_run(tmp_path / "b", skill=0.2)
    c = compare_runs(a, b, n_boot=100)
    metrics = json.loads((a / "metrics.json").read_text())
    assert c["n"] == 8 and c["repeats"] == 1 and c["auc_a"] == pytest.approx(metrics["auc"],
                                                                               abs=1e-5)
    assert c["accuracy"]["threshold_a"] == [metrics["threshold"]]


SCAN = "/data/CT-0/scan04.nii.gz"


def _edit_predictions(run: Path, out: Path, change: dict) -> Path:
    """A copy of ``run`` whose predictions.csv has ``change`` (column: value) applied to the
    test row of :data:`SCAN` in repeat 1."""
    out.mkdir()
    for name in ("metrics.json", "predictions.csv"):
        (out / name).write_text((run / name).read_text())
    rows = pd.read_csv(out / "predictions.csv")
    first = rows.index[(rows["scan"] == SCAN) & (rows["repeat"] == 1)
                       & (rows["part"] == "test")][0]
    for column, value in change.items():
        rows.loc[first, column] = value
    rows.to_csv(out / "predictions.csv", index=False)
    return out


@pytest.mark.parametrize(("change", "message"), [
    ({"fold": 9}, "{a} and {b} are not paired (not the same split): scan " + SCAN
     + " (repeat 1) is tested by fold {fold} in {a} and fold 9 in {b}"),
    ({"label": 1}, "{a} and {b} are not paired: scan " + SCAN + " has label 0 in {a} and 1 in "
                   "{b}"),
    ({"scan": "/data/CT-0/other.nii.gz"}, "{a} and {b} are not paired: scan "
                                          "/data/CT-0/other.nii.gz (repeat 1) is not tested in "
                                          "{a}"),
])
def test_runs_that_are_not_paired_are_refused_naming_both_and_the_scan(
    pair: tuple[Path, Path], tmp_path: Path, change: dict, message: str,
) -> None:
    a = pair[0]
    b = _edit_predictions(pair[1], tmp_path / "edited", change)
    rows = pd.read_csv(a / "predictions.csv")
    fold = rows[(rows["scan"] == SCAN) & (rows["repeat"] == 1) & (rows["part"] == "test")]
    with pytest.raises(ComparisonError) as error:
        compare_runs(a, b, n_boot=50)
    assert str(error.value) == message.format(a=a, b=b, fold=fold["fold"].item())


def test_other_splits_multiclass_and_unfinished_runs_are_refused(
    pair: tuple[Path, Path], tmp_path: Path,
) -> None:
    three = fake_run(tmp_path / "three", "multiclass")
    with pytest.raises(ComparisonError, match="three: 3 classes; only binary runs are compared"):
        compare_runs(pair[0], three)
    with pytest.raises(ComparisonError, match="nothing: not a finished ct3d run"):
        compare_runs(pair[0], tmp_path / "nothing")
    with pytest.raises(ComparisonError, match="n_boot >= 1"):
        compare_runs(pair[0], pair[1], n_boot=0)


def test_runs_with_more_repeats_are_compared_on_the_repeats_both_ran(
    pair: tuple[Path, Path], tmp_path: Path,
) -> None:
    single = fake_run(tmp_path / "single", "kfold", folds=5)  # the same scans, repeat 0 only
    c = compare_runs(pair[0], single, n_boot=200)
    assert c["repeats"] == 1 and c["runs"]["a"]["repeats"] == 2 and c["runs"]["b"]["repeats"] == 1
    first = json.loads((pair[0] / "metrics.json").read_text())["repeats"][0]
    assert c["auc_a"] == pytest.approx(first["auc"])
    assert c["auc_b"] == pytest.approx(json.loads((single / "metrics.json").read_text())["auc"])
    rows = pd.read_csv(single / "predictions.csv")
    rows = rows[rows["part"] == "test"].assign(repeat=7)
    rows.to_csv(single / "predictions.csv", index=False)
    with pytest.raises(ComparisonError, match=r"no repeat in common \(\[0, 1\] and \[7\]\)"):
        compare_runs(pair[0], single, n_boot=50)
