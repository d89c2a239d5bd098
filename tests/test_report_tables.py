"""Report tables: DataFrames of a run and of a grid, their HTML, and the plain-text table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from fake_runs import BINARY, GRADES, THREE, fake_run, fake_runs

from ct3d.evaluate import METRIC_KEYS, MULTICLASS_KEYS, binary_metrics, multiclass_metrics
from ct3d.grids import GRIDS
from ct3d.paired import compare_runs
from ct3d.report import (
    GridReports,
    Run,
    confusion_matrices,
    confusion_table,
    describe_evaluation,
    fold_spread_table,
    format_table,
    held_out_table,
    metrics_table,
    paired_table,
    read_reports,
    read_run,
    report_links,
    split_counts,
    thesis_table,
    to_html,
    verdict,
)
from ct3d.report.compare import part_value
from ct3d.report.text import AUC_NOTE


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    return fake_runs(tmp_path_factory.mktemp("runs"))


# -- one run ---------------------------------------------------------------------------------
def test_split_counts_per_class_and_part(runs: dict[str, Run]) -> None:
    run = runs["holdout"]
    table = split_counts(run.split, run.classes)
    assert table.index.tolist() == ["train", "val", "test"] and table.index.name == "part"
    assert table.columns.tolist() == [*BINARY, "total", "skipped"]
    assert table.loc["train"].tolist() == [4, 4, 8, 1]         # the broken CT-23 scan skipped
    assert table.loc["test"].tolist() == [4, 4, 8, 0]
    assert table["total"].sum() == (run.split["skipped"] == "").sum()


def test_split_counts_of_every_fold(runs: dict[str, Run]) -> None:
    run = runs["kfold"]
    table = split_counts(run.split, run.classes)
    assert table.index.tolist()[:4] == ["fold0 train", "fold0 val", "fold0 test", "fold1 train"]
    assert len(table) == 9
    for i in range(3):
        assert table.loc[f"fold{i} test"].tolist() == [2, 2, 4, 0]
        assert table.loc[f"fold{i} train", "skipped"] == 1
        assert table.loc[[f"fold{i} {p}" for p in ("train", "val", "test")], "total"].sum() == 12


def test_metrics_table_of_a_holdout_run(runs: dict[str, Run]) -> None:
    m = runs["holdout"].metrics
    table = metrics_table(m)
    assert table.index.tolist() == ["n", *METRIC_KEYS]
    assert table.columns.tolist() == ["train", "val", "test", "95% CI (test)"]
    for part in ("train", "val", "test"):
        assert table.loc["n", part] == m["parts"][part]["n"]
        for key in METRIC_KEYS:
            assert table.loc[key, part] == m["parts"][part][key], (part, key)
    ci = table["95% CI (test)"]
    assert ci["accuracy"] == tuple(m["ci"]["accuracy"]) and ci["auc"] == tuple(m["ci"]["auc"])
    assert ci["recall"] == tuple(m["ci"]["sensitivity"])
    assert ci["n"] is None and ci["precision"] is None and ci["loss"] is None
    assert table.loc["accuracy", "test"] == 0.75 and table.loc["n", "test"] == 8


def test_metrics_table_of_a_kfold_run_and_its_fold_spread(runs: dict[str, Run]) -> None:
    m = runs["kfold"].metrics
    table = metrics_table(m)
    assert table.columns.tolist() == ["fold 0 test", "fold 1 test", "fold 2 test",
                                      "out of fold", "95% CI (out-of-fold)"]
    assert table.loc["n"].tolist()[:4] == [4, 4, 4, 12]
    assert table.loc["auc", "fold 1 test"] == m["folds"][1]["auc"]
    assert table.loc["f1", "out of fold"] == m["f1"]
    assert table.loc["auc", "95% CI (out-of-fold)"] == tuple(m["ci"]["auc"])
    spread = fold_spread_table(m)
    assert spread.index.tolist() == list(METRIC_KEYS)
    assert spread.loc["accuracy"].tolist() == m["fold_mean_std"]["accuracy"]
    mean = np.mean([f["accuracy"] for f in m["folds"]])
    assert spread.loc["accuracy", "fold mean"] == pytest.approx(mean)


def test_a_repeated_kfold_run_says_what_is_averaged_and_what_is_repeat_0(
    tmp_path: Path,
) -> None:
    m = read_run(fake_run(tmp_path, "kfold", folds=3, repeats=2)).metrics
    table = metrics_table(m)
    assert table.columns.tolist()[-2:] == ["out of fold (mean of 2 repeats)",
                                           "95% CI (out-of-fold)"]
    assert len(table.columns) == 6 + 2
    assert table.loc["auc", "out of fold (mean of 2 repeats)"] == pytest.approx(
        np.mean([r["auc"] for r in m["repeats"]]))
    assert list(confusion_matrices(m)) == ["train (summed over folds)",
                                           "test (out of fold, repeat 0)"]
    assert describe_evaluation(m) == (
        "evaluated on: out-of-fold (n = 12), decision threshold 0.500, 6 model(s); mean of 2 "
        "repeats (nested values such as the confusion matrix: repeat 0)")


def test_paired_table_of_comparisons(tmp_path: Path) -> None:
    fake = {"runs": {"a": {"scenario": "s", "folder": "base"},
                     "b": {"scenario": "s", "folder": "crop"}},
            "auc_a": 0.7, "auc_b": 0.8, "difference": 0.1, "ci": [0.02, 0.18], "p_value": 0.01}
    table = paired_table([fake, {**fake, "runs": {"a": fake["runs"]["b"],
                                                  "b": fake["runs"]["a"]}}])
    assert table.columns.tolist() == ["AUC A", "AUC B", "ΔAUC", "95% CI", "p"]
    assert table.index.tolist() == ["crop vs base", "base vs crop"]
    assert table.loc["crop vs base"].tolist() == [0.7, 0.8, 0.1, (0.02, 0.18), 0.01]
    assert "<td>[0.0200, 0.1800]</td>" in to_html(table)
    assert paired_table([]).empty
    a = fake_run(tmp_path / "a", "kfold", folds=4, repeats=2)
    b = fake_run(tmp_path / "b", "kfold", folds=4, repeats=2, skill=0.6)
    c = compare_runs(a, b, n_boot=200)
    row = paired_table([c]).loc["b vs a"]
    assert row.tolist() == [c["auc_a"], c["auc_b"], c["difference"], tuple(c["ci"]),
                            c["p_value"]]
    assert row["AUC B"] > row["AUC A"]


def test_holdout_runs_have_no_fold_spread(runs: dict[str, Run]) -> None:
    spread = fold_spread_table(runs["holdout"].metrics)
    assert spread.empty and to_html(spread) == ""


def test_metrics_table_of_a_multiclass_run(runs: dict[str, Run]) -> None:
    m = runs["multiclass"].metrics
    table = metrics_table(m)
    assert table.index.tolist() == ["n", *MULTICLASS_KEYS]
    assert table.loc["macro_f1", "test"] == m["macro_f1"]
    assert table["95% CI (test)"].isna().all()


def test_a_five_class_run_shows_its_grades_macro_auc_and_kappa(tmp_path: Path) -> None:
    run = read_run(fake_run(tmp_path, "multiclass", classes=GRADES))
    m = run.metrics
    assert run.classes == GRADES and m["class_names"] == GRADES
    table = metrics_table(m)
    for key in ("macro_auc", "quadratic_kappa"):
        assert table.loc[key, "test"] == m[key] is not None
        assert table.loc[key, "train"] == m["parts"]["train"][key]
    assert f"<td>{m['quadratic_kappa']:.4f}</td>" in to_html(table)
    matrices = confusion_matrices(m)
    assert list(matrices) == ["train", "test"]
    counts = confusion_table(matrices["test"], run.classes)
    assert counts.index.tolist() == counts.columns.tolist() == GRADES
    assert counts.to_numpy().tolist() == m["confusion_matrix"] and counts.shape == (5, 5)
    assert counts.to_numpy().sum() == m["n"] == 6
    assert confusion_table(matrices["train"], run.classes).to_numpy().sum() == 12


def test_confusion_tables_carry_class_names_and_counts(runs: dict[str, Run]) -> None:
    m = runs["multiclass"].metrics
    counts = confusion_table(m["confusion_matrix"], m["class_names"])
    assert counts.index.tolist() == THREE and counts.columns.tolist() == THREE
    assert (counts.index.name, counts.columns.name) == ("true", "predicted")
    assert counts.to_numpy().tolist() == m["confusion_matrix"]
    assert counts.sum(axis=1).tolist() == [m["per_class"][c]["support"] for c in THREE]
    shares = confusion_table(m["confusion_matrix"], m["class_names"], normalize=True)
    assert shares.sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert shares.loc["normal", "other"] == pytest.approx(
        counts.loc["normal", "other"] / counts.loc["normal"].sum())
    empty = confusion_table([[0, 0], [1, 3]], BINARY, normalize=True)
    assert empty.to_numpy().tolist() == [[0.0, 0.0], [0.25, 0.75]]


def test_confusion_matrices_of_holdout_and_kfold_runs(runs: dict[str, Run]) -> None:
    m = runs["holdout"].metrics
    assert confusion_matrices(m) == {"train": m["parts"]["train"]["confusion_matrix"],
                                     "test": m["confusion_matrix"]}
    k = runs["kfold"].metrics
    matrices = confusion_matrices(k)
    assert list(matrices) == ["train (summed over folds)", "test (out of fold)"]
    assert np.sum(matrices["train (summed over folds)"]) == sum(
        f["parts"]["train"]["n"] for f in k["folds"])
    assert matrices["test (out of fold)"] == k["confusion_matrix"]
    assert confusion_matrices({"confusion_matrix": [[1]]}) == {"evaluated": [[1]]}


# -- HTML ------------------------------------------------------------------------------------
def test_html_of_the_metrics_table(runs: dict[str, Run]) -> None:
    m = runs["holdout"].metrics
    html = to_html(metrics_table(m))
    for part, values in m["parts"].items():
        for key in METRIC_KEYS:
            assert f"<td>{values[key]:.4f}</td>" in html, (part, key)
        assert f"<td>{values['n']}</td>" in html
    lo, hi = m["ci"]["accuracy"]
    assert f"<td>[{lo:.4f}, {hi:.4f}]</td>" in html
    assert "<th>metric</th>" in html and "<th>95% CI (test)</th>" in html
    assert html.count("<td>–</td>") == 4               # n, precision, mse and loss: no interval


def test_html_escapes_labels_and_cells_and_takes_formats() -> None:
    table = confusion_table([[1, 2], [3, 4]], ["<a>", "b&c"])
    html = to_html(table)
    assert "<th>&lt;a&gt;</th>" in html and "<th>b&amp;c</th>" in html and "<a>" not in html
    assert "<th>true / predicted</th>" in html and "<td>4</td>" in html
    shares = to_html(confusion_table([[1, 3], [0, 0]], BINARY, normalize=True),
                     formats={"CT-23": ".1%"})
    assert "<td>0.2500</td>" in shares and "<td>75.0%</td>" in shares


def test_format_table_is_the_plain_text_metrics_table(runs: dict[str, Run]) -> None:
    m = runs["holdout"].metrics
    lines = format_table(m["parts"], m["classes"]).splitlines()
    assert lines[0].split() == ["part", "n", *METRIC_KEYS]
    assert lines[3].split() == ["test", "8", *(f"{m[k]:.4f}" for k in METRIC_KEYS)]
    assert lines[4] == AUC_NOTE
    assert lines[-4:] == ["test confusion matrix (rows: true class, columns: predicted)",
                          "              CT-0   CT-23",
                          "  CT-0           4       0",
                          "  CT-23          2       2"]
    assert "  0              4       0" in format_table(m["parts"])
    oof = format_table({"out-of-fold": runs["kfold"].metrics}).splitlines()
    assert oof[0].split()[:2] == ["part", "n"] and oof[1].startswith("out-of-fold ")
    assert len(oof[0]) == len(oof[1])  # the longer part name keeps the columns aligned
    assert describe_evaluation(m) == "evaluated on: test (n = 8), decision threshold 0.500, " \
                                     "1 model(s)"
    k = runs["kfold"].metrics
    assert describe_evaluation(k).startswith("evaluated on: out-of-fold (n = 12)")
    assert describe_evaluation(k).endswith(", 3 model(s)")


def test_the_verdict_line_reads_the_evaluated_part_and_its_interval(
    runs: dict[str, Run],
) -> None:
    m = runs["holdout"].metrics
    low, high = m["ci"]["auc"]
    assert verdict(m) == (f"AUC {m['auc']:.2f} [{low:.2f}–{high:.2f}] on 8 held-out test "
                          f"scans: " + ("better than chance" if low > 0.5 else
                                        "not distinguishable from chance") + ".")
    k = runs["kfold"].metrics
    assert verdict(k, synthetic=True).startswith(f"AUC {k['auc']:.2f}")
    assert " on 12 scans predicted out of fold of synthetic data (not MosMedData)" in verdict(
        k, synthetic=True)
    worse = {"evaluated_on": "test", "n": 30, "auc": 0.2, "ci": {"auc": [0.1, 0.4]}}
    assert verdict(worse).endswith(": worse than chance.")
    assert verdict({**worse, "ci": None}) == ("AUC 0.20 on 30 held-out test scans (no "
                                              "interval: too few scans).")
    assert verdict({**worse, "auc": None}) == "accuracy undefined on 30 held-out test scans."
    three = {"evaluated_on": "val", "n": 10, "auc": None, "accuracy": 0.9,
             "ci": {"accuracy": [0.7, 1.0]}, "confusion_matrix": [[5, 0, 0], [0, 3, 0], [1, 0, 1]]}
    assert verdict(three) == ("accuracy 0.90 [0.70–1.00] on 10 validation scans (no test "
                              "part): better than always answering the most common class "
                              "(0.50).")


def test_single_class_has_no_auc_and_table_shows_dash() -> None:
    m = binary_metrics([1, 1, 1], [0.2, 0.6, 0.9])
    assert m["auc"] is None and m["confusion_matrix"] == [[0, 0], [1, 2]]
    table = format_table({"test": m})
    assert table.endswith("  0              0       0\n  1              1       2")
    assert table.splitlines()[1].split()[7] == "-"


# Three classes; true -> predicted: 0->0, 0->0, 0->1, 1->1, 1->1, 1->2, 2->2, 2->2, 2->0, 2->2.
Y3 = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
P3 = [
    [0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3],
    [0.1, 0.4, 0.5], [0.1, 0.1, 0.8], [0.2, 0.3, 0.5], [0.5, 0.1, 0.4], [0.3, 0.2, 0.5],
]


def test_format_table_shows_multiclass_parts() -> None:
    parts = {"val": binary_metrics([0, 1], [0.2, 0.9]), "test": multiclass_metrics(Y3, P3)}
    lines = format_table(parts, ["no", "yes"]).splitlines()
    assert lines[0].split() == ["part", "n", *METRIC_KEYS]
    assert lines[2] == AUC_NOTE
    assert lines[3].split() == ["part", "n", "accuracy", "macro_f1", "macro_auc",
                                "quadratic_kappa"]
    assert lines[4].split()[:4] == ["test", "10", "0.7000", f"{25 / 36:.4f}"]
    assert lines[4].split()[-1] == f"{13 / 23:.4f}"
    assert lines[5:9] == ["val confusion matrix (rows: true class, columns: predicted)",
                          "                no     yes", "  no             1       0",
                          "  yes            0       1"]
    assert lines[-4:] == ["                 0       1       2",
                          "  0              2       1       0",
                          "  1              0       2       1",
                          "  2              1       0       3"]


# -- the grid beside the thesis --------------------------------------------------------------
@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> GridReports:
    """A report folder: a holdout and a k-fold scenario of the thesis grid, and a failed one."""
    root = tmp_path_factory.mktemp("reports")
    fake_run(root / "all-slices-aug-10", "holdout")
    fake_run(root / "lung-only-aug-25", "kfold")
    (root / "all-slices-aug-5").mkdir()
    (root / "all-slices-aug-5" / "report.ipynb").write_text(
        '{"metadata": {"papermill": {"exception": true}}}')
    return read_reports(root, "thesis")


def test_thesis_table_sets_ours_beside_the_thesis(reports: GridReports) -> None:
    thesis = GRIDS["thesis"]["thesis_figures"]
    ours = reports.metrics["all-slices-aug-10"]
    table = thesis_table("4.1", reports)
    assert table.index.tolist() == ["all-slices-aug-5", "all-slices-aug-10", "lung-only-aug-25"]
    assert table.columns.tolist() == [
        (label, source) for label in ("train accuracy", "time per epoch (s)", "train loss",
                                      "train MSE") for source in ("ours", "thesis")]
    row = table.loc["all-slices-aug-10"]
    assert row["train accuracy", "ours"] == ours["parts"]["train"]["accuracy"]
    assert row["train accuracy", "thesis"] == thesis["all-slices-aug-10"]["train_accuracy"]
    assert row["time per epoch (s)", "ours"] == ours["time_per_epoch_s"]
    assert row["train MSE", "ours"] == ours["parts"]["train"]["mse"]
    assert table.loc["all-slices-aug-5"].iloc[::2].isna().all()          # failed: no "ours"
    assert math.isnan(table.loc["lung-only-aug-25", ("train loss", "thesis")])  # not given


def test_thesis_table_of_a_kfold_run_is_the_fold_mean(reports: GridReports) -> None:
    k = reports.metrics["lung-only-aug-25"]
    row = thesis_table("4.2", reports).loc["lung-only-aug-25"]
    mean = np.mean([f["parts"]["val"]["loss"] for f in k["folds"]])
    assert row["val loss", "ours"] == pytest.approx(mean)
    assert row["val accuracy", "thesis"] == 0.71
    assert part_value(k, None, "time_per_epoch_s") == k["fold_mean_std"]["time_per_epoch_s"][0]


def test_thesis_percent_table_and_its_html(reports: GridReports) -> None:
    thesis = GRIDS["thesis"]["thesis_figures"]["all-slices-aug-10"]
    ours = reports.metrics["all-slices-aug-10"]["parts"]["val"]
    table = thesis_table("4.3", reports)
    assert table.loc["all-slices-aug-10", ("F1 %", "ours")] == pytest.approx(100 * ours["f1"])
    assert table.loc["all-slices-aug-10", ("F1 %", "thesis")] == pytest.approx(100 * 0.7054)
    html = to_html(table, index_html=report_links(reports))
    assert f"<td>{100 * ours['accuracy']:.2f}</td>" in html
    assert f"<td>{100 * thesis['f1']:.4g}</td>" in html and "<td>70.54</td>" in html
    assert '<th><a href="all-slices-aug-10/report.html">all-slices-aug-10</a></th>' in html
    assert "all-slices-aug-5</a> (failed)</th>" in html
    assert '<th colspan="2" halign="left">F1 %</th>' in html and "<th>scenario</th>" in html
    html41 = to_html(thesis_table("4.1", reports))
    assert f"<td>{thesis['time_per_epoch_s']:.4g}</td>" in html41
    assert f"<td>{reports.metrics['all-slices-aug-10']['time_per_epoch_s']:.2f}</td>" in html41


def test_thesis_table_without_reports_shows_the_thesis_only() -> None:
    table = thesis_table("4.2", read_reports(None))
    assert table.columns.tolist() == [("val accuracy", "thesis"), ("val loss", "thesis"),
                                      ("val MSE", "thesis")]
    assert table.loc["all-slices-aug-25"].tolist() == [0.71, 0.6331, 0.2206]
    assert math.isnan(table.loc["lung-only-aug-25", ("val loss", "thesis")])


def test_held_out_table(reports: GridReports) -> None:
    table = held_out_table(reports)
    assert table.index.tolist() == ["all-slices-aug-10", "lung-only-aug-25"]
    h, k = reports.metrics["all-slices-aug-10"], reports.metrics["lung-only-aug-25"]
    assert table.loc["all-slices-aug-10", "evaluated on"] == "test"
    assert table.loc["lung-only-aug-25", "evaluated on"] == "out-of-fold"
    assert table["n"].tolist() == [8, 12]
    assert table.loc["all-slices-aug-10", "AUC"] == h["auc"]
    assert table.loc["lung-only-aug-25", "AUC 95% CI"] == tuple(k["ci"]["auc"])
    assert table.loc["lung-only-aug-25", "accuracy 95% CI"] == tuple(k["ci"]["accuracy"])
    html = to_html(table)
    assert f"<td>{h['auc']:.4f}</td>" in html and "<td>out-of-fold</td>" in html
    assert f"<td>[{h['ci']['auc'][0]:.4f}, {h['ci']['auc'][1]:.4f}]</td>" in html


def test_report_links_only_with_a_report_folder(reports: GridReports) -> None:
    links = report_links(reports)
    assert links["all-slices-aug-10"] == '<a href="all-slices-aug-10/report.html">' \
                                         'all-slices-aug-10</a>'
    assert links["all-slices-aug-5"].endswith("</a> (failed)")
    assert report_links(read_reports(None)) == {}
