"""Report figures: what each one draws, read back from its Matplotlib artists (fake runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fake_runs import BINARY, GRADES, THREE, fake_run, fake_runs, history
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ct3d import report
from ct3d.paired import compare_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, report.Run]:
    return fake_runs(tmp_path_factory.mktemp("runs"))


def _tick_labels(fig: Figure, ax_index: int, axis: str = "x") -> list[str]:
    """The tick labels Matplotlib draws within the axes' view (the figure is rendered first)."""
    FigureCanvasAgg(fig).draw()
    ax = getattr(fig.axes[ax_index], f"{axis}axis")
    lo, hi = sorted(ax.get_view_interval())
    return [t.get_text() for t in ax.get_ticklabels()
            if t.get_text() and lo <= t.get_position()[axis == "y"] <= hi]


def _integers(labels: list[str]) -> bool:
    return bool(labels) and all(t.replace("\N{MINUS SIGN}", "-").lstrip("-").isdigit()
                                for t in labels)


def test_curves_plot_train_solid_and_val_dashed_by_epoch(runs: dict[str, report.Run]) -> None:
    h = runs["holdout"].histories[0]
    fig = report.curves_figure(runs["holdout"].histories)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "auc"]
    train, val = fig.axes[0].lines
    assert (train.get_label(), val.get_label()) == ("train", "val")
    assert (train.get_linestyle(), val.get_linestyle()) == ("-", "--")
    assert list(train.get_xdata()) == h["epoch"] == [1, 2, 3]
    assert list(train.get_ydata()) == h["loss"] and list(val.get_ydata()) == h["val_loss"]
    assert fig.axes[1].get_xlabel() == "epoch"
    labels = _tick_labels(fig, 0)
    assert _integers(labels) and {"1", "2", "3"} <= set(labels)


def test_curves_of_every_fold(runs: dict[str, report.Run]) -> None:
    histories = runs["kfold"].histories
    fig = report.curves_figure(histories, metrics=("accuracy",))
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == [
        f"fold {i} {s}" for i in range(3) for s in ("train", "val")]
    assert [list(line.get_xdata()) for line in lines[::2]] == [[1, 2], [1, 2, 3], [1, 2, 3, 4]]
    assert list(lines[5].get_ydata()) == histories[2]["val_accuracy"]
    assert lines[2].get_color() == lines[3].get_color() != lines[0].get_color()
    assert _integers(_tick_labels(fig, 0))


def test_curves_keep_to_the_metrics_logged() -> None:
    fig = report.curves_figure({"epoch": [1], "loss": [0.5], "val_loss": [0.6]}, epochs=5)
    assert [ax.get_title() for ax in fig.axes] == ["loss"]
    assert fig.axes[0].get_xlim() == (0.5, 5.5)
    assert _tick_labels(fig, 0) == ["1", "2", "3", "4", "5"]
    one = report.curves_figure({"epoch": [1], "loss": [0.5], "val_loss": [0.6]}, epochs=1)
    assert _tick_labels(one, 0) == ["1"]  # one epoch so far: still no 0.5, 0.6, ... ticks


def test_timing_bars_are_the_epoch_times(runs: dict[str, report.Run]) -> None:
    h = runs["holdout"].histories[0]
    fig = report.timing_figure(h)
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == h["time_s"]
    assert [b.get_x() + b.get_width() / 2 for b in bars] == pytest.approx([1, 2, 3])
    assert fig.axes[0].get_ylabel() == "seconds" and _integers(_tick_labels(fig, 0))
    folds = report.timing_figure(runs["kfold"].histories)
    assert len(folds.axes[0].patches) == 2 + 3 + 4
    assert [t.get_text() for t in folds.axes[0].get_legend().get_texts()] == [
        "fold 0", "fold 1", "fold 2"]
    first = folds.axes[0].patches[0]
    assert first.get_x() + first.get_width() / 2 == pytest.approx(1 - 0.8 / 3)


def test_confusion_figure_counts_shares_and_class_names(runs: dict[str, report.Run]) -> None:
    m = runs["multiclass"].metrics
    fig = report.confusion_figure(report.confusion_matrices(m), THREE)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["train: counts", "train: row-normalized",
                                                  "test: counts", "test: row-normalized"]
    counts, shares = (np.asarray(ax.images[0].get_array()) for ax in fig.axes[2:])
    assert counts.tolist() == m["confusion_matrix"]
    assert counts.sum(axis=1).tolist() == [m["per_class"][c]["support"] for c in THREE]
    assert shares.sum(axis=1) == pytest.approx(1.0)
    assert _tick_labels(fig, 2, "y") == THREE and _tick_labels(fig, 3, "x") == THREE
    assert [t.get_text() for t in fig.axes[2].texts] == [
        str(v) for row in m["confusion_matrix"] for v in row]
    assert fig.axes[3].texts[0].get_text() == f"{shares[0, 0]:.2f}"
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("predicted", "true")


def test_roc_figure_draws_the_stored_curve(runs: dict[str, report.Run]) -> None:
    m = runs["holdout"].metrics
    fig = report.roc_figure(m)
    curve, chance = fig.axes[0].lines
    assert list(curve.get_xdata()) == m["roc"]["fpr"]
    assert list(curve.get_ydata()) == m["roc"]["tpr"]
    lo, hi = m["ci"]["auc"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"AUC {m['auc']:.4f} [{lo:.4f}, {hi:.4f}]", "chance"]
    assert fig.axes[0].get_title() == "ROC, test (n = 8)"
    assert list(chance.get_xdata()) == [0, 1]
    no_roc = report.roc_figure(runs["multiclass"].metrics)
    assert not no_roc.axes and no_roc.texts[0].get_text().startswith("No ROC curve")


def test_roc_figure_of_repeated_kfold_names_repeat_0_and_the_mean(tmp_path: Path) -> None:
    m = report.read_run(fake_run(tmp_path, "kfold", folds=3, repeats=2)).metrics
    fig = report.roc_figure(m)
    assert list(fig.axes[0].lines[0].get_xdata()) == m["roc"]["fpr"]
    lo, hi = m["ci"]["auc"]
    legend = fig.axes[0].get_legend().get_texts()[0].get_text()
    assert legend == (f"repeat 0, AUC {m['repeats'][0]['auc']:.4f}\nmean of 2 repeats: "
                      f"AUC {m['auc']:.4f} [{lo:.4f}, {hi:.4f}]")
    assert m["repeats"][0]["auc"] != m["auc"]


def test_calibration_figure_bins_counts_and_brier(runs: dict[str, report.Run]) -> None:
    m = runs["holdout"].metrics
    cal = m["calibration"]
    fig = report.calibration_figure(m)
    reliability, counts = fig.axes
    heights = [b.get_height() for b in reliability.patches]
    observed = [np.nan if v is None else v for v in cal["observed"]]
    np.testing.assert_array_equal(heights, observed)
    assert 0 in cal["count"] and any(v is None for v in cal["observed"])   # an empty bin
    assert [b.get_height() for b in counts.patches] == cal["count"]
    assert [b.get_x() for b in counts.patches] == pytest.approx(cal["edges"][:-1])
    points = reliability.lines[0]
    np.testing.assert_array_equal(points.get_xdata(), [np.nan if v is None else v
                                                       for v in cal["mean_predicted"]])
    assert reliability.get_title().endswith(f"Brier score {cal['brier']:.4f}")
    assert reliability.get_title().startswith("calibration, test (n = 8)")
    assert _integers(_tick_labels(fig, 1, "y"))
    assert report.calibration_figure(runs["multiclass"].metrics).texts[0].get_text().startswith(
        "No calibration")


def _scan(depth: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1000, 400, (6, 5, depth))


def test_samples_show_the_middle_slice_of_each_scan() -> None:
    scans = [_scan(7, 0), _scan(4, 1), _scan(5, 2)]
    fig = report.samples_figure(scans, ["CT-0\na.nii", "CT-23\nb.nii", "CT-23\nc.nii"])
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["CT-0\na.nii", "CT-23\nb.nii", "CT-23\nc.nii"]
    for ax, scan in zip(fig.axes, scans, strict=True):
        image = ax.images[0]
        np.testing.assert_array_equal(image.get_array(), np.rot90(scan[:, :, scan.shape[2] // 2]))
        assert image.get_clim() == (-1000.0, 400.0)
    assert not report.samples_figure([], []).axes


def test_gradcam_panels_show_the_hottest_slice_with_the_map_over_it() -> None:
    scans, heats = [_scan(6, 0), _scan(6, 1)], [np.zeros((6, 5, 6)), np.zeros((6, 5, 6))]
    heats[0][2:4, 1:3, 4] = [[0.9, 0.1], [0.5, 1.0]]
    heats[1][:, :, 1] = 0.3
    heats[1][0, 0, 5] = 1.0                      # hotter voxel, smaller slice sum
    fig = report.gradcam_figure(scans, heats, [f"{BINARY[1]}, p = 0.90", f"{BINARY[0]}, p = 0.20"])
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["CT-23, p = 0.90\nslice 4",
                                                  "CT-0, p = 0.20\nslice 1"]
    grey, overlay = fig.axes[0].images
    np.testing.assert_array_equal(grey.get_array(), np.rot90(scans[0][:, :, 4]))
    shown = overlay.get_array()
    assert shown.count() == 3 and sorted(shown.compressed().tolist()) == [0.5, 0.9, 1.0]
    assert overlay.get_clim() == (0, 1)
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), np.rot90(scans[1][:, :, 1]))
    assert report.gradcam_figure([], [], []).texts[0].get_text() == "No held-out scans to explain."


def test_save_figure_writes_a_png(tmp_path: Path, runs: dict[str, report.Run]) -> None:
    figure = report.curves_figure(runs["holdout"].histories)
    path = report.save_figure(figure, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png" and path.read_bytes()[:4] == b"\x89PNG"


def test_history_helper_matches_the_file(runs: dict[str, report.Run]) -> None:
    assert runs["kfold"].histories[1] == history(3, 1)


# -- a grid's figures --------------------------------------------------------------------
@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> report.GridReports:
    """Reports of the ct3d grid: two binary k-fold runs (one repeated), a holdout and a
    5-class run."""
    root = tmp_path_factory.mktemp("grid")
    fake_run(root / "ct23-ct3d-recipe", "kfold", folds=4, repeats=2, skill=0.6)
    fake_run(root / "ct23-thesis-recipe", "kfold", folds=4, repeats=2, skill=0.1)
    fake_run(root / "ct1-ct3d-recipe", "holdout")
    fake_run(root / "grades-ct3d-recipe", "multiclass", classes=GRADES)
    return report.read_reports(root, "ct3d")


def _vertical_lines(ax: Axes) -> list[float]:
    return [line.get_xdata()[0] for line in ax.lines
            if len(set(line.get_xdata())) == 1 and line.get_linestyle() == ":"]


def test_forest_figure_has_a_row_per_scenario_with_its_auc_and_interval(
    grid: report.GridReports,
) -> None:
    fig = report.forest_figure(grid)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert [label.split("\n")[0] for label in labels] == grid.names == [
        "ct23-ct3d-recipe", "ct23-thesis-recipe", "ct1-ct3d-recipe", "grades-ct3d-recipe"]
    m = grid.metrics
    assert labels[0] == f"ct23-ct3d-recipe\nn = {m['ct23-ct3d-recipe']['n']}, mean of 2 repeats"
    assert labels[2] == "ct1-ct3d-recipe\nn = 8"
    assert labels[3] == "grades-ct3d-recipe\nn = 6, macro AUC"
    assert list(ax.get_yticks()) == [0, 1, 2, 3] and ax.get_ylim() == (3.5, -0.5)  # top down
    assert _vertical_lines(ax) == [0.5]
    bars = [seg.tolist() for seg in ax.collections[0].get_segments()]
    intervals = [m[n]["ci"]["auc"] for n in grid.names[:3]]          # the 5-class: none
    assert bars == [[[lo, y], [hi, y]] for y, (lo, hi) in enumerate(intervals)]
    points = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines
              if line.get_marker() in ("o", "s")]
    assert points == [(m["ct23-ct3d-recipe"]["auc"], 0), (m["ct23-thesis-recipe"]["auc"], 1),
                      (m["ct1-ct3d-recipe"]["auc"], 2), (m["grades-ct3d-recipe"]["macro_auc"], 3)]
    lo, hi = m["ct1-ct3d-recipe"]["ci"]["auc"]
    assert f"{m['ct1-ct3d-recipe']['auc']:.3f} [{lo:.3f}, {hi:.3f}]" in [t.get_text()
                                                                         for t in ax.texts]
    low = min(0.4, *(m[n]["ci"]["auc"][0] - 0.02 for n in grid.names[:3]))
    assert ax.get_xlim() == pytest.approx((low, 1.0))


def test_forest_figure_of_plain_metrics_and_of_nothing() -> None:
    low = {"n": 10, "auc": 0.3, "ci": {"auc": [0.1, 0.5]}}
    fig = report.forest_figure({"a": low, "b": {"n": 4, "auc": None, "ci": None}})
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == pytest.approx(0.08) and len(ax.get_yticks()) == 2
    assert "no AUC" in ax.texts[-1].get_text()
    empty = report.forest_figure({})
    assert not empty.axes and empty.texts[0].get_text().startswith("No scenario report")


def test_roc_overlay_draws_every_binary_curve_and_names_the_others(
    grid: report.GridReports,
) -> None:
    fig = report.roc_overlay_figure(grid)
    ax = fig.axes[0]
    *curves, chance = ax.lines
    binary = grid.names[:3]
    assert len(curves) == 3 and len({c.get_color() for c in curves}) == 3
    for curve, name in zip(curves, binary, strict=True):
        assert list(curve.get_xdata()) == grid.metrics[name]["roc"]["fpr"]
        assert list(curve.get_ydata()) == grid.metrics[name]["roc"]["tpr"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    auc = grid.metrics["ct23-ct3d-recipe"]["auc"]
    assert legend[0] == f"ct23-ct3d-recipe: AUC {auc:.3f} (mean of 2 repeats; curve: repeat 0)"
    assert legend[2] == f"ct1-ct3d-recipe: AUC {grid.metrics['ct1-ct3d-recipe']['auc']:.3f}"
    assert legend[3] == "chance" and list(chance.get_xdata()) == [0, 1]
    assert ax.get_title().endswith("not shown (multi-class or no curve): grades-ct3d-recipe")
    only_multi = report.roc_overlay_figure({"g": grid.metrics["grades-ct3d-recipe"]})
    assert not only_multi.axes and only_multi.texts[0].get_text().startswith("No ROC curves")


def test_paired_figure_draws_each_difference_with_its_interval(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "base", "kfold", folds=4, skill=0.2)
    better = fake_run(tmp_path / "better", "kfold", folds=4, skill=0.6)
    worse = fake_run(tmp_path / "worse", "kfold", folds=4, skill=0.0)
    done = [compare_runs(a, b, n_boot=300) for b in (better, worse)]
    skipped = {"runs": {"a": {"folder": "base"}, "b": {"folder": "gone"}}, "skipped": "no report"}
    fig = report.paired_figure([*done, skipped])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"better vs base (p = {done[0]['p_value']:.3f})",
                      f"worse vs base (p = {done[1]['p_value']:.3f})"]
    assert [seg.tolist() for seg in ax.collections[0].get_segments()] == [
        [[c["ci"][0], y], [c["ci"][1], y]] for y, c in enumerate(done)]
    points = [line.get_xdata()[0] for line in ax.lines if line.get_marker() == "o"]
    assert points == [c["difference"] for c in done] and points[0] > 0 > points[1]
    assert _vertical_lines(ax) == [0]
    lo, hi = ax.get_xlim()
    assert lo == -hi and hi >= max(abs(v) for c in done for v in c["ci"])
    assert ax.get_title().endswith("skipped (see the table): gone vs base")
    assert report.paired_figure([skipped]).texts[0].get_text() == (
        "No paired comparison to show (skipped: gone vs base).")


def test_curve_figure_draws_each_series_with_its_intervals_and_skips_missing_reports() -> None:
    def run(auc: float, low: float, high: float) -> dict:
        return {"auc": auc, "ci": {"auc": [low, high]}}

    runs = {"s20": run(0.6, 0.5, 0.7), "s50": run(0.7, 0.65, 0.8), "p20": run(0.75, 0.6, 0.85)}
    series = {"scratch": {20: "s20", 50: "s50"}, "pretrained": {20: "p20", 50: "p50"}}
    fig = report.curve_figure(runs, series, "labeled scans per class")
    ax = fig.axes[0]
    scratch, pretrained = ax.containers                       # one errorbar container each
    assert scratch.lines[0].get_ydata().tolist() == [0.6, 0.7]
    assert pretrained.lines[0].get_ydata().tolist() == [0.75]            # p50: no report
    xs = scratch.lines[0].get_xdata().tolist()
    assert xs[0] < 20 < pretrained.lines[0].get_xdata()[0]          # drawn a little apart
    bars = scratch.lines[2][0].get_segments()
    assert [(seg[0][1], seg[1][1]) for seg in bars] == [(0.5, 0.7), (0.65, 0.8)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["scratch", "pretrained"]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == [
        "20", "50"]
    empty = report.curve_figure({}, series, "labeled scans per class")
    assert empty.texts[0].get_text() == "No report of the curve's scenarios yet."
