"""Data sources of a Scenario: a synthetic cohort (generated on first use), a folder of
class sub-folders, or a manifest CSV.

Example::

    scans = load_scans(DataSpec(source="synthetic", root="data/demo"))  # generates it once
"""

from __future__ import annotations

import dataclasses
import json
import os
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
        ensure_synthetic(spec.root, dataclasses.asdict(spec.synthetic), progress)
    return discover_folder(spec.root, spec.labels)


def ensure_synthetic(
    root: str | os.PathLike[str], params: dict[str, Any], progress: bool = True
) -> Path:
    """Generate the synthetic cohort ``params`` describes into ``root``, unless it is there.

    ``root/cohort.json`` records the parameters of the cohort in a folder. A folder holding a
    different cohort, or other files, is never overwritten: that is an error.
    """
    from ct3d.data.synthetic import generate_cohort

    base = Path(root)
    record = base / COHORT_FILE
    if record.is_file():
        found = json.loads(record.read_text())
        if found == params:
            return base
        raise DatasetError(
            f"{base}: holds a different synthetic cohort ({found}); asked for {params}. "
            f"Choose another data.root or delete the folder."
        )
    if base.exists() and any(base.iterdir()):
        raise DatasetError(f"{base}: folder is not empty and has no {COHORT_FILE}; refusing "
                           f"to generate a synthetic cohort into it. Choose another data.root.")
    generate_cohort(base, params["normal"], params["abnormal"], seed=params["seed"],
                    preset=params["preset"], difficulty=params["difficulty"],
                    workers=min(4, os.cpu_count() or 1), progress=progress)
    record.write_text(json.dumps(params, indent=2))
    return base
