"""MosMedData chest CT: download the published subsets, or check a local copy, and say how
to point a scenario at it.

The Keras 3D image-classification example publishes subsets of MosMedData as zips
(``CT-0.zip``: normal lung tissue; ``CT-23.zip``: moderate and severe findings, MosMed
categories CT-2 and CT-3; also ``CT-1.zip`` and ``CT-2.zip``), each holding one folder of
``.nii.gz`` studies. The full MosMedData set (1,110 studies) has ``studies/CT-0`` ..
``studies/CT-4`` and a study registry. Both layouts are folders of class sub-folders, which
is what ``data.source: folder`` reads.

Files under ``dest``: ``CT-0.zip`` (kept, so a deleted folder can be extracted again),
``CT-0/``, ``mosmed.lock.json`` (size, SHA-256 and URL of each zip) and
``MosMedData-LICENCE.txt`` (the licence notice, shown on first fetch).
"""

from __future__ import annotations

import contextlib
import csv
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ct3d.data.dataset import is_scan_file, scan_stem
from ct3d.errors import Ct3dError
from ct3d.fetch.archive import (
    DEFAULT_MAX_TOTAL_BYTES,
    ArchiveError,
    safe_extract,
    top_level_entries,
)
from ct3d.fetch.download import (
    check_lock,
    download,
    file_record,
    forget_lock,
    read_lock,
    record_lock,
)

__all__ = ["CATEGORIES", "DEFAULT_BASE_URL", "DEFAULT_SUBSETS", "LICENCE", "SUBSET_SIZES",
           "FetchError", "MosmedData", "fetch_mosmed", "inspect_mosmed",
           "subset_source"]

DEFAULT_BASE_URL = ("https://github.com/hasibzunair/3D-image-classification-tutorial/"
                    "releases/download/v0.2/")
SUBSET_SIZES: dict[str, int | None] = {
    "CT-0": 1_065_471_431, "CT-23": 1_045_162_547, "CT-1": None, "CT-2": None}
"""Published subsets and their sizes in bytes at :data:`DEFAULT_BASE_URL` (None: unknown)."""
DEFAULT_SUBSETS = ("CT-0", "CT-23")
CATEGORIES = ("CT-0", "CT-1", "CT-2", "CT-3", "CT-4")
"""MosMedData's severity categories, one folder each in the full set."""
LOCK_NAME = "mosmed.lock.json"
LICENCE_NAME = "MosMedData-LICENCE.txt"
LICENCE = """\
MosMedData: Chest CT Scans with COVID-19 Related Findings
Copyright (c) 2020 Research and Practical Clinical Center for Diagnostics and Telemedicine
Technologies of the Moscow Health Care Department (Morozov S.P., Andreychenko A.E., et al.,
arXiv:2005.06465).
Licence: Creative Commons Attribution-NonCommercial-NoDerivatives 3.0 (CC BY-NC-ND 3.0),
https://creativecommons.org/licenses/by-nc-nd/3.0/
  - attribute the MosMedData authors when you use or share the data;
  - no commercial use;
  - do not redistribute modified copies (derivatives) of the data.
"""
_CLASS_FOLDER = re.compile(r"CT-\d+")
_ID_COLUMNS = ("study_id", "study_file", "study", "id", "file", "filename")
_CATEGORY_COLUMNS = ("category", "class", "label", "ct_category")


class FetchError(Ct3dError, RuntimeError):
    """A MosMedData source that cannot be used as asked (unknown subset, wrong layout)."""


@dataclass(frozen=True)
class MosmedData:
    """A MosMedData folder as ct3d sees it.

    ``root``: the folder that holds the class folders (``data.root``); ``counts``: scans
    per class folder; ``registry``: the study registry CSV found beside it, if any;
    ``notes``: where the registry and the folders disagree.
    """

    root: Path
    counts: dict[str, int]
    registry: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def thesis_labels(self) -> dict[str, list[str]] | None:
        """``{"normal": ["CT-0"], "abnormal": ["CT-23"]}`` (CT-2 + CT-3 in the full set);
        None without CT-0 or an abnormal folder.

        Example:
            >>> MosmedData(Path("d"), {"CT-0": 5, "CT-2": 3, "CT-3": 1}).thesis_labels
            {'normal': ['CT-0'], 'abnormal': ['CT-2', 'CT-3']}
        """
        present = {name for name, n in self.counts.items() if n}
        if "CT-0" not in present:
            return None
        if "CT-23" in present:
            return {"normal": ["CT-0"], "abnormal": ["CT-23"]}
        if {"CT-2", "CT-3"} <= present:
            return {"normal": ["CT-0"], "abnormal": ["CT-2", "CT-3"]}
        return None

    @property
    def five_class_labels(self) -> dict[str, list[str]] | None:
        """``{"CT-0": ["CT-0"], ..., "CT-4": ["CT-4"]}``; None unless all five have scans."""
        if all(self.counts.get(c) for c in CATEGORIES):
            return {c: [c] for c in CATEGORIES}
        return None

    def overrides(self, labels: dict[str, list[str]]) -> str:
        """The ``--set`` flags that point a scenario at this folder with ``labels``.

        Example:
            >>> MosmedData(Path("/d"), {}).overrides({"a": ["CT-0"], "b": ["CT-1"]})
            "--set data.source=folder --set data.root=/d --set 'data.labels={a: [CT-0], b: [CT-1]}'"
        """
        flow = ", ".join(f"{cls}: [{', '.join(folders)}]" for cls, folders in labels.items())
        return " ".join(f"--set {shlex.quote(item)}" for item in (
            "data.source=folder", f"data.root={self.root}", f"data.labels={{{flow}}}"))

    def summary(self) -> str:
        """Scans per folder, registry check, ``data.root`` and ready-to-paste overrides."""
        lines = [f"MosMedData in {self.root}"]
        lines += [f"  {name:<6} {n:>5} scans" for name, n in self.counts.items()]
        if self.registry is not None:
            lines.append(f"registry {self.registry}: "
                         + (f"{len(self.notes)} disagreement(s) with the folders:" if self.notes
                            else "agrees with the folders"))
            lines += [f"  {note}" for note in self.notes[:20]]
            if len(self.notes) > 20:
                lines.append(f"  ... and {len(self.notes) - 20} more")
        lines += [f"data.root: {self.root}", "",
                  "Scenario overrides (paste after `ct3d train SCENARIO.yaml`):",
                  "(a) CT-0 (normal) vs CT-23 (abnormal), the thesis' map:"]
        thesis, five = self.thesis_labels, self.five_class_labels
        lines.append(f"  {self.overrides(thesis)}" if thesis else
                     "  not available: needs CT-0 and CT-23 (or CT-2 and CT-3) with scans")
        lines.append("(b) five classes CT-0 .. CT-4 (train.monitor must not be val_auc):")
        missing = [c for c in CATEGORIES if not self.counts.get(c)]
        lines.append(f"  {self.overrides(five)}" if five else
                     f"  not available: needs the full MosMedData; missing {', '.join(missing)}")
        return "\n".join(lines)


def subset_source(subset: str, base_url: str = DEFAULT_BASE_URL) -> tuple[str, int | None]:
    """URL and expected size of a published subset zip; the size is only known for the
    official release (a mirror is checked by its ``Content-Length`` and the lock file).

    Example:
        >>> subset_source("CT-0")[1], subset_source("CT-0", "http://mirror/mosmed")
        (1065471431, ('http://mirror/mosmed/CT-0.zip', None))
    """
    if subset not in SUBSET_SIZES:
        raise FetchError(f"unknown MosMedData subset {subset!r}; published: "
                         f"{', '.join(SUBSET_SIZES)}")
    official = base_url.rstrip("/") == DEFAULT_BASE_URL.rstrip("/")
    return f"{base_url.rstrip('/')}/{subset}.zip", SUBSET_SIZES[subset] if official else None


def inspect_mosmed(path: str | Path) -> MosmedData:
    """Find the class folders (``CT-<n>/``) at ``path``, in ``path/studies`` or one folder
    down, count their scans, and compare them with a ``*registry*.csv`` beside them.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     for name in ("CT-0/study_0001.nii.gz", "CT-23/study_0002.nii.gz"):
        ...         Path(tmp, name).parent.mkdir()
        ...         _ = Path(tmp, name).write_bytes(b"")
        ...     inspect_mosmed(tmp).counts
        {'CT-0': 1, 'CT-23': 1}
    """
    base = Path(path)
    if not base.is_dir():
        raise FetchError(f"{base}: folder not found")
    below = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    candidates = [base, base / "studies", *(p for d in below for p in (d, d / "studies"))]
    for root in candidates:
        counts = _count_scans(root)
        if any(counts.values()):
            registry = _find_registry(root)
            notes = _compare_registry(registry, root, counts) if registry else ()
            return MosmedData(root, counts, registry, tuple(notes))
    raise FetchError(f"{base}: no CT-<n>/ folders with .nii/.nii.gz scans, here, in studies/ or "
                     "one folder down")


def fetch_mosmed(
    dest: str | Path = "data/mosmed",
    subsets: list[str] | None = None,
    base_url: str = DEFAULT_BASE_URL,
    source: str | Path | None = None,
    progress: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
) -> Path:
    """Download (or take from ``source``) MosMedData, extract it safely; return ``data.root``.

    Args:
        dest: folder for the zips, the extracted class folders and the lock file.
        subsets: subset names, e.g. ``["CT-0", "CT-23"]``; None: CT-0 and CT-23 when
            downloading, every ``CT-*.zip`` found in a ``source`` folder.
        base_url: where the subset zips are (``<base_url>/CT-0.zip``); the default is the
            Keras example's release, whose sizes are known.
        source: instead of downloading: a zip, a folder of ``CT-*.zip`` (both extracted into
            ``dest``), or a folder that already holds the class folders (checked in place,
            nothing copied; ``dest`` is not used).
        progress: show progress bars.
        retries, backoff: see :func:`ct3d.fetch.download`.
        max_total_bytes: the most bytes one zip may extract to.

    A subset whose folder exists is skipped; a zip already in ``dest`` is checked against
    the lock file instead of downloaded again. The licence notice is printed the first time.

    Example::

        root = fetch_mosmed("data/mosmed")            # CT-0 and CT-23, about 2 GB
        Scenario().with_overrides({"data.source": "folder", "data.root": str(root)})
    """
    wanted = _check_subsets(subsets, downloading=source is None)
    target = Path(dest)
    if source is None:
        _show_licence(target)
        for subset in wanted or DEFAULT_SUBSETS:
            _fetch_subset(subset, target, base_url, progress, retries, backoff, max_total_bytes)
        _mark_licence(target)
        return inspect_mosmed(target).root
    src = Path(source)
    if not src.exists():
        raise FetchError(f"--from {src}: not found")
    zips = [src] if src.is_file() else sorted(src.glob("CT-*.zip"))
    if src.is_dir() and wanted and zips:
        missing = [f"{s}.zip" for s in wanted if not (src / f"{s}.zip").is_file()]
        if missing:
            raise FetchError(f"--from {src}: no {', '.join(missing)} there")
        zips = [src / f"{s}.zip" for s in wanted]
    if not zips:
        data = inspect_mosmed(src)
        absent = [s for s in wanted or () if not data.counts.get(s)]
        if absent:
            raise FetchError(f"--from {src}: no scans for {', '.join(absent)} in {data.root}; "
                             f"found {data.counts}")
        _show_licence(src)
        print(f"{data.root}: using the scans in place (nothing copied)")
        _mark_licence(src)
        return data.root
    _show_licence(target)
    for archive in zips:
        _extract_local(archive, target, max_total_bytes)
    _mark_licence(target)
    return inspect_mosmed(target).root


def _check_subsets(subsets: list[str] | None, downloading: bool) -> list[str] | None:
    for s in subsets or ():
        if downloading and s not in SUBSET_SIZES:
            raise FetchError(f"unknown MosMedData subset {s!r}; published: "
                             f"{', '.join(SUBSET_SIZES)}")
        if not _CLASS_FOLDER.fullmatch(s):
            raise FetchError(f"subset names look like CT-0 or CT-23, got {s!r}")
    return list(subsets) if subsets else None


def _fetch_subset(subset: str, dest: Path, base_url: str, progress: bool, retries: int,
                  backoff: float, max_total_bytes: int) -> None:
    folder, archive, lock = dest / subset, dest / f"{subset}.zip", dest / LOCK_NAME
    if folder.is_dir():
        print(f"{subset}: already extracted in {folder}; nothing to do")
        return
    url, size = subset_source(subset, base_url)
    if archive.exists():
        print(f"{archive.name}: already downloaded; checking it against {lock}")
        record = file_record(archive, url)
        check_lock(lock, archive.name, record)
        if archive.name not in read_lock(lock):
            record_lock(lock, archive.name, record)
        _extract(archive, dest, subset, max_total_bytes)
        return
    recorded = archive.name in read_lock(lock)
    download(url, archive, size, lock=lock, retries=retries, backoff=backoff, progress=progress)
    try:
        _extract(archive, dest, subset, max_total_bytes)
    except (ArchiveError, FetchError) as exc:
        archive.unlink()
        if not recorded:
            forget_lock(lock, archive.name)
        raise type(exc)(f"{exc}; removed the download, run again to fetch it anew") from None


def _extract_local(archive: Path, dest: Path, max_total_bytes: int) -> None:
    top = top_level_entries(archive)
    if top and all((dest / name).exists() for name in top):
        print(f"{archive.name}: already extracted in {dest}; nothing to do")
        return
    lock = dest / LOCK_NAME
    record = file_record(archive, archive.resolve().as_uri())
    check_lock(lock, archive.name, record)
    subset = archive.stem if _CLASS_FOLDER.fullmatch(archive.stem) else None
    _extract(archive, dest, subset, max_total_bytes)
    if archive.name not in read_lock(lock):
        record_lock(lock, archive.name, record)


def _extract(archive: Path, dest: Path, subset: str | None, max_total_bytes: int) -> None:
    top = top_level_entries(archive)
    if subset is not None and subset not in top:
        raise FetchError(f"{archive}: expected a {subset}/ folder inside, found "
                         f"{', '.join(top) or 'nothing'}")
    created = safe_extract(archive, dest, max_total_bytes=max_total_bytes)
    print(f"{archive.name}: extracted {', '.join(p.name + '/' for p in created)} into {dest}")


def _show_licence(folder: Path) -> None:
    """Print the licence notice unless ``folder`` already has its licence file."""
    if not (folder / LICENCE_NAME).exists():
        print(LICENCE)


def _mark_licence(folder: Path) -> None:
    """Put the licence file in ``folder`` (a read-only folder just shows the notice again)."""
    with contextlib.suppress(OSError):
        if not (folder / LICENCE_NAME).exists():
            (folder / LICENCE_NAME).write_text(LICENCE)


def _count_scans(root: Path) -> dict[str, int]:
    if not root.is_dir():
        return {}
    return {d.name: sum(is_scan_file(p) for p in d.iterdir())
            for d in sorted(root.iterdir()) if d.is_dir() and _CLASS_FOLDER.fullmatch(d.name)}


def _find_registry(root: Path) -> Path | None:
    for folder in (root, root.parent):
        found = sorted(p for p in folder.glob("*.csv") if "registry" in p.name.lower())
        if found:
            return found[0]
    return None


def _compare_registry(registry: Path, root: Path, counts: dict[str, int]) -> list[str]:
    """Where the registry's study -> category and the class folders disagree."""
    with registry.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        id_col = next((columns[c] for c in _ID_COLUMNS if c in columns), None)
        cat_col = next((columns[c] for c in _CATEGORY_COLUMNS if c in columns), None)
        if id_col is None or cat_col is None:
            return [f"no study-id and category columns (found {reader.fieldnames}); "
                    "not compared"]
        listed = {_study_id(row[id_col]): _category(row[cat_col]) for row in reader}
    on_disk = {scan_stem(p): folder for folder in counts
               for p in (root / folder).iterdir() if is_scan_file(p)}
    notes = [f"{study}: registry says {listed[study]}, file is in {folder}/"
             for study, folder in sorted(on_disk.items())
             if study in listed and listed[study] != folder]
    notes += [f"{study}: in the registry ({cat}) but no scan file"
              for study, cat in sorted(listed.items()) if study not in on_disk]
    notes += [f"{study}: scan in {folder}/ but not in the registry"
              for study, folder in sorted(on_disk.items()) if study not in listed]
    return notes


def _study_id(value: str) -> str:
    return scan_stem(PurePosixPath(value.strip().replace("\\", "/")).name)


def _category(value: str) -> str:
    match = re.fullmatch(r"(?:CT)?[-_ ]?(\d+)", value.strip(), re.IGNORECASE)
    return f"CT-{match[1]}" if match else value.strip()
