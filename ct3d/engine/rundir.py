"""The run folder: what a run writes where, and when a folder may take a new run.

::

    RUN_DIR/scenario.yaml  split.csv  metrics.json  predictions.csv
            model.keras  history.csv  state/         (holdout; under fold<i>/ for k-fold)

A folder with ``scenario.yaml`` holds a run; with ``metrics.json`` too, a finished one. A new
run never mixes into another run's files: :func:`check_out` refuses such a folder (before
anything is computed) unless the caller forces it, in which case :func:`start` clears the
old run's files first. :func:`check_resume` accepts only a folder that holds a run.

Example::

    check_out(Path("runs/t5"), force=False)      # RunFolderError if runs/t5 holds a run
    start(Path("runs/t5"), scenario)             # creates it, writes scenario.yaml
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ct3d.data.cache import FillReport
from ct3d.data.dataset import Scan
from ct3d.errors import Ct3dError
from ct3d.scenario import Scenario

__all__ = ["RUN_FILES", "RunFolderError", "check_out", "check_resume", "start", "write_split"]

SCENARIO_FILE = "scenario.yaml"
METRICS_FILE = "metrics.json"
RUN_FILES = ("state", "model.keras", "history.csv", METRICS_FILE, "predictions.csv",
             "split.csv")
"""What a run writes besides ``scenario.yaml`` (and ``fold<i>/`` folders)."""


class RunFolderError(Ct3dError, FileExistsError):
    """A run folder that cannot be used as asked (it holds another run, or none)."""


def check_out(run_dir: Path, force: bool) -> None:
    """Refuse ``run_dir`` for a new run when it holds a run, unless ``force``.

    Example:
        >>> check_out(Path("no/such/folder"), force=False)  # a new folder is fine
    """
    if force or not (run_dir / SCENARIO_FILE).is_file():
        return
    if (run_dir / METRICS_FILE).is_file():
        raise RunFolderError(f"{run_dir}: already holds a finished run (metrics.json); choose "
                             f"another --out, or --force to replace it")
    raise RunFolderError(f"{run_dir}: already holds an unfinished run; continue it with "
                         f"--resume {run_dir}, or --force to start over")


def check_resume(run_dir: Path) -> Scenario:
    """The scenario of the run in ``run_dir``, which must hold one."""
    if not (run_dir / SCENARIO_FILE).is_file():
        raise RunFolderError(f"{run_dir}: no run to resume (no {SCENARIO_FILE})")
    return Scenario.from_file(run_dir / SCENARIO_FILE)


def start(run_dir: Path, scenario: Scenario) -> None:
    """Create ``run_dir`` (the files of an earlier run there are removed) and write the scenario,
    every plugin parameter written out."""
    if (run_dir / SCENARIO_FILE).is_file():
        for stale in RUN_FILES:
            target = run_dir / stale
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        for fold_dir in run_dir.glob("fold*"):
            shutil.rmtree(fold_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario.with_plugin_defaults().to_yaml(run_dir / SCENARIO_FILE)


def write_split(path: Path, scans: Sequence[Scan], folds: Sequence[np.ndarray],
                report: FillReport) -> None:
    """``split.csv``: each scan's label, class, patient, part per model, and skip reason."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        fold_cols = ["part"] if len(folds) == 1 else [f"fold{i}" for i in range(len(folds))]
        w.writerow(["path", "label", "class", "patient", *fold_cols, "skipped"])
        for j, scan in enumerate(scans):
            w.writerow([scan.path, scan.label, scan.cls, scan.patient,
                        *(parts[j] for parts in folds), report.failures.get(scan.path, "")])
