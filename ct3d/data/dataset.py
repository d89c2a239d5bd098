"""Datasets: find scans (class sub-folders or a manifest CSV) and label them.

A scan is a file :func:`ct3d.io.read_volume` reads (NIfTI, NRRD or MetaImage: see
:data:`SCAN_SUFFIXES`) or a folder holding one DICOM series (its slices, one file each).

Example::

    scans = discover_folder("data/mosmed", {"normal": ["CT-0"], "abnormal": ["CT-23"]})
    scans[0]  # Scan(path='data/mosmed/CT-0/study_0001.nii.gz', label=0, cls='normal',
              #      patient='study_0001')
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ct3d.errors import Ct3dError
from ct3d.io import SCAN_SUFFIXES, is_series_folder

MASK_SUFFIX = "_mask"


class DatasetError(Ct3dError, ValueError):
    """A dataset that cannot be used as asked (missing folder, empty class, bad manifest)."""


@dataclass(frozen=True)
class Scan:
    """One scan: its file, integer label, class name and patient/study id (split unit)."""

    path: str
    label: int
    cls: str
    patient: str


def scan_stem(path: str | os.PathLike[str]) -> str:
    """File name without its scan suffix (any of :data:`SCAN_SUFFIXES`, in any case).

    Example:
        >>> scan_stem("CT-0/study_0001.nii.gz"), scan_stem("S.NRRD"), scan_stem("patient_07")
        ('study_0001', 'S', 'patient_07')
    """
    name = Path(path).name
    for suffix in SCAN_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_scan_file(path: Path) -> bool:
    """A scan file (NIfTI, NRRD, MetaImage) that is not a lesion mask (``*_mask.nii.gz``,
    ``*_mask.nrrd``, ...)."""
    return (path.is_file() and path.name.lower().endswith(SCAN_SUFFIXES)
            and not scan_stem(path).endswith(MASK_SUFFIX))


def is_scan(path: Path) -> bool:
    """A scan file (see :func:`is_scan_file`) or a folder holding a DICOM series.

    Example:
        >>> is_scan(Path("study_0001_mask.nii.gz")), is_scan(Path("no/such/folder"))
        (False, False)
    """
    return is_scan_file(path) or is_series_folder(path)


def discover_folder(root: str | os.PathLike[str], labels: dict[str, list[str]]) -> list[Scan]:
    """Scans under ``root/<folder>/`` for every folder of every class in ``labels``.

    ``labels`` maps class name -> folder names; the first class gets label 0. A scan is a
    NIfTI, NRRD or MetaImage file (its patient id is the name without the suffix) or a
    sub-folder holding DICOM files (one series; its patient id is the sub-folder's name).
    Masks (``*_mask.nii.gz``, ``*_mask.nrrd``, ...), detached data files (``.raw``) and other
    sub-folders are skipped. Scans are sorted by class, then name.
    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetError(f"{base}: data folder not found")
    present = sorted(p.name for p in base.iterdir() if p.is_dir())
    scans = []
    for label, (cls, folders) in enumerate(labels.items()):
        for folder in folders:
            if not (base / folder).is_dir():
                raise DatasetError(
                    f"{base}: no sub-folder {folder!r} for class {cls!r}; "
                    f"sub-folders found: {', '.join(present) or '(none)'}"
                )
            files = sorted(p for p in (base / folder).iterdir() if is_scan(p))
            scans += [Scan(str(p), label, cls, scan_stem(p)) for p in files]
    _check_classes(scans, labels, str(base))
    return scans


def read_manifest(path: str | os.PathLike[str], labels: dict[str, list[str]]) -> list[Scan]:
    """Scans listed in a CSV with columns ``path,label[,patient]``.

    ``path`` is a scan file or a DICOM series folder; relative paths are relative to the
    CSV's folder. ``label`` is a class name or one of the names listed for a class in
    ``labels``; ``patient`` defaults to the file's stem (a series folder's name).
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: manifest not found")
    lookup = {name: (i, cls) for i, (cls, names) in enumerate(labels.items())
              for name in (cls, *names)}
    scans = []
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}; "
                               f"found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            if row["label"] not in lookup:
                raise DatasetError(f"{csv_path}, line {line}: unknown label {row['label']!r}; "
                                   f"known: {', '.join(lookup)}")
            label, cls = lookup[row["label"]]
            scan_path = csv_path.parent / row["path"]
            patient = (row.get("patient") or "").strip() or scan_stem(scan_path)
            scans.append(Scan(str(scan_path), label, cls, patient))
    _check_classes(scans, labels, str(csv_path))
    return scans


def _check_classes(scans: list[Scan], labels: dict[str, list[str]], where: str) -> None:
    counts = {cls: sum(s.cls == cls for s in scans) for cls in labels}
    empty = [cls for cls, n in counts.items() if n == 0]
    if empty:
        raise DatasetError(f"{where}: no scans for class(es) {', '.join(empty)} "
                           f"(counts: {counts})")
    clash = {}
    for s in scans:
        if clash.setdefault(s.patient, s.cls) != s.cls:
            raise DatasetError(f"{where}: patient {s.patient!r} has scans in classes "
                               f"{clash[s.patient]!r} and {s.cls!r}")
