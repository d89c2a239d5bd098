"""Reading what ct3d wrote into plain data: a run folder, and a grid's report folders.

A run folder (written by :func:`ct3d.run`) holds ``metrics.json``, ``split.csv``,
``predictions.csv`` and the per-epoch ``history.csv`` (k-fold runs: one per ``fold<i>/``).
:func:`read_run` reads them all into a :class:`Run`; :func:`read_reports` reads the
``metrics.json`` of every scenario report of a grid (and which reports failed). A report
folder keeps the run's ``predictions.csv`` with the scans named relative to the data
(:func:`relative_scans`), so two reports of a grid can be compared scan by scan.

Example:
    >>> class_names({"classes": ["CT-0", "CT-23"], "confusion_matrix": [[1, 0], [0, 1]]})
    ['CT-0', 'CT-23']
    >>> rows = pd.DataFrame({"label": [1, 0, 1, 0, 0], "scan": list("abcde")})
    >>> first_per_class(rows, 2)["scan"].tolist()
    ['b', 'd', 'a', 'c']
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ct3d.grids import GRIDS

__all__ = ["GridReports", "Run", "class_names", "first_per_class", "held_out_scans",
           "read_history", "read_reports", "read_run", "relative_scans", "sample_scans",
           "scan_titles"]


@dataclass
class Run:
    """A run folder's contents: metrics, the history of each fit, the split, predictions."""

    folder: Path
    metrics: dict[str, Any]
    histories: list[dict[str, list[float]]]
    split: pd.DataFrame
    predictions: pd.DataFrame

    @property
    def classes(self) -> list[str]:
        """The class names, in label order."""
        return class_names(self.metrics)

    @property
    def folds(self) -> list[dict[str, Any]]:
        """The per-fold metrics of a k-fold run; empty for a holdout run."""
        return self.metrics.get("folds", [])


def read_history(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """One ``history.csv`` as lists by column (``epoch`` as ints, the rest as floats).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "history.csv").write_text("epoch,loss\\n1,0.7\\n2,0.5\\n")
        ...     read_history(Path(tmp) / "history.csv")
        {'epoch': [1, 2], 'loss': [0.7, 0.5]}
    """
    table = pd.read_csv(path)
    return {key: [int(v) if key == "epoch" else float(v) for v in table[key]]
            for key in table.columns}


def _history_files(folder: Path) -> list[Path]:
    """``history.csv``, or ``fold<i>/history.csv`` of every fold in fold order."""
    if (folder / "history.csv").is_file():
        return [folder / "history.csv"]
    return sorted(folder.glob("fold*/history.csv"), key=lambda p: int(p.parent.name[4:]))


def read_run(run_dir: str | os.PathLike[str]) -> Run:
    """Everything a report shows of the run folder ``run_dir``.

    ``split.csv`` keeps its columns as text but ``label`` (an int); ``skipped`` is ``""``
    for a scan that was used. ``predictions.csv`` has ``label``, ``fold`` (the model, as in
    ``fold<i>/``) and ``repeat`` (of a repeated k-fold run; 0 otherwise) as ints and the
    probabilities as floats.

    Example::

        run = read_run("runs/quick")
        run.metrics["auc"], len(run.histories), run.split["part"].value_counts()
    """
    folder = Path(run_dir)
    split = pd.read_csv(folder / "split.csv", dtype=str, keep_default_na=False)
    split["label"] = split["label"].astype(int)
    predictions = pd.read_csv(folder / "predictions.csv", dtype={"scan": str, "part": str})
    return Run(folder, json.loads((folder / "metrics.json").read_text()),
               [read_history(p) for p in _history_files(folder)], split, predictions)


def class_names(metrics: dict[str, Any]) -> list[str]:
    """The class names of a run's (or one part's) metrics; ``0, 1, ...`` when it has none."""
    names = metrics.get("class_names") or metrics.get("classes")
    return list(names) if names else [str(i) for i in range(len(metrics["confusion_matrix"]))]


def first_per_class(rows: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """The first ``per_class`` rows of each ``label``, by label then in file order."""
    return rows.sort_values("label", kind="stable").groupby("label").head(per_class)


def sample_scans(run: Run, per_class: int = 2) -> pd.DataFrame:
    """Rows of ``split.csv`` to show as examples: the first usable scans of each class."""
    return first_per_class(run.split[run.split["skipped"] == ""], per_class)


def held_out_scans(run: Run, per_class: int = 2) -> pd.DataFrame:
    """Rows of ``predictions.csv`` held out from the run's last model, the first of each class.

    The held-out part is the evaluated one (k-fold: the last fold's test part), so these
    scans are ones the model in ``model.keras`` (k-fold: the last fold's) never trained on.
    """
    folds = run.folds
    part = "test" if folds else run.metrics["evaluated_on"]
    fold = len(folds) - 1 if folds else 0
    rows = run.predictions
    return first_per_class(rows[(rows["part"] == part) & (rows["fold"] == fold)], per_class)


def scan_titles(rows: pd.DataFrame, classes: Sequence[str]) -> list[str]:
    """A title per row of ``split.csv`` or ``predictions.csv``: class (and probability), file.

    Example:
        >>> rows = pd.DataFrame({"scan": ["/d/a.nii.gz"], "label": [1], "probability": [0.8]})
        >>> scan_titles(rows, ["normal", "abnormal"])
        ['abnormal, p = 0.80\\na.nii.gz']
    """
    paths = rows["scan"] if "scan" in rows else rows["path"]
    probs = rows["probability"] if "probability" in rows else [None] * len(rows)
    return [classes[label] + ("" if p is None else f", p = {p:.2f}") + f"\n{Path(path).name}"
            for label, p, path in zip(rows["label"], probs, paths, strict=True)]


def relative_scans(rows: pd.DataFrame, root: str | os.PathLike[str]) -> pd.DataFrame:
    """A copy of ``predictions.csv`` rows whose ``scan`` column names each scan relative to
    the data ``root`` (a scenario's ``data.root``; a manifest file: its folder), with ``/``.

    Scans and ``root`` as the run saw them (relative paths: to the same working folder). A
    scan outside ``root`` keeps its folder and file name only. No path of the machine is
    left, and two runs on the same data name each scan alike (:func:`ct3d.compare_runs`).

    Example:
        >>> rows = pd.DataFrame({"scan": ["/d/cohort/CT-0/a.nii.gz", "/elsewhere/CT-1/b.nii"]})
        >>> relative_scans(rows, "/d")["scan"].tolist()
        ['cohort/CT-0/a.nii.gz', 'CT-1/b.nii']
    """
    base = Path(root)
    if base.is_file() or base.suffix.lower() == ".csv":
        base = base.parent

    def relative(scan: str) -> str:
        path = Path(os.path.relpath(scan, base))
        return "/".join(Path(scan).parts[-2:] if path.parts[0] == ".." else path.parts)

    return rows.assign(scan=[relative(s) for s in rows["scan"]])


@dataclass
class GridReports:
    """The scenario reports of a grid found in ``folder`` (None: no reports, thesis only).

    ``metrics``: each report's ``metrics.json`` by scenario name; ``failed``: scenarios whose
    notebook stopped on an error; ``names``: the scenarios to list, in the grid's order
    (without a folder: those the thesis gives figures for).
    """

    grid: str
    folder: Path | None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: how many reports were found and which failed."""
        if self.folder is None:
            return "No report folder given: the thesis' own figures only."
        failed = f"; failed: {', '.join(self.failed)}" if self.failed else ""
        return f"{len(self.names)} scenario report(s) of grid {self.grid}{failed}"


def _failed(notebook: Path) -> bool:
    """Whether papermill marked the executed notebook as stopped by an exception."""
    meta = json.loads(notebook.read_text())["metadata"]
    return bool(meta.get("papermill", {}).get("exception"))


def read_reports(reports_dir: str | os.PathLike[str] | None, grid: str = "thesis") -> GridReports:
    """The scenario reports in ``reports_dir`` (one sub-folder each), or none if it is empty.

    Example:
        >>> reports = read_reports(None)
        >>> reports.names[:2]
        ['all-slices-aug-5', 'all-slices-aug-10']
        >>> reports.summary()
        "No report folder given: the thesis' own figures only."
    """
    order = list(GRIDS[grid]["scenarios"])
    if not reports_dir:
        figures = GRIDS[grid].get("thesis_figures", {})
        return GridReports(grid, None, names=[n for n in order if n in figures])
    reports = GridReports(grid, Path(reports_dir))
    for folder in sorted(p for p in reports.folder.iterdir() if p.is_dir()):
        notebook, metrics = folder / "report.ipynb", folder / "metrics.json"
        if notebook.is_file() and _failed(notebook):
            reports.failed.append(folder.name)
        if metrics.is_file():
            reports.metrics[folder.name] = json.loads(metrics.read_text())
    found = set(reports.metrics) | set(reports.failed)
    reports.names = [n for n in order if n in found] + sorted(found - set(order))
    return reports
