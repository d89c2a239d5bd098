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
    """Where the cohort ``params`` describes lives under ``root``: one folder per cohort."""
    p = params
    return Path(root) / (f"{p['preset']}-{p['difficulty']}-{p['normal']}n-{p['abnormal']}a-"
                         f"seed{p['seed']}")


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
    if record.is_file() and json.loads(record.read_text()) == params:
        return folder
    if folder.exists():
        raise DatasetError(f"{folder}: exists but is not the synthetic cohort {params} "
                           f"(no matching {COHORT_FILE}); move it away or choose another "
                           f"data.root")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    generate_cohort(partial, params["normal"], params["abnormal"], seed=params["seed"],
                    preset=params["preset"], difficulty=params["difficulty"],
                    workers=min(4, os.cpu_count() or 1), progress=progress)
    (partial / COHORT_FILE).write_text(json.dumps(params, indent=2))
    partial.rename(folder)
    return folder
