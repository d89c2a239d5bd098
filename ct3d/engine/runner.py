"""``run(scenario) -> Result``: the whole run, in order, with every error before any work.

check (the scenario, then the run folder; TensorFlow not yet imported) -> data (the
synthetic cohort generated when asked) -> split by patient -> cache of preprocessed scans
-> the model's smallest input against the scans' shape -> run folder -> one fit per model
(:mod:`ct3d.engine.fit`) -> metrics (:mod:`ct3d.engine.pooling`). A ``kfold`` split trains
one model per fold (``fold<i>/``) and evaluates every scan once, out of fold; with
``split.repeats`` R > 1 it does so R times (fold i of repeat r in ``fold<r*k+i>/``; with
``split.fold`` set, only that fold of each repeat, in ``fold<r>/``). An interrupted run
continues from its last completed epoch with ``run(resume=RUN_DIR)``, with the same result
as an uninterrupted one on CPU.

The same code trains on one device, on several (``train.strategy``: ``mirrored``) and on
several hosts (``multi_worker``, :mod:`ct3d.engine.devices`). Only the chief worker writes
the run folder; the others write the same files into a temporary folder that is removed at
the end.

Example::

    import ct3d
    result = ct3d.run(ct3d.Scenario.preset("quick"))
    print(result.metrics["auc"], result.metrics["ci"]["auc"], result.run_dir)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ct3d.backend import import_keras
from ct3d.data.cache import Cache, FillReport
from ct3d.data.dataset import Scan
from ct3d.data.pipeline import input_shape
from ct3d.data.sources import load_scans
from ct3d.data.split import split_folds
from ct3d.engine import devices, rundir
from ct3d.engine.parts import assemble_parts
from ct3d.models import min_input
from ct3d.scenario import Scenario, ScenarioError

__all__ = ["Result", "find_scans", "preprocess_cache", "run"]


@dataclass
class Result:
    """What a run learned and measured; the Scenario that produced it is left unchanged."""

    scenario: Scenario
    run_dir: Path
    model: Any
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    chief: bool = True
    """Whether this process wrote ``run_dir`` (False on the other workers of a
    ``multi_worker`` run)."""


def find_scans(scenario: Scenario, verbose: int = 1) -> list[Scan]:
    """The labelled scans of the scenario's data source (a synthetic cohort is generated
    under ``data.root`` on first use)."""
    d = scenario.data
    return load_scans(d.source, d.root, d.labels, dataclasses.asdict(d.synthetic),
                      progress=verbose > 0)


def preprocess_cache(scenario: Scenario, verbose: int = 1) -> FillReport:
    """Preprocess the scenario's scans into its cache: what is not there yet, in
    ``data.workers`` processes; a failing scan is reported (fatal with ``data.strict``).

    Example::

        report = ct3d.preprocess_cache(ct3d.Scenario.from_file("thesis.yaml"))
        print(report.summary())
    """
    scenario.validate()
    return _fill(scenario, find_scans(scenario, verbose), verbose)


def _fill(scenario: Scenario, scans: list[Scan], verbose: int) -> FillReport:
    cache = Cache(scenario.data.cache, scenario.resolved("preprocess"))
    report = cache.fill(scans, workers=scenario.data.workers, strict=scenario.data.strict,
                        progress=verbose > 0)
    if verbose:
        print(report.summary())
    return report


def run(
    scenario: Scenario | None = None, out: str | os.PathLike[str] | None = None,
    verbose: int = 1, resume: str | os.PathLike[str] | None = None,
    callbacks: list[Any] | None = None, force: bool = False,
) -> Result:
    """Train and evaluate ``scenario``; write the run folder (``out`` or ``scenario.out``).

    ``resume``: a run folder to continue (its own ``scenario.yaml`` is used; completed folds
    and epochs are kept). ``force``: replace a run already in the folder (refused
    otherwise, before any work). ``verbose``: 0 silent, 1 progress bars and one line per
    epoch. ``callbacks``: extra Keras callbacks for every fit (e.g. a live plot in a
    notebook).

    Everything that can be checked before data is touched is checked first, without
    importing TensorFlow: the scenario (:meth:`Scenario.validate`) and the run folder
    (:func:`ct3d.engine.rundir.check_out`). ``CT3D_LOGICAL_CPUS`` is applied before
    TensorFlow starts (:func:`ct3d.engine.devices.configure_from_env`). On a non-chief
    worker of a ``multi_worker`` run the files go to a temporary folder (removed at the end;
    a resumed run starts from a copy of the chief's folder, which must be readable there)
    and ``Result.run_dir`` names the chief's folder.
    """
    if resume is not None:
        run_dir = Path(resume)
        scenario = rundir.check_resume(run_dir)
    elif scenario is None:
        raise ValueError("run() needs a scenario, or resume=RUN_DIR")
    else:
        run_dir = Path(out if out is not None else scenario.out)
    scenario.validate()
    if resume is None and devices.chief_from_env(scenario.train.strategy):
        rundir.check_out(run_dir, force)
    devices.configure_from_env()

    scans = find_scans(scenario, verbose)
    folds = split_folds([s.label for s in scans], [s.patient for s in scans],
                        **dataclasses.asdict(scenario.split), seed=scenario.seed)
    report = _fill(scenario, scans, verbose)
    _check_input(scenario, [p for p in report.paths if p is not None])

    import_keras()
    from ct3d.engine import tensorboard
    from ct3d.engine.cost import model_cost
    from ct3d.engine.fit import train_fold
    from ct3d.engine.pooling import write_metrics

    strategy = devices.make_strategy(scenario.train.strategy)  # before TensorFlow runs anything
    trained_on = devices.describe(strategy, scenario.train.mixed_precision)
    if verbose:
        print(f"ct3d: {trained_on}")
    if scenario.train.deterministic:
        devices.set_deterministic()
    chief = devices.is_chief(strategy)
    work_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="ct3d-worker-"))
    try:
        if chief and resume is None:
            rundir.start(run_dir, scenario)
        elif not chief and resume is not None:
            shutil.copytree(run_dir, work_dir, dirs_exist_ok=True)
        rundir.write_split(work_dir / "split.csv", scans, folds, report)
        classes = list(scenario.data.labels)
        need_val = scenario.train.monitor.startswith("val_")
        results = []
        for i, parts in enumerate(folds):
            fold_dir = work_dir if len(folds) == 1 else work_dir / f"fold{i}"
            if verbose and len(folds) > 1:
                print(f"fold {i + 1}/{len(folds)}")
            data = assemble_parts(scans, report, parts, need_val)
            results.append(train_fold(scenario, data, fold_dir, len(classes), i, verbose,
                                      callbacks or [], strategy))
        metrics = write_metrics(scenario, work_dir, results, classes, report.failures,
                                model_cost(results[-1].model), trained_on)
        if chief and scenario.train.tensorboard and tensorboard.available():
            tensorboard.write_summary(work_dir, scenario, metrics)
        devices.wait_for_workers(strategy)
        last = results[-1]
        return Result(scenario, run_dir, last.model, last.history, metrics, chief)
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)


def _check_input(scenario: Scenario, cached: list[Path]) -> None:
    """The model's smallest input against the preprocessed scans' shape (for chains whose
    output shape :meth:`Scenario.validate` could not know), before any model is built."""
    if not cached:
        return
    shape = input_shape(cached)
    smallest = min_input(scenario.model)
    if smallest is not None and min(shape) < smallest:
        raise ScenarioError(
            f"model {scenario.model.name!r} needs every side of its input >= {smallest} "
            f"voxels, but the preprocessed scans are {shape}: end the preprocess chain with "
            f"a larger resize, or choose another model")
