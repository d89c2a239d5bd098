"""End to end: scenario -> run folder, determinism, and learning on an easy cohort."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import ct3d
from ct3d.data.dataset import DatasetError
from ct3d.data.sources import ensure_synthetic, synthetic_folder
from ct3d.engine import run
from ct3d.evaluate import METRIC_KEYS
from ct3d.scenario import Scenario


def _metrics(run_dir: Path) -> dict:
    """metrics.json without what is measured (time per epoch, peak memory): all a re-run in
    the same process may change."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics.pop("time_per_epoch_s") > 0 and metrics.pop("peak_rss_gib") > 0
    return metrics


@pytest.mark.slow
def test_run_folder_and_same_seed_same_result(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    first = ct3d.run(make_scenario(cohort_root, tmp_path / "a", **{"train.tensorboard": True}),
                     verbose=0)
    files = sorted(p.name for p in first.run_dir.iterdir())
    assert files == ["MODEL_CARD.md", "history.csv", "metrics.json", "model.keras",
                     "predictions.csv", "scenario.yaml", "split.csv", "state", "tensorboard"]
    _check_tensorboard(first.run_dir)
    m = _metrics(first.run_dir)
    assert set(METRIC_KEYS) | {"confusion_matrix", "n"} <= set(m)
    assert m["evaluated_on"] == "test" and m["n"] == 4
    assert sum(map(sum, m["confusion_matrix"])) == 4
    assert {p: v["n"] for p, v in m["parts"].items()} == {"train": 8, "val": 4, "test": 4}
    with (first.run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and float(rows[0]["time_s"]) > 0
    assert keras.models.load_model(first.run_dir / "model.keras").name == "modified_3dcnn"

    second = run(make_scenario(cohort_root, tmp_path / "b"), verbose=0)  # the engine alone
    assert not (second.run_dir / "tensorboard").exists()  # train.tensorboard: false
    assert not (second.run_dir / "MODEL_CARD.md").exists()
    assert (first.run_dir / "split.csv").read_text() == (second.run_dir / "split.csv").read_text()
    assert _metrics(second.run_dir) == m
    other = run(make_scenario(cohort_root, tmp_path / "c", seed=1), verbose=0)
    assert (other.run_dir / "split.csv").read_text() != (first.run_dir / "split.csv").read_text()


def test_synthetic_cohorts_get_their_own_folders_and_partial_ones_are_redone(
    tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    root = tmp_path / "data"
    params = {"normal": 2, "abnormal": 2, "preset": "quick", "difficulty": "easy", "seed": 0}
    partial = synthetic_folder(root, params).with_name("quick-easy-2n-2a-seed0.partial")
    partial.mkdir(parents=True)
    (partial / "half-written.nii.gz").write_text("killed mid-way")
    folder = ensure_synthetic(root, params, progress=False)
    assert folder == root / "quick-easy-2n-2a-seed0" and not partial.exists()
    assert len(list(folder.glob("CT-*/study_????.nii.gz"))) == 4
    mtime = (folder / "cohort.json").stat().st_mtime_ns
    assert ensure_synthetic(root, params, progress=False) == folder
    assert (folder / "cohort.json").stat().st_mtime_ns == mtime
    other = ensure_synthetic(root, {**params, "normal": 3}, progress=False)
    assert other.name == "quick-easy-3n-2a-seed0" and folder.exists()
    foreign = synthetic_folder(root, {**params, "seed": 9})
    foreign.mkdir()
    with pytest.raises(DatasetError, match="quick-easy-2n-2a-seed9: exists but is not"):
        ensure_synthetic(root, {**params, "seed": 9}, progress=False)


def _events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def _check_tensorboard(run_dir: Path) -> None:
    """The run's TensorBoard logs, read back with TensorBoard's own event reader: the epoch
    curves (the history's values), and the summary's metrics, images, text and HParams."""
    with (run_dir / "history.csv").open() as f:
        history = list(csv.DictReader(f))
    train, val = (_events(run_dir / "tensorboard" / side) for side in ("train", "validation"))
    assert {"epoch_loss", "epoch_auc", "epoch_learning_rate", "epoch_time_s"} <= set(
        train.Tags()["tensors"])
    for events, key in ((train, "loss"), (val, "val_loss"), (train, "learning_rate")):
        tag = "epoch_" + key.removeprefix("val_")
        points = [(e.step, float(tf.make_ndarray(e.tensor_proto)))
                  for e in events.Tensors(tag)]
        assert points == [(int(r["epoch"]), pytest.approx(float(r[key]), rel=1e-6))
                          for r in history], key
    summary = _events(run_dir / "tensorboard" / "summary")
    metrics = _metrics(run_dir)
    [auc] = summary.Tensors("test/auc")
    assert float(tf.make_ndarray(auc.tensor_proto)) == pytest.approx(metrics["auc"], rel=1e-6)
    for image in ("confusion_matrix", "gradcam_held_out"):
        [event] = summary.Tensors(image)
        width, height, png = tf.make_ndarray(event.tensor_proto)
        assert png.startswith(b"\x89PNG") and int(width) > 100 and int(height) > 100, image
    [text] = summary.Tensors("scenario")
    assert b"modified_3dcnn" in tf.make_ndarray(text.tensor_proto).item()
    start = summary.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    session = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info
    assert session.hparams["model"].string_value == "modified_3dcnn"
    assert session.hparams["train.batch_size"].number_value == 4
    assert session.group_name == run_dir.name


@pytest.mark.slow
def test_quick_preset_learns_its_easy_cohort(tmp_path: Path) -> None:
    s = Scenario.preset("quick").with_overrides({"data.root": str(tmp_path / "data"),
                                                 "data.cache": str(tmp_path / "cache"),
                                                 "out": str(tmp_path / "run")})
    m = run(s, verbose=0).metrics
    assert m["n"] == 18
    assert m["auc"] >= 0.75, m
