"""Data sources of a Scenario: a synthetic cohort (generated on first use), a folder of
class sub-folders, or a manifest CSV.

Example::

    scans = load_scans("folder", "data/mosmed", {"normal": ["CT-0"], "abnormal": ["CT-23"]})
    scans = load_scans("synthetic", "data", LABELS, synthetic={"normal": 24, "abnormal": 24,
                       "preset": "quick", "difficulty": "easy", "seed": 0})  # made on first use
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from ct3d.data.dataset import DatasetError, Scan, discover_folder, read_manifest

COHORT_FILE = "cohort.json"


def load_scans(
    source: Literal["synthetic", "folder", "manifest"], root: str | os.PathLike[str],
    labels: dict[str, list[str]], synthetic: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[Scan]:
    """The labelled scans of a data source (the keyword names are those of a scenario's
    ``data``): a ``folder`` of class sub-folders, a ``manifest`` CSV, or the ``synthetic``
    cohort described by ``synthetic`` (generated under ``root`` on first use)."""
    if source == "manifest":
        return read_manifest(root, labels)
    if source == "synthetic":
        if synthetic is None:
            raise DatasetError("a synthetic source needs its cohort parameters (synthetic=...)")
        return discover_folder(ensure_synthetic(root, synthetic, progress), labels)
    return discover_folder(root, labels)


def synthetic_folder(root: str | os.PathLike[str], params: dict[str, Any]) -> Path:
    """Where the cohort ``params`` describes lives under ``root``: one folder per cohort.

    Example:
        >>> synthetic_folder("data", {"preset": "mosmed", "severity": "CT-23",
        ...     "scanner": "varied", "normal": 100, "abnormal": 100, "seed": 0}).as_posix()
        'data/mosmed-CT-23-varied-100n-100a-seed0'
    """
    p = params
    severity, scanner = p.get("severity", "none"), p.get("scanner", "uniform")
    lesions = p["difficulty"] if severity == "none" else severity
    kind = lesions if scanner == "uniform" else f"{lesions}-{scanner}"
    return Path(root) / f"{p['preset']}-{kind}-{p['normal']}n-{p['abnormal']}a-seed{p['seed']}"


def synthetic_classes(params: dict[str, Any]) -> list[str]:
    """The class folders of the synthetic cohort ``params`` describes.

    Example:
        >>> synthetic_classes({"severity": "all"})
        ['CT-0', 'CT-1', 'CT-2', 'CT-3', 'CT-4']
    """
    from ct3d.data.severity import cohort_grades

    severity = params.get("severity", "none")
    if severity in ("none", "CT-23"):
        return ["CT-0", "CT-23"]
    return ["CT-0", *cohort_grades(severity)]


def _relevant(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that make a cohort: ``difficulty`` only matters without a severity; a
    record written before severities and scanners existed means ``none`` and ``uniform``."""
    params = {"severity": "none", "scanner": "uniform", **params}
    if params["severity"] == "none":
        return params
    return {k: v for k, v in params.items() if k != "difficulty"}


def ensure_synthetic(
    root: str | os.PathLike[str], params: dict[str, Any], progress: bool = True
) -> Path:
    """The folder of the synthetic cohort ``params`` describes, generated on first use.

    The cohort is generated into ``<folder>.partial`` and renamed into place once complete
    (with ``cohort.json`` recording its parameters), so an interrupted run is redone, never
    half-used. A folder of that name holding anything else is an error, never overwritten.
    """
    from ct3d.data.synthetic import generate_cohort

    folder = synthetic_folder(root, params)
    record = folder / COHORT_FILE
    if record.is_file() and _relevant(json.loads(record.read_text())) == _relevant(params):
        return folder
    if folder.exists():
        raise DatasetError(f"{folder}: exists but is not the synthetic cohort {params} "
                           f"(no matching {COHORT_FILE}); move it away or choose another "
                           f"data.root")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    severity = params.get("severity", "none")
    generate_cohort(partial, params["normal"], params["abnormal"], seed=params["seed"],
                    preset=params["preset"], difficulty=params["difficulty"],
                    workers=min(4, os.cpu_count() or 1), progress=progress,
                    severity=None if severity == "none" else severity,
                    scanner=params.get("scanner", "uniform"))
    (partial / COHORT_FILE).write_text(json.dumps(params, indent=2))
    partial.rename(folder)
    return folder
