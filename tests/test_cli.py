"""The ct3d command: help, plugins, synth, scenario new, train with --set, demo, compare,
errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_runs import fake_run

import ct3d
from ct3d.cli import main, parse_sets
from ct3d.paired import compare_runs
from ct3d.scenario import Scenario


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for command in ("plugins", "synth", "scenario", "train", "demo", "compare"):
        assert command in out


def test_plugins_json_lists_every_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)["plugins"]
    assert [p["name"] for p in listing["model"]] == [
        "baseline_3dcnn", "densenet3d", "inflated3d", "modified_3dcnn", "resnet3d", "slice25d",
        "slice2d"]
    hu = next(p for p in listing["preprocess"] if p["name"] == "hu_window")
    assert hu["params"] == [
        {"name": "low", "type": "float", "default": -1000.0,
         "doc": "lowest HU kept (lower values become 0)"},
        {"name": "high", "type": "float", "default": 400.0,
         "doc": "highest HU kept (higher values become 1); must be above low"}]
    assert {p["name"]: p["min_input"] for p in listing["model"]} == {
        "baseline_3dcnn": 46, "densenet3d": 16, "inflated3d": 32, "modified_3dcnn": 46,
        "resnet3d": 32, "slice25d": 16, "slice2d": 16}
    assert main(["plugins", "augment"]) == 0
    assert "rotate(degrees: tuple[float, float] = [-20.0, 20.0]" in capsys.readouterr().out


@pytest.mark.parametrize("preset", ["quick", "thesis"])
def test_scenario_new_prints_a_complete_valid_scenario(
    preset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scenario", "new", "--preset", preset]) == 0
    text = capsys.readouterr().out
    assert Scenario.from_yaml(text).validate() == Scenario.preset(preset)
    params = yaml.safe_load(text)["model"]["params"]
    assert params == {"dropout": 0.1, "head_dropout": 0.2,
                      "bn_momentum": 0.5 if preset == "quick" else 0.99, "weights": None}


def test_synth_writes_the_mosmed_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["synth", str(tmp_path), "--normal", "2", "--abnormal", "1", "--seed", "3",
                 "--preset", "quick", "--workers", "1"]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.nii.gz")) == [
        "CT-0/study_0001.nii.gz", "CT-0/study_0001_mask.nii.gz", "CT-0/study_0002.nii.gz",
        "CT-0/study_0002_mask.nii.gz", "CT-23/study_0003.nii.gz", "CT-23/study_0003_mask.nii.gz"]
    out = capsys.readouterr().out
    assert "wrote 3 scans" in out
    assert "CT-23        1  " in out  # the default severity: CT-2 or CT-3, 25-75% of the lungs


def test_synth_severity_all_writes_five_grades_and_their_shares(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["synth", str(tmp_path), "--normal", "1", "--abnormal", "1", "--preset",
                 "quick", "--severity", "all", "--workers", "1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "CT-0", "CT-1", "CT-2", "CT-3", "CT-4", "manifest.csv"]
    lines = capsys.readouterr().out.splitlines()
    shares = {line.split()[0]: line.split()[2] for line in lines if line.startswith("CT-")}
    assert shares["CT-0"] == "0.0%-0.0%" and set(shares) == {f"CT-{i}" for i in range(5)}
    for grade, (low, high) in {"CT-1": (0, 25), "CT-2": (25, 50), "CT-3": (50, 75),
                               "CT-4": (75, 100)}.items():
        value = float(shares[grade].split("-")[0].rstrip("%"))
        assert low < value <= high


@pytest.mark.slow
def test_train_with_sets_and_out(
    tmp_path: Path, cohort_root: Path, make_scenario, capsys: pytest.CaptureFixture  # noqa: ANN001
) -> None:
    path = tmp_path / "s.yaml"
    make_scenario(cohort_root, tmp_path / "ignored").to_yaml(path)
    assert main(["train", str(path), "--set", "train.epochs=1", "--set", "seed=5",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "test confusion matrix" in out and f"run folder: {tmp_path / 'run'}" in out
    saved = Scenario.from_file(tmp_path / "run" / "scenario.yaml")
    assert (saved.train.epochs, saved.seed) == (1, 5)
    assert not (tmp_path / "ignored").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "train.epochs=zero"], "override train.epochs='zero': expected int"),
    (["--set", "model.name=modified_3dcnm"], "did you mean 'modified_3dcnn'"),
    (["--set", "data.root=/nonexistent/ct3d", "--set", "data.source=folder"],
     "/nonexistent/ct3d: data folder not found"),
    (["--set", "epochs"], "--set needs key=value, got 'epochs'"),
])
def test_train_errors_are_one_clear_line(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    Scenario.preset("quick").to_yaml(path)
    assert main(["train", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ct3d: error: ") and message in err


def test_missing_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: scenario file not found" in capsys.readouterr().err


def test_parse_sets_keeps_equals_in_values() -> None:
    assert parse_sets(["data.root=/a=b", "train.epochs=3"]) == {"data.root": "/a=b",
                                                                "train.epochs": "3"}


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "run folder:" in out
    assert out.count("ct3d: training on the CPU (no GPU visible), one replica, float32\n") == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["scenario"] == "demo" and metrics["epochs_run"] == 1
    assert [p.parent.name for p in (tmp_path / "data").glob("*/cohort.json")] == [
        "quick-easy-30n-30a-seed0"]


def test_synthetic_source_pointed_at_real_scans_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["synth", str(tmp_path / "cohort"), "--normal", "1", "--abnormal", "1",
                 "--preset", "quick", "--workers", "1"]) == 0
    Scenario.preset("quick").to_yaml(tmp_path / "s.yaml")
    capsys.readouterr()
    assert main(["train", str(tmp_path / "s.yaml"), "--set",
                 f"data.root={tmp_path / 'cohort'}", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        f"ct3d: error: invalid scenario: {tmp_path / 'cohort'}: holds class folders of scans "
        f"(CT-0, CT-23), but data.source=synthetic generates its own cohort under data.root; "
        f"set data.source=folder to train on these scans (or choose another data.root)\n")
    assert sorted(p.name for p in (tmp_path / "cohort").iterdir()) == [
        "CT-0", "CT-23", "manifest.csv"]
    assert not (tmp_path / "run").exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"ct3d {ct3d.__version__}\n"


def test_plugins_show_each_parameter_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)["plugins"]
    assert all("doc" in q for plugins in listing.values() for p in plugins for q in p["params"])
    assert main(["plugins", "model"]) == 0
    out = capsys.readouterr().out
    assert ("  resnet3d(depth: 10 | 18 | 34 = 18, width: int = 16, dropout: float = 0.2, "
            "bn_momentum: float = 0.99, weights: str | None = None)\n") in out
    assert "\n        depth: 10, 18 or 34 layers (basic blocks 1-1-1-1, 2-2-2-2 or " in out
    assert "\n        smallest input: 32 voxels on every side (default parameters)\n" in out


def test_scenario_new_prints_each_key_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["scenario", "new", "--preset", "quick"]) == 0
    text = capsys.readouterr().out
    comments = {" ".join(line.split(" #")[0].split()): line.split(" # ", 1)[1]
                for line in text.splitlines() if " # " in line}
    assert comments["epochs: 12"] == "passes over the training part, >= 1"
    assert comments["train:"] == "training settings"
    assert comments["- name: flip"].startswith("Flip each scan along each chosen spatial axis")
    assert comments["axes: [0, 1]"] == (
        "spatial axes that may be flipped, each 0 (W), 1 (H) or 2 (D)")
    assert comments["bn_momentum: 0.5"].startswith("momentum of the BatchNormalization")
    assert "{" not in text and len(comments) > 50



def test_compare_prints_the_paired_difference_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    a = fake_run(tmp_path / "base", "kfold", folds=4, repeats=2)
    b = fake_run(tmp_path / "better", "kfold", folds=4, repeats=2, skill=0.6)
    out = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--n-boot", "300", "--seed", "2",
                 "--out", str(out)]) == 0
    expected = compare_runs(a, b, n_boot=300, seed=2)
    assert json.loads(out.read_text()) == expected
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["A: base (scenario fake-kfold)", "B: better (scenario fake-kfold)",
                         "paired on 16 scans, 2 repeat(s), 300 bootstrap resamples of the scans"]
    auc = lines[4].split()
    assert auc[:4] == ["auc", f"{expected['auc_a']:.4f}", f"{expected['auc_b']:.4f}",
                       f"{expected['difference']:+.4f}"]
    assert auc[-1] == f"{expected['p_value']:.4f}" and lines[5].startswith("accuracy")
    assert lines[-1] == f"written: {out}"


def test_compare_refuses_runs_of_another_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    a = fake_run(tmp_path / "a", "kfold", folds=4, repeats=2)
    b = fake_run(tmp_path / "b", "kfold", folds=5)
    assert main(["compare", str(a), str(b)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"ct3d: error: {a} and {b} are not paired: scan "
                            f"/data/CT-0/scan16.nii.gz (repeat 0) is not tested in {a}\n")
