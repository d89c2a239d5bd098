"""Scenario reports: papermill runs ``notebooks/scenario.ipynb`` per scenario of a grid.

:func:`run_grid` is the engine behind ``ct3d report`` (the CLI only parses flags). For every
scenario of :func:`ct3d.grids.grid` it executes the scenario notebook into its own report
folder and exports it to HTML with the code hidden, then executes ``notebooks/compare.ipynb``
over the whole folder into ``index.ipynb`` / ``index.html``::

    OUT/index.ipynb  index.html               the grid side by side with the thesis' figures
    OUT/<scenario>/report.ipynb  report.html  metrics.json  predictions.csv  *.png
    WORK/.data/  .cache/                       synthetic cohort and preprocessed scans (shared)
    WORK/.runs/<OUT name>/<scenario>/          run folders: models stay out of the report

``WORK`` is ``OUT``'s parent folder unless given. A report holds no absolute path of the
machine that made it: the notebooks run in their report folder with the scenario's paths
written relative to it, and the streams written to stderr (TensorFlow's and Python's
warnings, which quote source files) are left out of the saved notebooks and their HTML. A
scenario that fails is reported (its error, and papermill's partly executed notebook with
the failing cell is kept and exported) and the others still run. Each report folder keeps
its run's ``predictions.csv`` (scans named relative to the data,
:func:`~ct3d.report.relative_scans`), from which the index compares the grid's ``paired``
scenarios. A ``quick`` report says on every page, first, that it is a smoke test, and names
each scenario with the epochs it really ran (:mod:`ct3d.report.smoke`).

Example::

    from ct3d.report import run_grid
    summary = run_grid("thesis", quick=True, out="reports/thesis-quick")
    print(summary.failed, summary.index)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import nbformat
import papermill
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError

from ct3d.errors import Ct3dError
from ct3d.grids import GRIDS
from ct3d.grids import grid as grid_scenarios
from ct3d.report.smoke import quick_name
from ct3d.scenario import Scenario

EXECUTION_ERRORS = (PapermillExecutionError, RuntimeError, TimeoutError)
"""What a notebook run may raise: a failing cell, a kernel that died or did not start."""

_KERNEL_NAME = "ct3d-report"


class ReportError(Ct3dError, RuntimeError):
    """The report notebooks or a Python kernel for them cannot be found."""


@dataclass
class ScenarioReport:
    """One scenario's report folder, how long it took, and its error if it failed."""

    name: str
    folder: Path
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the notebook ran to its end."""
        return self.error is None


@dataclass
class ReportSummary:
    """What :func:`run_grid` wrote: one :class:`ScenarioReport` per scenario and the index."""

    grid: str
    out: Path
    scenarios: list[ScenarioReport] = field(default_factory=list)
    index: Path | None = None
    index_error: str | None = None

    @property
    def failed(self) -> list[str]:
        """Names of the scenarios whose notebook failed."""
        return [s.name for s in self.scenarios if not s.ok]

    @property
    def ok(self) -> bool:
        """Whether every scenario and the index ran to their end."""
        return not self.failed and self.index_error is None


def notebooks_dir() -> Path:
    """The folder holding ``scenario.ipynb`` and ``compare.ipynb`` (a source checkout's).

    Example:
        >>> sorted(p.name for p in notebooks_dir().glob("[cs]*.ipynb"))
        ['compare.ipynb', 'scenario.ipynb']
    """
    folder = Path(__file__).resolve().parents[2] / "notebooks"
    missing = [n for n in ("scenario.ipynb", "compare.ipynb") if not (folder / n).is_file()]
    if missing:
        raise ReportError(f"report notebooks not found ({', '.join(missing)} in {folder}): "
                          "reports need a source checkout of ct3d installed with "
                          "`pip install -e .`")
    return folder


@contextmanager
def python_kernel(kernel: str | None = None) -> Iterator[str]:
    """The name of a Jupyter kernel to run notebooks with, valid inside the ``with`` block.

    ``kernel``: a registered kernel name, used as is. None: a temporary kernel spec that
    starts ``ipykernel`` in this very interpreter (``sys.executable``), found through
    ``JUPYTER_PATH`` for the block's duration, so a plain virtual environment needs no
    kernel registered by hand.

    Example:
        >>> with python_kernel() as name:
        ...     name
        'ct3d-report'
    """
    if kernel is not None:
        yield kernel
        return
    if find_spec("ipykernel") is None:
        raise ReportError(f"ipykernel is not installed in {sys.executable}; "
                          "`pip install ipykernel`, or pass a registered kernel name")
    with tempfile.TemporaryDirectory(prefix="ct3d-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / _KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                         "--IPKernelApp.log_level=ERROR"],
                "display_name": f"ct3d (Python {sys.version_info.major}."
                                f"{sys.version_info.minor})", "language": "python"}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        before = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [tmp, before]))
        try:
            yield _KERNEL_NAME
        finally:
            if before is None:
                del os.environ["JUPYTER_PATH"]
            else:
                os.environ["JUPYTER_PATH"] = before


def tidy(notebook: str | os.PathLike[str]) -> None:
    """Make an executed notebook machine-independent, in place: its stderr streams
    (warnings and library logs, which quote source files) are removed, and papermill's
    record of the input and output notebooks keeps their file names only."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.name == "stderr")]
    record = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if record.get(key):
            record[key] = Path(record[key]).name
    nbformat.write(nb, notebook)


def export_html(notebook: str | os.PathLike[str], html: str | os.PathLike[str],
                title: str) -> Path:
    """Write ``notebook`` as an HTML page titled ``title``, without code cells' input (or
    prompts): the report's markdown, printed results, tables, figures and errors.

    Example::

        export_html("reports/thesis/index.ipynb", "reports/thesis/index.html", "thesis grid")
    """
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4),
                                          resources={"metadata": {"name": title}})
    path = Path(html)
    path.write_text(body, encoding="utf-8")
    return path


def _execute(notebook: Path, output: Path, parameters: dict[str, Any], kernel: str) -> None:
    """Run ``notebook`` into ``output`` (saved after every cell) in ``output``'s folder."""
    papermill.execute_notebook(str(notebook), str(output), parameters=parameters,
                               kernel_name=kernel, progress_bar=False, cwd=str(output.parent))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PapermillExecutionError):
        return f"{exc.ename}: {exc.evalue}"
    return f"{type(exc).__name__}: {exc}"


def _placed(scenario: Scenario, run_dir: Path, work: Path, folder: Path) -> Scenario:
    """The scenario with its run folder and cache (and a synthetic cohort) under ``work``,
    every path written relative to the report ``folder`` (where the notebook runs)."""
    root = work / ".data" if scenario.data.source == "synthetic" else Path(scenario.data.root)
    return scenario.with_overrides({
        "out": os.path.relpath(run_dir, folder), "data.cache": os.path.relpath(work / ".cache",
                                                                               folder),
        "data.root": os.path.relpath(root.resolve(), folder)})


def start_from_pretraining(scenario: Scenario, spec: dict[str, Any], quick: bool,
                           place: Path, folder: Path, progress: bool) -> Scenario:
    """``scenario`` starting from the encoder :func:`ct3d.pretrain.pretrain` trains as
    ``spec`` says, into ``place/.runs/pretrain-<spec["name"]>`` (a finished one there is
    reused, so rows naming the same pretraining share it): on the synthetic cohort
    ``spec["unlabeled"]`` (generated under ``place/.data``; its labels unused), with
    ``spec``'s other keys as overrides of the scenario (e.g. ``train.epochs``; ``quick``: 1
    epoch on 12 quick scans). Its loss curve is copied into the report ``folder`` as
    ``pretrain_loss.png``; the weights path is written relative to ``folder``."""
    from ct3d.data.sources import ensure_synthetic
    from ct3d.pretrain import pretrain

    unlabeled = dict(spec["unlabeled"])
    overrides = {k: v for k, v in spec.items() if k not in ("name", "unlabeled")}
    name = spec["name"]
    if quick:
        unlabeled.update(preset="quick", normal=4, abnormal=2)   # 2 per grade of "all"
        overrides["train.epochs"] = 1
        name = f"{name}-quick"
    cohort = ensure_synthetic(place / ".data", unlabeled, progress)
    setup = scenario.with_overrides({**overrides, "data.cache": str(place / ".cache")})
    out = place / ".runs" / f"pretrain-{name}"
    if progress:
        print(f"pretraining {scenario.name}'s model on {cohort.name} (unlabeled) into {out}",
              flush=True)
    weights = pretrain(setup, cohort, out, verbose=int(progress))
    shutil.copyfile(out / "loss.png", folder / "pretrain_loss.png")
    return scenario.with_overrides({"model.params.weights": os.path.relpath(weights, folder)})


def _fresh(folder: Path) -> None:
    """An empty report folder (an earlier report there is replaced, nothing else is)."""
    if (folder / "report.ipynb").exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def _run_notebook(notebook: Path, output: Path, parameters: dict[str, Any], kernel: str,
                  title: str) -> str | None:
    """Execute ``notebook`` into ``output`` and export it as HTML beside it; the error
    message, or None."""
    error = None
    try:
        _execute(notebook, output, parameters, kernel)
    except EXECUTION_ERRORS as exc:
        error = _describe(exc)
    if output.is_file():
        tidy(output)
        export_html(output, output.with_suffix(".html"), title)
    return error


def index_title(grid: str, quick: bool = False) -> str:
    """The HTML title of a grid's index page.

    Example:
        >>> index_title("thesis")
        'ct3d thesis grid: our runs beside the thesis'
        >>> index_title("ct3d", quick=True)
        'ct3d ct3d grid (quick: smoke test)'
    """
    beside = ": our runs beside the thesis" if GRIDS[grid].get("thesis_figures") else ""
    return f"ct3d {grid} grid{beside}{' (quick: smoke test)' if quick else ''}"


def run_grid(
    grid: str = "thesis",
    data: str | None = None,
    quick: bool = False,
    out: str | os.PathLike[str] = "reports/thesis",
    kernel: str | None = None,
    progress: bool = True,
    only: Sequence[str] | None = None,
    work: str | os.PathLike[str] | None = None,
) -> ReportSummary:
    """Report every scenario of ``grid`` into ``out/<scenario>/``, then the index.

    ``data``: a folder of class sub-folders instead of the synthetic cohort. ``quick``: the
    grid's smoke-run sizes (:func:`ct3d.grids.grid`); every page then opens with a banner
    saying so, and names each scenario with its quick epochs, not those of its name (the
    scenario pages: those each model really ran). ``kernel``: a registered
    Jupyter kernel name (default: this interpreter, see :func:`python_kernel`). ``progress``:
    where the data, cache and models go, then one line per scenario with its time.
    ``only``: run just these scenarios (the index still covers every report folder in
    ``out``). ``work``: the folder for the synthetic cohort, the cache and the run folders
    (default: ``out``'s parent).

    Example::

        summary = run_grid("thesis", quick=True, out="reports/thesis-quick")
        summary.ok, summary.failed, summary.index    # (True, [], PosixPath('.../index.html'))
    """
    notebooks = notebooks_dir()
    if data is not None and not Path(data).is_dir():
        raise ReportError(f"{data}: data folder not found")
    scenarios = grid_scenarios(grid, quick=quick, data=data)
    unknown = sorted(set(only or []) - set(scenarios))
    if unknown:
        raise ReportError(f"grid {grid!r} has no scenario {', '.join(unknown)}; "
                          f"known: {', '.join(scenarios)}")
    chosen = [n for n in scenarios if only is None or n in only]
    root = Path(out).resolve()
    place = root.parent if work is None else Path(work).resolve()
    summary = ReportSummary(grid, root)
    if progress:
        print(f"reports: {root}\nrun folders (models): {place / '.runs' / root.name}\n"
              f"synthetic data: {place / '.data'}\npreprocessed cache: {place / '.cache'}",
              flush=True)
    with python_kernel(kernel) as kernel_name:
        for i, name in enumerate(chosen, 1):
            folder = root / name
            _fresh(folder)
            start = time.perf_counter()
            scenario = scenarios[name]
            if name in GRIDS[grid].get("pretrain", {}):
                scenario = start_from_pretraining(scenario, GRIDS[grid]["pretrain"][name],
                                                  quick, place, folder, progress)
            scenario = _placed(scenario, place / ".runs" / root.name / name, place, folder)
            shown = quick_name(name, [scenario.train.epochs]) if quick else name
            error = _run_notebook(notebooks / "scenario.ipynb", folder / "report.ipynb",
                                  {"scenario_yaml": scenario.to_yaml(), "out_dir": ".",
                                   "data": "", "quick": quick}, kernel_name,
                                  f"ct3d report: {shown} ({grid})")
            report = ScenarioReport(name, folder, time.perf_counter() - start, error)
            summary.scenarios.append(report)
            if progress:
                status = "ok" if report.ok else f"FAILED: {error}"
                print(f"[{i}/{len(chosen)}] {name}: {status} ({report.seconds:.1f} s)",
                      flush=True)
        summary.index_error = _run_notebook(
            notebooks / "compare.ipynb", root / "index.ipynb",
            {"reports_dir": ".", "grid": grid, "quick": quick}, kernel_name,
            index_title(grid, quick))
    if (root / "index.html").is_file():
        summary.index = root / "index.html"
    if progress:
        print(f"index: {summary.index}" + (f" (FAILED: {summary.index_error})"
                                           if summary.index_error else ""), flush=True)
    return summary
