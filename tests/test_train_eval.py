"""Training robustness and honest evaluation: k-fold, thresholds, resume, schedules,
class weights, multi-class, and predict == evaluation."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

import ct3d
from ct3d.cli import main
from ct3d.data.synthetic import generate_cohort
from ct3d.engine import run
from ct3d.engine.fit import make_optimizer
from ct3d.engine.rundir import RunFolderError
from ct3d.evaluate import youden_threshold
from ct3d.scenario import Scenario


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_kfold_gives_each_scan_one_out_of_fold_prediction_through_the_cli(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario],
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_scenario(cohort_root, tmp_path / "unused", **{
        "split.kind": "kfold", "split.k": 3, "split.val": 0.25, "train.epochs": 1,
    }).to_yaml(tmp_path / "cv.yaml")
    assert main(["train", str(tmp_path / "cv.yaml"), "--out", str(tmp_path / "cv")]) == 0
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    printed = capsys.readouterr().out.splitlines()
    table = next(line for line in printed if line.startswith("out-of-fold"))
    assert f"{m['accuracy']:.4f}" in table and f"{m['auc']:.4f}" in table
    assert f"run folder: {tmp_path / 'cv'}" in printed
    rows = _rows(tmp_path / "cv" / "predictions.csv")
    test_rows = [r for r in rows if r["part"] == "test"]
    assert sorted(r["scan"] for r in test_rows) == sorted(
        str(p) for p in next(cohort_root.glob("quick-*")).glob("CT-*/study_????.nii.gz"))
    assert sorted({r["fold"] for r in test_rows}) == ["0", "1", "2"]
    assert m["evaluated_on"] == "out-of-fold" and m["n"] == 16 and len(m["folds"]) == 3
    assert sum(f["n"] for f in m["folds"]) == 16
    assert {"auc", "accuracy"} <= set(m["fold_mean_std"])
    assert m["ci"]["accuracy"][0] <= m["accuracy"] <= m["ci"]["accuracy"][1]
    assert all((tmp_path / "cv" / f"fold{i}" / "model.keras").is_file() for i in range(3))
    split = _rows(tmp_path / "cv" / "split.csv")
    assert all(sum(r[f"fold{i}"] == "test" for i in range(3)) == 1 for r in split)


@pytest.mark.slow
def test_repeated_kfold_trains_k_times_r_models_and_averages_the_repeats(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario],
) -> None:
    s = make_scenario(cohort_root, tmp_path / "rcv", **{
        "split.kind": "kfold", "split.k": 2, "split.val": 0.25, "split.repeats": 2,
        "train.epochs": 1, "evaluate.n_boot": 100})
    m = run(s, verbose=0).metrics
    tested = [r for r in _rows(tmp_path / "rcv" / "predictions.csv") if r["part"] == "test"]
    assert len(tested) == 32 and len({(r["scan"], r["repeat"]) for r in tested}) == 32
    assert sorted({(r["repeat"], r["fold"]) for r in tested}) == [
        ("0", "0"), ("0", "1"), ("1", "2"), ("1", "3")]
    assert len(m["folds"]) == 4 and len(m["repeats"]) == 2 and m["n"] == 16
    assert m["auc"] == pytest.approx(np.mean([r["auc"] for r in m["repeats"]]))
    assert m["from_repeat_0"] == ["confusion_matrix", "roc", "calibration"]
    assert all((tmp_path / "rcv" / f"fold{j}" / "model.keras").is_file() for j in range(4))
    split = _rows(tmp_path / "rcv" / "split.csv")
    assert all(sum(r[f"fold{j}"] == "test" for j in range(2)) == 1 for r in split)
    assert all(sum(r[f"fold{j}"] == "test" for j in range(2, 4)) == 1 for r in split)


@pytest.mark.slow
def test_youden_threshold_comes_from_the_validation_part_only(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    s = make_scenario(cohort_root, tmp_path / "yj", **{"evaluate.threshold": "youden",
                                                       "train.epochs": 2})
    result = run(s, verbose=0)
    m = result.metrics
    assert m["cost"]["parameters"] == result.model.count_params()       # what it cost
    assert m["cost"]["input_shape"] == [*result.model.input_shape[1:]]
    assert m["cost"]["gflops_per_scan"] > 0 and m["peak_rss_gib"] > 0.1
    rows = _rows(tmp_path / "yj" / "predictions.csv")
    val = [r for r in rows if r["part"] == "val"]
    expected = youden_threshold([int(r["label"]) for r in val],
                                [float(r["probability"]) for r in val])
    assert m["threshold"] == pytest.approx(expected, abs=1e-6)
    assert m["parts"]["test"]["threshold"] == m["threshold"]
    test = [r for r in rows if r["part"] == "test"]
    predicted = [int(float(r["probability"]) >= m["threshold"]) for r in test]
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    assert [tn + fn, fp + tp] == [predicted.count(0), predicted.count(1)]


def test_schedules() -> None:
    base = Scenario.preset("quick").with_overrides({"train.learning_rate": 0.1})
    cosine = make_optimizer(base.with_overrides({"train.schedule": "cosine"}).train, 100)
    cosine = cosine.learning_rate
    assert float(cosine) == pytest.approx(0.1)
    exp = make_optimizer(base.with_overrides({"train.schedule": "exponential",
                                          "train.lr_decay_rate": 0.5,
                                          "train.lr_decay_steps": 10}).train, 100)
    assert float(exp._learning_rate(25)) == pytest.approx(0.1 * 0.25)  # noqa: SLF001
    cos = make_optimizer(base.with_overrides({"train.schedule": "cosine"}).train, 100)
    assert float(cos._learning_rate(50)) == pytest.approx(0.05)  # noqa: SLF001
    assert float(cos._learning_rate(100)) == pytest.approx(0.0, abs=1e-7)  # noqa: SLF001
    sgd = make_optimizer(
        base.with_overrides({"train.optimizer": "sgd", "train.momentum": 0.8}).train, 1)
    assert float(sgd.momentum) == pytest.approx(0.8)


@pytest.mark.slow
def test_plateau_schedule_and_balanced_class_weights_train(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    s = make_scenario(cohort_root, tmp_path / "pw", **{
        "train.schedule": "plateau", "train.plateau_patience": 0, "train.plateau_factor": 0.5,
        "train.class_weight": "balanced", "train.epochs": 3, "train.monitor": "loss",
        "data.labels": {"normal": ["CT-0"], "abnormal": ["CT-23"]}})
    result = run(s, verbose=0)
    history = result.history
    assert len(history["loss"]) == 3 and "learning_rate" in history
    lrs = history["learning_rate"]
    assert all(b == pytest.approx(a) or b == pytest.approx(a / 2) for a, b in pairwise(lrs))


@pytest.mark.slow
def test_resume_after_a_kill_equals_an_uninterrupted_run(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    s = make_scenario(cohort_root, tmp_path / "full", **{"train.epochs": 4})
    full = run(s, verbose=0).metrics
    killed = tmp_path / "killed"
    s.with_overrides({"out": str(killed)}).to_yaml(tmp_path / "k.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "ct3d.cli", "train", str(tmp_path / "k.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed / "state" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch = json.loads(state.read_text())["epoch"]
    assert 2 <= epoch < 4 and not (killed / "metrics.json").exists()
    assert main(["train", "--resume", str(killed)]) == 0
    resumed = json.loads((killed / "metrics.json").read_text())
    for measured in ("time_per_epoch_s", "peak_rss_gib"):
        full.pop(measured), resumed.pop(measured)
    assert resumed == json.loads(json.dumps(full))
    assert len(_rows(killed / "history.csv")) == 4


@pytest.mark.slow
def test_predict_equals_evaluation_and_reports_bad_scans(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = tmp_path / "run"
    run(make_scenario(cohort_root, run_dir, **{"train.epochs": 1}), verbose=0)
    rows = [r for r in _rows(run_dir / "predictions.csv") if r["part"] == "test"]
    bad = tmp_path / "bad.nii.gz"
    bad.write_text("not a scan")
    results = ct3d.predict(run_dir, [r["scan"] for r in rows] + [str(bad)], progress=False)
    for row, result in zip(rows, results, strict=False):
        assert result.probability == pytest.approx(float(row["probability"]), abs=1e-5)
        threshold = json.loads((run_dir / "metrics.json").read_text())["threshold"]
        assert result.label == ("abnormal" if result.probability >= threshold else "normal")
    assert results[-1].error and "bad.nii.gz: not a NIfTI file" in results[-1].error
    folder = Path(rows[0]["scan"]).parent
    assert len(ct3d.predict(run_dir, [folder], progress=False)) == len(
        list(folder.glob("study_????.nii.gz")))
    out_csv = tmp_path / "out.csv"
    assert main(["predict", str(run_dir), rows[0]["scan"], str(bad), "--csv", str(out_csv)]) == 1
    captured = capsys.readouterr()
    assert rows[0]["scan"] in captured.out and "bad.nii.gz" in captured.err
    assert [r["error"] != "" for r in _rows(out_csv)] == [False, True]
    assert main(["predict", str(tmp_path), rows[0]["scan"]]) == 2
    assert "not a ct3d run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_three_classes_softmax_confusion_matrix_and_predict(
    tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    root = tmp_path / "three"
    for folder, difficulty, abnormal in (("CT-0", "easy", 0), ("CT-1", "hard", 1),
                                         ("CT-2", "easy", 1)):
        made = generate_cohort(tmp_path / folder, 6 * (1 - abnormal), 6 * abnormal,
                               seed=len(folder) + abnormal, preset="quick",
                               difficulty=difficulty, progress=False)
        (root / folder).mkdir(parents=True)
        for path in made:
            shutil.copy(path, root / folder / f"{folder}-{path.name}")
    s = make_scenario(root, tmp_path / "run3", **{
        "data.source": "folder", "data.cache": str(tmp_path / "cache"), "train.epochs": 1,
        "data.labels": {"normal": ["CT-0"], "mild": ["CT-1"], "severe": ["CT-2"]},
        "split.train": 0.5, "split.val": 0.17, "split.test": 0.33})
    m = run(s, verbose=0).metrics
    assert m["classes"] == ["normal", "mild", "severe"]
    assert np.array(m["confusion_matrix"]).shape == (3, 3) and m["n"] == 6
    assert set(m["per_class"]) == {"normal", "mild", "severe"}
    header = _rows(tmp_path / "run3" / "predictions.csv")[0]
    assert {"p_normal", "p_mild", "p_severe"} <= set(header)
    result = ct3d.predict(tmp_path / "run3", [next((root / "CT-2").iterdir())],
                          progress=False)[0]
    assert result.label in m["classes"] and sum(result.probabilities.values()) == pytest.approx(1)


@pytest.mark.slow
def test_a_forced_run_replaces_an_old_runs_files(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    run(make_scenario(cohort_root, tmp_path / "r", **{"train.epochs": 2}), verbose=0)
    again = make_scenario(cohort_root, tmp_path / "r", **{"train.epochs": 1})
    with pytest.raises(RunFolderError, match="already holds a finished run"):
        run(again, verbose=0)
    assert len(_rows(tmp_path / "r" / "history.csv")) == 2
    run(again, verbose=0, force=True)
    assert len(_rows(tmp_path / "r" / "history.csv")) == 1
    assert os.listdir(tmp_path / "r" / "state")
