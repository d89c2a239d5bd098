"""Data sources of a Scenario: a synthetic cohort (generated on first use), a folder of
class sub-folders, or a manifest CSV.

Example::

    scans = load_scans(DataSpec(source="synthetic", root="data"))  # generated on first use
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ct3d.data.dataset import DatasetError, Scan, discover_folder, read_manifest
from ct3d.scenario import DataSpec

COHORT_FILE = "cohort.json"


def load_scans(spec: DataSpec, progress: bool = True) -> list[Scan]:
    """The labelled scans a :class:`~ct3d.scenario.DataSpec` points to."""
    if spec.source == "manifest":
        return read_manifest(spec.root, spec.labels)
    if spec.source == "synthetic":
        folder = ensure_synthetic(spec.root, dataclasses.asdict(spec.synthetic), progress)
        return discover_folder(folder, spec.labels)
    return discover_folder(spec.root, spec.labels)


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
