"""End to end: scenario -> run folder, determinism, and learning on an easy cohort."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import keras
import pytest

from ct3d.data.dataset import DatasetError
from ct3d.evaluate import METRIC_KEYS
from ct3d.scenario import Scenario
from ct3d.train import run


def _metrics(run_dir: Path) -> dict:
    """metrics.json without its wall-clock timing (the one thing a re-run may change)."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics.pop("time_per_epoch_s") > 0
    return metrics


def test_run_folder_and_same_seed_same_result(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    first = run(make_scenario(cohort_root, tmp_path / "a"), verbose=0)
    files = sorted(p.name for p in first.run_dir.iterdir())
    assert files == ["history.csv", "metrics.json", "model.keras", "predictions.csv",
                     "scenario.yaml", "split.csv"]
    m = _metrics(first.run_dir)
    assert set(METRIC_KEYS) | {"confusion_matrix", "n"} <= set(m)
    assert m["evaluated_on"] == "test" and m["n"] == 4
    assert sum(map(sum, m["confusion_matrix"])) == 4
    assert {p: v["n"] for p, v in m["parts"].items()} == {"train": 10, "val": 2, "test": 4}
    with (first.run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[0]["time_s"]) > 0
    assert keras.models.load_model(first.run_dir / "model.keras").name == "modified_3dcnn"

    second = run(make_scenario(cohort_root, tmp_path / "b"), verbose=0)
    assert (first.run_dir / "split.csv").read_text() == (second.run_dir / "split.csv").read_text()
    assert _metrics(second.run_dir) == m
    other = run(make_scenario(cohort_root, tmp_path / "c", seed=1), verbose=0)
    assert (other.run_dir / "split.csv").read_text() != (first.run_dir / "split.csv").read_text()


def test_refuses_to_overwrite_a_different_cohort(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    run(make_scenario(cohort_root, tmp_path / "a", **{"train.epochs": 1}), verbose=0)
    changed = make_scenario(cohort_root, tmp_path / "b", **{"data.synthetic.normal": 9})
    with pytest.raises(DatasetError, match="holds a different synthetic cohort"):
        run(changed, verbose=0)


def test_modified_cnn_learns_an_easy_cohort(
    tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    s = make_scenario(tmp_path / "easy", tmp_path / "run", **{
        "data.synthetic.normal": 30, "data.synthetic.abnormal": 30,
        "split.train": 0.5, "split.val": 0.2, "split.test": 0.3, "train.epochs": 12,
    })
    m = run(s, verbose=0).metrics
    assert m["n"] == 18
    assert m["auc"] >= 0.8, m
