"""Reading run folders and report folders into plain data (fake runs, no training)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fake_runs import BINARY, SKIPPED, THREE, fake_run, history

from ct3d import report


def test_read_holdout_run(tmp_path: Path) -> None:
    run = report.read_run(fake_run(tmp_path, "holdout"))
    assert run.metrics == json.loads((tmp_path / "metrics.json").read_text())
    assert run.classes == BINARY and run.folds == []
    assert run.histories == [history(3)]
    assert run.histories[0]["epoch"] == [1, 2, 3] and type(run.histories[0]["epoch"][0]) is int
    assert len(run.split) == 21 and run.split["label"].tolist()[:3] == [0, 1, 0]
    assert run.split["part"].value_counts().to_dict() == {"train": 9, "test": 8, "val": 4}
    assert run.split.set_index("path").loc[SKIPPED, "skipped"] == "gzip stream is truncated"
    assert (run.split["skipped"] == "").sum() == 20
    assert list(run.predictions.columns) == ["scan", "label", "probability", "fold", "repeat",
                                             "part"]
    assert run.predictions["probability"].between(0, 1).all()
    assert run.predictions["fold"].tolist() == [0] * 20


def test_kfold_histories_are_in_fold_order(tmp_path: Path) -> None:
    run = report.read_run(fake_run(tmp_path, "kfold", folds=11))   # as text fold10 < fold2
    assert len(run.folds) == 11 and run.metrics["evaluated_on"] == "out-of-fold"
    assert run.histories == [history(2 + i % 3, i) for i in range(11)]
    assert [c for c in run.split.columns if c.startswith("fold")] == [f"fold{i}" for i in
                                                                        range(11)]


def test_multiclass_predictions_have_a_column_per_class(tmp_path: Path) -> None:
    run = report.read_run(fake_run(tmp_path, "multiclass"))
    assert run.classes == THREE
    probs = run.predictions[[f"p_{c}" for c in THREE]]
    assert probs.sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-5)


def test_relative_scans_name_each_scan_from_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = report.read_run(fake_run(tmp_path / "run", "holdout"))
    shown = report.relative_scans(run.predictions, "/data")
    assert shown["scan"].tolist()[:2] == ["CT-0/scan00.nii.gz", "CT-23/scan01.nii.gz"]
    assert shown.drop(columns="scan").equals(run.predictions.drop(columns="scan"))
    assert run.predictions["scan"].iloc[0] == "/data/CT-0/scan00.nii.gz"   # a copy
    monkeypatch.chdir(tmp_path)                    # as in a report folder: relative paths
    rows = pd.DataFrame({"scan": ["../work/.data/cohort-a/CT-1/s1.nii.gz", "/x/y/CT-0/s2.nii"]})
    assert report.relative_scans(rows, "../work/.data")["scan"].tolist() == [
        "cohort-a/CT-1/s1.nii.gz", "CT-0/s2.nii"]                 # outside the data: folder/file
    (tmp_path / "scans.csv").write_text("path,label\n")
    manifest = pd.DataFrame({"scan": [str(tmp_path / "CT-0" / "a.nii.gz")]})
    assert report.relative_scans(manifest, tmp_path / "scans.csv")["scan"].tolist() == [
        "CT-0/a.nii.gz"]


def test_class_names_fall_back_to_label_numbers() -> None:
    assert report.class_names({"class_names": ["a", "b", "c"], "classes": ["x"]}) == ["a", "b", "c"]
    assert report.class_names({"classes": ["x", "y"]}) == ["x", "y"]
    assert report.class_names({"confusion_matrix": [[1, 0], [0, 1]]}) == ["0", "1"]


def test_sample_scans_are_the_first_usable_of_each_class(tmp_path: Path) -> None:
    run = report.read_run(fake_run(tmp_path, "holdout"))
    picked = report.sample_scans(run, per_class=2)
    assert picked["path"].tolist() == ["/data/CT-0/scan00.nii.gz", "/data/CT-0/scan02.nii.gz",
                                       "/data/CT-23/scan01.nii.gz", "/data/CT-23/scan03.nii.gz"]
    assert SKIPPED not in report.sample_scans(run, per_class=50)["path"].tolist()


def test_held_out_scans_are_from_the_evaluated_part_of_the_last_model(tmp_path: Path) -> None:
    run = report.read_run(fake_run(tmp_path / "h", "holdout"))
    holdout = report.held_out_scans(run, per_class=1)
    assert holdout["part"].tolist() == ["test", "test"] and holdout["label"].tolist() == [0, 1]
    assert holdout["scan"].tolist() == ["/data/CT-0/scan12.nii.gz", "/data/CT-23/scan13.nii.gz"]
    run = report.read_run(fake_run(tmp_path / "k", "kfold"))
    kfold = report.held_out_scans(run, per_class=5)
    assert set(kfold["fold"]) == {2} and set(kfold["part"]) == {"test"}
    in_test = run.split[run.split["fold2"] == "test"]["path"]
    assert sorted(kfold["scan"]) == sorted(in_test) and len(kfold) == 4


def test_scan_titles_name_class_probability_and_file() -> None:
    split = pd.DataFrame({"path": ["/d/x.nii.gz"], "label": [0]})
    predictions = pd.DataFrame({"scan": ["/d/y.nii"], "label": [1], "probability": [0.126]})
    assert report.scan_titles(split, BINARY) == ["CT-0\nx.nii.gz"]
    assert report.scan_titles(predictions, BINARY) == ["CT-23, p = 0.13\ny.nii"]


def _report(folder: Path, metrics: dict | None, failed: bool = False) -> None:
    folder.mkdir(parents=True)
    meta = {"papermill": {"exception": True}} if failed else {"papermill": {}}
    (folder / "report.ipynb").write_text(json.dumps({"metadata": meta, "cells": []}))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_read_reports_in_grid_order_with_the_failed_ones(tmp_path: Path) -> None:
    _report(tmp_path / "zz-extra", {"n": 1})
    _report(tmp_path / "all-slices-aug-10", {"n": 2})
    _report(tmp_path / "all-slices-aug-5", None, failed=True)
    _report(tmp_path / "lung-only-aug-25", {"n": 3})
    (tmp_path / "index.html").write_text("")
    reports = report.read_reports(tmp_path, "thesis")
    assert reports.names == ["all-slices-aug-5", "all-slices-aug-10", "lung-only-aug-25",
                             "zz-extra"]
    assert reports.failed == ["all-slices-aug-5"]
    assert reports.metrics == {"all-slices-aug-10": {"n": 2}, "lung-only-aug-25": {"n": 3},
                               "zz-extra": {"n": 1}}
    assert reports.summary() == "4 scenario report(s) of grid thesis; failed: all-slices-aug-5"
    thesis_only = report.read_reports("", "thesis")
    assert thesis_only.folder is None and thesis_only.metrics == {}
    assert thesis_only.names == ["all-slices-aug-5", "all-slices-aug-10", "all-slices-aug-15",
                                 "all-slices-aug-25", "lung-only-aug-25"]


def test_report_package_imports_without_tensorflow_or_ipywidgets() -> None:
    code = ("import sys, ct3d.report, ct3d.report.images, ct3d.report.compare; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_repeated_kfold_run_reads_as_one_model_per_fold_and_repeat(tmp_path: Path) -> None:
    run = report.read_run(fake_run(tmp_path, "kfold", folds=3, repeats=2))
    assert len(run.folds) == 6 and len(run.histories) == 6 and len(run.metrics["repeats"]) == 2
    tested = run.predictions[run.predictions["part"] == "test"]
    assert tested.groupby("repeat")["scan"].nunique().to_dict() == {0: 12, 1: 12}
    assert tested.groupby("repeat")["fold"].unique().map(sorted).to_dict() == {
        0: [0, 1, 2], 1: [3, 4, 5]}
    shown = report.held_out_scans(run, per_class=1)
    assert shown["fold"].tolist() == [5, 5] and shown["repeat"].tolist() == [1, 1]
