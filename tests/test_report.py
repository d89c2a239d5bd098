"""Scenario reports: the quick thesis grid through papermill, its HTML, and a failing run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import ct3d
from ct3d.cli import main
from ct3d.grids import GRIDS, grid
from ct3d.report import ReportSummary, ScenarioReport, run_grid

FIGURES = ("samples.png", "curves.png", "timing.png", "confusion.png", "roc.png",
           "calibration.png", "gradcam.png")


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
        for name in ("report.ipynb", "report.html", "metrics.json", *FIGURES):
            assert (report.folder / name).is_file(), f"{report.name}/{name}"
        run_dir = quick_grid.out.parents[1] / "work" / ".runs" / "thesis" / report.name
        assert (run_dir / "model.keras").is_file()
        assert _metrics(report) == json.loads((run_dir / "metrics.json").read_text())
    assert quick_grid.index == quick_grid.out / "index.html" and quick_grid.index.is_file()
    assert (quick_grid.out / "index.ipynb").is_file()
    assert not list(quick_grid.out.rglob("*.keras"))
    assert len(list((quick_grid.out.parents[1] / "work" / ".data").glob("*/cohort.json"))) == 1
    assert not list(quick_grid.out.parent.glob(".*"))  # --work: nothing beside the reports


@pytest.mark.notebook
def test_reports_are_titled_and_hold_no_path_of_this_machine(quick_grid: ReportSummary) -> None:
    machine = [str(quick_grid.out.parents[1]), sys.prefix, str(Path(ct3d.__file__).parent),
               str(Path.home())]
    files = [p for p in quick_grid.out.rglob("*") if p.suffix in (".ipynb", ".html", ".json")]
    assert len(files) == 7 * 3 + 2
    for path in files:
        text = path.read_text()
        assert not [m for m in machine if m in text], path
    for report in quick_grid.scenarios:
        title = f"<title>ct3d report: {report.name} (thesis)</title>"
        assert title in (report.folder / "report.html").read_text()
        assert "../../work/.data" in (report.folder / "report.ipynb").read_text()
    assert "<title>ct3d thesis grid: our runs beside the thesis</title>" in (
        quick_grid.index.read_text())


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
    assert "all-slices-aug-5</a> (failed)" in summary.index.read_text()
    out, err = capfd.readouterr()  # the kernels' output too
    assert "[1/1] all-slices-aug-5: FAILED: DatasetError" in out
    for noise in ("without encryption", "oneDNN", "cuInit", "absl"):
        assert noise not in err, err


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
