"""Scenario reports: the quick thesis grid through papermill, its HTML, and a failing run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
from fake_runs import GRADES, fake_run

import ct3d
from ct3d.cli import main
from ct3d.grids import GRIDS, grid
from ct3d.paired import compare_runs
from ct3d.report import (
    ReportSummary,
    ScenarioReport,
    export_html,
    notebooks_dir,
    python_kernel,
    quick_name,
    read_run,
    run_grid,
    run_size,
)
from ct3d.report.execute import start_from_pretraining, tidy

FIGURES = ("samples.png", "curves.png", "timing.png", "confusion.png", "roc.png",
           "calibration.png", "gradcam.png")
BANNER = "SMOKE TEST (--quick):</strong> "


@pytest.fixture(scope="module")
def quick_grid(tmp_path_factory: pytest.TempPathFactory) -> ReportSummary:
    """The thesis grid in quick mode, reported once for the whole module."""
    base = tmp_path_factory.mktemp("grid")
    return run_grid("thesis", quick=True, out=base / "reports" / "thesis", work=base / "work",
                    progress=False)


def _metrics(report: ScenarioReport) -> dict:
    return json.loads((report.folder / "metrics.json").read_text())


@pytest.mark.notebook
def test_every_scenario_gets_a_report_and_models_stay_out(quick_grid: ReportSummary) -> None:
    names = list(grid("thesis", quick=True))
    assert len(names) == 7 and [s.name for s in quick_grid.scenarios] == names
    assert quick_grid.ok and quick_grid.failed == [] and quick_grid.index_error is None
    for report in quick_grid.scenarios:
        assert report.folder == quick_grid.out / report.name and report.seconds > 0
        for name in ("report.ipynb", "report.html", "metrics.json", "predictions.csv",
                     *FIGURES):
            assert (report.folder / name).is_file(), f"{report.name}/{name}"
        run_dir = quick_grid.out.parents[1] / "work" / ".runs" / "thesis" / report.name
        assert (run_dir / "model.keras").is_file()
        assert _metrics(report) == json.loads((run_dir / "metrics.json").read_text())
    assert quick_grid.index == quick_grid.out / "index.html" and quick_grid.index.is_file()
    assert (quick_grid.out / "index.ipynb").is_file()
    assert (quick_grid.out / "auc.png").is_file() and (quick_grid.out / "roc_curves.png").is_file()
    assert not list(quick_grid.out.rglob("*.keras"))
    assert len(list((quick_grid.out.parents[1] / "work" / ".data").glob("*/cohort.json"))) == 1
    assert not list(quick_grid.out.parent.glob(".*"))  # --work: nothing beside the reports


@pytest.mark.notebook
def test_reports_are_titled_and_hold_no_path_of_this_machine(quick_grid: ReportSummary) -> None:
    machine = [str(quick_grid.out.parents[1]), sys.prefix, str(Path(ct3d.__file__).parent),
               str(Path.home())]
    files = [p for p in quick_grid.out.rglob("*")
             if p.suffix in (".ipynb", ".html", ".json", ".csv")]
    assert len(files) == 7 * 4 + 2
    for path in files:
        text = path.read_text()
        assert not [m for m in machine if m in text], path
    for report in quick_grid.scenarios:
        epochs = run_size(_metrics(report))[1]
        title = f"<title>ct3d report: {quick_name(report.name, epochs)} (thesis)</title>"
        assert title in (report.folder / "report.html").read_text()
        assert "../../work/.data" in (report.folder / "report.ipynb").read_text()
    assert "<title>ct3d thesis grid: our runs beside the thesis (quick: smoke test)</title>" in (
        quick_grid.index.read_text())


@pytest.mark.notebook
def test_every_quick_page_opens_with_the_smoke_test_banner(quick_grid: ReportSummary) -> None:
    for report in quick_grid.scenarios:
        scans, epochs = run_size(_metrics(report))
        page = (report.folder / "report.html").read_text()
        banner = f"{BANNER}{scans} scans, {epochs[0]} epoch"
        assert banner in page and page.index(banner) < page.index("<h1")
        assert f"<h1>{quick_name(report.name, epochs)}</h1>" in page
    index = quick_grid.index.read_text()
    assert BANNER in index and index.index(BANNER) < index.index("<h1")
    assert "all-slices-aug-25 (quick: 2 epochs)</a>" in index


@pytest.mark.notebook
def test_html_hides_the_code(quick_grid: ReportSummary) -> None:
    first = quick_grid.scenarios[0].folder
    assert "scenario_yaml = " in (first / "report.ipynb").read_text()
    for html in [*(s.folder / "report.html" for s in quick_grid.scenarios), quick_grid.index]:
        text = html.read_text()
        for code in ("scenario_yaml = ", "reports_dir = ", "import ct3d", "report.to_html("):
            assert code not in text, f"{html}: {code!r}"
        assert "<img" in text or html == quick_grid.index


@pytest.mark.notebook
def test_report_tables_carry_the_metrics(quick_grid: ReportSummary) -> None:
    for report in quick_grid.scenarios:
        m, html = _metrics(report), (report.folder / "report.html").read_text()
        for part, values in m["parts"].items():
            for key in ("accuracy", "precision", "recall", "f1", "auc", "loss"):
                if values[key] is not None:
                    assert f"<td>{values[key]:.4f}</td>" in html, (report.name, part, key)
        lo, hi = m["ci"]["accuracy"]
        assert f"[{lo:.4f}, {hi:.4f}]" in html
        assert f"evaluated on: test (n = {m['n']})" in html


@pytest.mark.notebook
def test_index_sets_ours_beside_the_thesis(quick_grid: ReportSummary) -> None:
    index = quick_grid.index.read_text()
    for report in quick_grid.scenarios:
        m = _metrics(report)
        assert f'href="{report.name}/report.html"' in index
        assert f"<td>{m['parts']['train']['accuracy']:.4f}</td>" in index
        assert f"<td>{m['parts']['val']['loss']:.4f}</td>" in index
        assert f"<td>{100 * m['parts']['val']['accuracy']:.2f}</td>" in index
        assert f"<td>{m['auc']:.4f}</td>" in index
    thesis = GRIDS["thesis"]["thesis_figures"]["all-slices-aug-10"]
    for value in (f"{thesis['train_accuracy']:.4g}", f"{thesis['time_per_epoch_s']:.4g}",
                  f"{100 * thesis['f1']:.4g}"):
        assert f"<td>{value}</td>" in index


@pytest.mark.notebook
def test_a_failing_scenario_is_reported_and_the_index_still_made(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)  # as a user's shell has it
    no_scans = tmp_path / "no-scans"
    for folder in ("CT-0", "CT-23"):
        (no_scans / folder).mkdir(parents=True)
    summary = run_grid("thesis", quick=True, data=str(no_scans), out=tmp_path / "thesis",
                       only=["all-slices-aug-5"])
    assert summary.failed == ["all-slices-aug-5"] and not summary.ok
    report = summary.scenarios[0]
    assert report.error.startswith("DatasetError: ") and "no scans" in report.error
    notebook = json.loads((report.folder / "report.ipynb").read_text())
    assert notebook["metadata"]["papermill"]["exception"] is True
    assert not (report.folder / "metrics.json").exists()
    assert "DatasetError" in (report.folder / "report.html").read_text()
    assert "all-slices-aug-5 (quick)</a> (failed)" in summary.index.read_text()
    out, err = capfd.readouterr()  # the kernels' output too
    assert "[1/1] all-slices-aug-5: FAILED: DatasetError" in out
    for noise in ("without encryption", "oneDNN", "cuInit", "absl"):
        assert noise not in err, err


@pytest.mark.notebook
def test_a_quick_scenario_page_says_it_is_a_smoke_test_and_keeps_its_predictions(
    tmp_path: Path,
) -> None:
    summary = run_grid("thesis", quick=True, out=tmp_path / "reports" / "thesis",
                       work=tmp_path / "work", progress=False, only=["all-slices-aug-25"])
    assert summary.ok
    folder = summary.scenarios[0].folder
    page, index = (folder / "report.html").read_text(), summary.index.read_text()
    assert run_size(_metrics(summary.scenarios[0])) == (24, [2])
    banner = (f"{BANNER}24 scans, 2 epochs — these numbers say the pipeline runs, not how well "
              "a recipe learns.")
    assert banner in page and page.index(banner) < page.index("<h1")     # the run's real sizes
    assert "<h1>all-slices-aug-25 (quick: 2 epochs)</h1>" in page
    assert "<title>ct3d report: all-slices-aug-25 (quick: 2 epochs) (thesis)</title>" in page
    assert BANNER + "24 scans, 2 epochs" in index and index.index(BANNER) < index.index("<h1")
    assert ">all-slices-aug-25 (quick: 2 epochs)</a>" in index
    run = read_run(tmp_path / "work" / ".runs" / "thesis" / "all-slices-aug-25")
    kept = pd.read_csv(folder / "predictions.csv", dtype={"scan": str, "part": str})
    assert kept.drop(columns="scan").equals(run.predictions.drop(columns="scan"))
    assert all(s.count("/") == 2 and not s.startswith(("/", "..")) for s in kept["scan"])
    assert [s.split("/", 1)[1] for s in kept["scan"]] == [
        "/".join(Path(s).parts[-2:]) for s in run.predictions["scan"]]   # the same scans
    assert str(tmp_path) not in (folder / "predictions.csv").read_text()
    assert compare_runs(folder, folder, n_boot=20)["difference"] == 0.0


@pytest.mark.notebook
def test_index_sections_from_report_folders(tmp_path: Path) -> None:
    root = tmp_path / "ct3d"
    fake_run(root / "ct1-ct3d-recipe", "kfold", folds=4, skill=0.2)
    fake_run(root / "ct1-no-augment", "kfold", folds=4, skill=0.6)
    fake_run(root / "grades-ct3d-recipe", "multiclass", classes=GRADES)
    recorded = root / "ct1-no-augment" / "metrics.json"
    metrics = json.loads(recorded.read_text())
    metrics["cost"] = {"parameters": 2_500_000, "gflops_per_scan": 7.5,
                       "input_shape": [64, 64, 48, 1]}
    metrics["peak_rss_gib"] = 1.25
    recorded.write_text(json.dumps(metrics))
    with python_kernel() as kernel:
        papermill.execute_notebook(str(notebooks_dir() / "compare.ipynb"),
                                   str(root / "index.ipynb"), kernel_name=kernel,
                                   parameters={"reports_dir": ".", "grid": "ct3d"},
                                   progress_bar=False, cwd=str(root))
    tidy(root / "index.ipynb")
    html = export_html(root / "index.ipynb", root / "index.html", "ct3d grid").read_text()
    assert "<h1>Grid comparison: ct3d</h1>" in html and BANNER not in html
    assert "Grid ct3d has no figures of the thesis to set beside" in html
    assert "Training (Table 4.1)" not in html and "Traceback" not in html
    headings = ("AUC per scenario", "ROC curves", "Paired comparisons on the same folds")
    assert [html.count(f">{h}<") for h in headings] == [1, 1, 1]
    assert html.index(">Held-out test (ours)<") < html.index(">What each model costs<") < \
        html.index(">AUC per scenario<")
    costs = html[html.index(">What each model costs<"):html.index(">AUC per scenario<")]
    assert "ct1-no-augment" in costs and "ct1-ct3d-recipe" not in costs   # no cost recorded
    assert all(cell in costs for cell in ("<td>2.50</td>", "<td>7.5</td>", "<td>1.25</td>",
                                          "<td>64 × 64 × 48</td>"))
    assert "<th>ct1-no-augment vs ct1-ct3d-recipe</th>" in html
    assert "<td>no report of ct1-thesis-recipe</td>" in html
    for png in ("auc.png", "roc_curves.png", "paired_auc.png"):
        assert (root / png).read_bytes()[:4] == b"\x89PNG"
    assert html.count("<img") == 3


def test_cli_report_flags_and_exit_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []

    def fake_run_grid(grid: str, **options: object) -> ReportSummary:
        calls.append((grid, options))
        error = "DatasetError: no scans" if options["quick"] else None
        return ReportSummary(grid, tmp_path, [ScenarioReport("a", tmp_path / "a", 1.0, error)])

    monkeypatch.setattr("ct3d.report.run_grid", fake_run_grid)
    assert main(["report", "--out", str(tmp_path)]) == 0
    assert main(["report", "--grid", "thesis", "--data", "/scans", "--quick",
                 "--only", "x", "--only", "y", "--work", str(tmp_path / "w")]) == 1
    assert calls == [
        ("thesis", {"data": None, "quick": False, "out": str(tmp_path), "kernel": None,
                    "only": None, "work": None}),
        ("thesis", {"data": "/scans", "quick": True, "out": "reports/thesis", "kernel": None,
                    "only": ["x", "y"], "work": str(tmp_path / "w")}),
    ]
    monkeypatch.undo()
    assert main(["report", "--quick", "--only", "no-such-scenario"]) == 2
    assert "has no scenario no-such-scenario" in capsys.readouterr().err
    assert main(["report", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert main(["report", "--grid", "nope"]) == 2



def test_grid_rows_with_pretraining_start_from_the_encoder_trained_once(
    tmp_path: Path,
) -> None:
    scenarios, specs = grid("dims", quick=True), GRIDS["dims"]["pretrain"]
    folders = {}
    for name in ("ssl-thesis-cnn", "ssl-thesis-cnn-20-per-class"):
        folders[name] = tmp_path / "reports" / "dims" / name
        folders[name].mkdir(parents=True)
    ready = start_from_pretraining(scenarios["ssl-thesis-cnn"], specs["ssl-thesis-cnn"], True,
                                   tmp_path / "work", folders["ssl-thesis-cnn"], progress=False)
    pretrain_dir = tmp_path / "work" / ".runs" / "pretrain-genesis-400-quick"
    record = json.loads((pretrain_dir / "pretrain.json").read_text())
    assert record["scans"] == 12 and record["epochs"] == 1          # 4 normal + 2 per grade
    cohort = tmp_path / "work" / ".data" / "quick-all-varied-4n-2a-seed1"
    assert (cohort / "cohort.json").is_file()
    assert (folders["ssl-thesis-cnn"] / "pretrain_loss.png").read_bytes()[:4] == b"\x89PNG"
    weights = pretrain_dir / "pretrained.keras"
    assert ready.model.params["weights"] == os.path.relpath(weights, folders["ssl-thesis-cnn"])
    assert ready.with_overrides({"model.params.weights": None}) == scenarios["ssl-thesis-cnn"]
    history = pretrain_dir / "history.csv"
    written = history.stat().st_mtime_ns
    scarce = start_from_pretraining(scenarios["ssl-thesis-cnn-20-per-class"],
                                    specs["ssl-thesis-cnn-20-per-class"], True,
                                    tmp_path / "work", folders["ssl-thesis-cnn-20-per-class"],
                                    progress=False)
    assert scarce.model.params["weights"] == ready.model.params["weights"]     # shared
    assert history.stat().st_mtime_ns == written                   # and not trained again
    assert json.loads((pretrain_dir / "pretrain.json").read_text()) == record


@pytest.mark.notebook
def test_a_slice_attention_model_report_draws_which_slices_mattered(tmp_path: Path) -> None:
    scenario = ct3d.Scenario.preset("quick").with_overrides({
        "name": "tiny-attention", "data.root": str(tmp_path / "data"),
        "data.cache": str(tmp_path / "cache"), "out": str(tmp_path / "run"),
        "data.synthetic.normal": 6, "data.synthetic.abnormal": 6,
        "preprocess.2.params.shape": [32, 32, 16], "train.epochs": 1,
        "model": {"name": "slice2d", "params": {"aggregation": "attention", "units": 8}}})
    with python_kernel() as kernel:
        papermill.execute_notebook(
            str(notebooks_dir() / "scenario.ipynb"), str(tmp_path / "report.ipynb"),
            kernel_name=kernel, progress_bar=False, cwd=str(tmp_path),
            parameters={"scenario_yaml": scenario.to_yaml(), "out_dir": "out", "examples": 1})
    figure = tmp_path / "out" / "attention.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    cells = nbformat.read(tmp_path / "report.ipynb", as_version=4).cells
    printed = [o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs]
    assert not any("no attention over slices" in text for text in printed)
