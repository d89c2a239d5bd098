"""The grid index: paired comparisons from report folders, the thesis tables of a grid without
thesis figures, and what a --quick page says about itself (fake report folders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_runs import fake_run

from ct3d.grids import GRIDS
from ct3d.paired import compare_runs
from ct3d.report import (
    GridReports,
    grid_comparisons,
    page_heading,
    paired_table,
    quick_name,
    read_reports,
    report_links,
    run_size,
    smoke_banner,
    thesis_tables_html,
    to_html,
)


@pytest.fixture(scope="module")
def ct3d_reports(tmp_path_factory: pytest.TempPathFactory) -> GridReports:
    """Report folders of the ct3d grid: ct1-no-augment beats its reference on the same folds,
    ct1-no-lung-crop is on another split, ct23-thesis-recipe failed, ct23-ct3d-recipe and
    ct1-thesis-recipe are missing."""
    root = tmp_path_factory.mktemp("reports") / "ct3d"
    fake_run(root / "ct1-ct3d-recipe", "kfold", folds=4, repeats=2, skill=0.2)
    fake_run(root / "ct1-no-augment", "kfold", folds=4, repeats=2, skill=0.6)
    fake_run(root / "ct1-no-lung-crop", "kfold", folds=4, repeats=1)
    (root / "ct23-thesis-recipe").mkdir()
    (root / "ct23-thesis-recipe" / "report.ipynb").write_text(
        '{"metadata": {"papermill": {"exception": true}}}')
    return read_reports(root, "ct3d")


@pytest.fixture(scope="module")
def comparisons(ct3d_reports: GridReports) -> list[dict]:
    return grid_comparisons(ct3d_reports, n_boot=300, seed=1)


def _pairs(comparisons: list[dict]) -> list[tuple[str, str]]:
    return [(c["runs"]["b"]["folder"], c["runs"]["a"]["folder"]) for c in comparisons]


def test_every_pair_of_the_grid_is_listed_in_its_order(comparisons: list[dict]) -> None:
    assert _pairs(comparisons) == list(GRIDS["ct3d"]["paired"].items())


def test_a_paired_entry_is_compare_runs_of_the_two_report_folders(
    ct3d_reports: GridReports, comparisons: list[dict],
) -> None:
    done = comparisons[3]
    assert "skipped" not in done
    assert _pairs([done]) == [("ct1-no-augment", "ct1-ct3d-recipe")]
    folder = ct3d_reports.folder
    expected = compare_runs(folder / "ct1-ct3d-recipe", folder / "ct1-no-augment", n_boot=300,
                            seed=1)
    assert done == expected
    assert done["difference"] > 0 and done["auc_b"] > done["auc_a"]  # B - A: the better one
    assert done["auc_a"] == pytest.approx(ct3d_reports.metrics["ct1-ct3d-recipe"]["auc"],
                                          abs=1e-5)
    row = paired_table(comparisons).loc["ct1-no-augment vs ct1-ct3d-recipe"]
    assert row["ΔAUC"] == done["difference"] > 0 and row["95% CI"] == tuple(done["ci"])
    assert row["p"] == done["p_value"] and row["skipped"] is None


def test_missing_failed_and_mismatched_pairs_are_skipped_with_the_reason(
    ct3d_reports: GridReports, comparisons: list[dict],
) -> None:
    reasons = {pair: c.get("skipped") for pair, c in zip(_pairs(comparisons), comparisons,
                                                          strict=True)}
    assert reasons[("ct23-ct3d-recipe", "ct23-thesis-recipe")] == (
        "the report of ct23-thesis-recipe failed; no report of ct23-ct3d-recipe")
    assert reasons[("ct1-ct3d-recipe", "ct1-thesis-recipe")] == "no report of ct1-thesis-recipe"
    assert reasons[("ct1-no-lung-crop", "ct1-ct3d-recipe")] is None  # on repeat 0 only
    fewer = comparisons[_pairs(comparisons).index(("ct1-no-lung-crop", "ct1-ct3d-recipe"))]
    assert fewer["repeats"] == 1 and fewer["runs"]["a"]["repeats"] == 2
    assert str(ct3d_reports.folder) not in json.dumps(comparisons)  # names, never paths
    table = paired_table(comparisons)
    assert table.columns.tolist() == ["AUC A", "AUC B", "ΔAUC", "95% CI", "p", "skipped"]
    assert table.loc["ct1-ct3d-recipe vs ct1-thesis-recipe"].iloc[:5].isna().all()
    html = to_html(table)
    assert "<td>no report of ct1-thesis-recipe</td>" in html


def test_no_pairs_without_a_report_folder_or_in_a_grid_without_them(tmp_path: Path) -> None:
    assert grid_comparisons(read_reports(None, "ct3d")) == []
    fake_run(tmp_path / "all-slices-aug-5")
    assert grid_comparisons(read_reports(tmp_path, "thesis")) == []
    assert paired_table([]).empty


def test_thesis_tables_of_the_thesis_grid_and_a_note_for_the_others(
    ct3d_reports: GridReports, tmp_path: Path,
) -> None:
    note = thesis_tables_html(ct3d_reports)
    assert note.startswith("<p>Grid ct3d has no figures of the thesis") and "<table" not in note
    fake_run(tmp_path / "all-slices-aug-10")
    reports = read_reports(tmp_path, "thesis")
    html = thesis_tables_html(reports, report_links(reports))
    assert html.count("<table") == 3 and html.count("<h3>") == 3
    assert '<a href="all-slices-aug-10/report.html">all-slices-aug-10</a>' in html
    assert f"<td>{reports.metrics['all-slices-aug-10']['parts']['train']['accuracy']:.4f}</td>" \
        in html


def test_quick_pages_name_the_epochs_run_and_open_with_the_banner(
    ct3d_reports: GridReports,
) -> None:
    links = report_links(ct3d_reports, quick=True)
    assert links["ct1-no-augment"] == ('<a href="ct1-no-augment/report.html">ct1-no-augment '
                                       "(quick: 2–4 epochs)</a>")
    assert links["ct23-thesis-recipe"].endswith("ct23-thesis-recipe (quick)</a> (failed)")
    assert report_links(ct3d_reports)["ct1-no-augment"].endswith(">ct1-no-augment</a>")
    assert quick_name("all-slices-aug-25", [2]) == "all-slices-aug-25 (quick: 2 epochs)"
    banner = smoke_banner([24], [2])
    assert "SMOKE TEST (--quick):</strong> 24 scans, 2 epochs — these numbers say the " \
           "pipeline runs, not how well a recipe learns." in banner
    assert "24 scans" not in smoke_banner([], [2]) and "2 epochs" in smoke_banner([], [2])
    heading = page_heading("all-slices-aug-25", quick=True, scans=[24], epochs=[2])
    assert heading.startswith(banner) and heading.endswith(
        "<h1>all-slices-aug-25 (quick: 2 epochs)</h1>")
    assert page_heading("all-slices-aug-25", epochs=[2]) == "<h1>all-slices-aug-25</h1>"
    assert page_heading("s", verdict="AUC 0.97 [0.94–0.99] & more") == (
        "<h1>s</h1><p><b>AUC 0.97 [0.94–0.99] &amp; more</b></p>")


def test_run_size_counts_the_scans_used_and_each_models_epochs(tmp_path: Path) -> None:
    holdout = json.loads((fake_run(tmp_path / "h") / "metrics.json").read_text())
    assert run_size(holdout) == (8 + 4 + 8, [3])
    kfold = json.loads((fake_run(tmp_path / "k", "kfold", folds=3, repeats=2)
                        / "metrics.json").read_text())
    assert run_size(kfold) == (12, [2, 3, 4, 2, 3, 4])
