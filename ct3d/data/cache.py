"""On-disk cache of preprocessed scans: one memory-mappable ``.npy`` file per scan.

A cached file is keyed by the source file's identity (resolved path, size, modification
time) and by the exact preprocess chain, its resolved steps (every parameter, defaults filled
in), so changing a parameter recomputes and changing nothing reuses. Files are written under a
temporary name and renamed into place: a killed run never leaves a half-written file that a
later run would read as valid. Preprocessing runs in worker processes with a progress bar; a
scan that fails is reported with its reason and the others go on (``strict`` stops instead).

Example::

    cache = Cache("cache", ["hu_window", {"name": "resize", "params": {"shape": [64, 64, 48]}}])
    report = cache.fill(scans, workers=2)      # computes what is missing (0: one per core)
    report.paths[0]                            # cache/3f2a.../9c1d....npy
    np.load(report.paths[0], mmap_mode="r")    # float32 (64, 64, 48)
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import secrets
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ct3d.data.dataset import Scan
from ct3d.errors import Ct3dError
from ct3d.io import read_volume
from ct3d.preprocess import build_preprocess
from ct3d.registry import ResolvedStep, StepLike, resolve_step
from ct3d.version import __version__

CACHE_FORMAT = 1


class PreprocessError(Ct3dError, RuntimeError):
    """Scans that failed to preprocess when every scan was required (``strict``)."""


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def source_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a source's content cheaply: resolved path, size, mtime (ns).

    A folder (a DICOM series) is identified by every file in it, so adding, removing or
    rewriting one slice changes the identity.
    """
    p = Path(path).resolve()
    st = p.stat()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file())
        return {"path": str(p), "files": [source_identity(f) for f in files]}
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class FillReport:
    """Outcome of :meth:`Cache.fill`: a cache path per scan (``None`` where it failed)."""

    paths: list[Path | None]
    computed: int = 0
    reused: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line, plus one line per failed scan with its reason."""
        lines = [f"preprocess cache: {self.computed} computed, {self.reused} reused, "
                 f"{len(self.failures)} failed"]
        lines += [f"  failed: {reason}" for reason in self.failures.values()]
        return "\n".join(lines)


class Cache:
    """Preprocessed arrays of one chain under ``root/<chain key>/``.

    Args:
        root: cache folder (shared by all chains; each chain gets its own sub-folder).
        steps: the preprocess chain (resolved steps, or steps as a scenario writes them,
            resolved here once).
    """

    def __init__(self, root: str | os.PathLike[str], steps: Sequence[StepLike]) -> None:
        self.steps: list[ResolvedStep] = [resolve_step("preprocess", s) for s in steps]
        chain = [step.to_dict() for step in self.steps]
        key = _digest({"format": CACHE_FORMAT, "ct3d": __version__, "steps": chain})
        self.folder = Path(root) / key[:20]

    def path_for(self, source: str | os.PathLike[str]) -> Path:
        """Where the preprocessed array of ``source`` (as it is now) is stored."""
        return self.folder / f"{_digest(source_identity(source))[:32]}.npy"

    def fill(
        self, scans: Sequence[Scan], workers: int = 1, strict: bool = False,
        progress: bool = True,
    ) -> FillReport:
        """Preprocess every scan not yet cached (in ``workers`` processes, 0: one per CPU
        core); report the rest.

        A scan that cannot be read or preprocessed is listed in ``failures`` with its reason;
        with ``strict`` any failure raises :class:`PreprocessError` after the others finish.
        """
        workers = workers or os.cpu_count() or 1
        self.folder.mkdir(parents=True, exist_ok=True)
        chain = [step.to_dict() for step in self.steps]
        (self.folder / "chain.json").write_text(json.dumps(chain, indent=2))
        report = FillReport(paths=[None] * len(scans))
        todo = []
        for i, scan in enumerate(scans):
            try:
                target = self.path_for(scan.path)
            except OSError as exc:
                reason = "file not found" if isinstance(exc, FileNotFoundError) else exc.strerror
                report.failures[scan.path] = f"{scan.path}: {reason or exc}"
                continue
            if target.is_file():
                report.paths[i], report.reused = target, report.reused + 1
            else:
                todo.append((i, scan.path, target))
        bar = tqdm(total=len(todo), desc="preprocess", unit="scan", disable=not progress)
        for reason in report.failures.values() if progress else ():
            bar.write(f"ct3d: skipped {reason}")
        for i, path, error in self._compute(todo, workers):
            if error is None:
                report.paths[i], report.computed = path, report.computed + 1
            else:
                report.failures[scans[i].path] = error
                bar.write(f"ct3d: skipped {error}")
            bar.update()
        bar.close()
        if strict and report.failures:
            raise PreprocessError(report.summary())
        return report

    def _compute(
        self, todo: list[tuple[int, str, Path]], workers: int
    ) -> Iterator[tuple[int, Path | None, str | None]]:
        if workers <= 1 or len(todo) <= 1:
            for i, source, target in todo:
                yield (i, *_preprocess_one(self.steps, source, target))
            return
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [(i, pool.submit(_preprocess_one, self.steps, s, t)) for i, s, t in todo]
            for i, future in futures:
                yield (i, *future.result())


def _preprocess_one(
    steps: list[ResolvedStep], source: str, target: Path
) -> tuple[Path | None, str | None]:
    """Read, preprocess and atomically store one scan; (path, None) or (None, reason)."""
    try:
        array = build_preprocess(steps)(read_volume(source)).array
        write_array(target, array)
    except Exception as exc:  # noqa: BLE001 - any failure of one scan is reported, not fatal
        reason = str(exc)
        if source not in reason:
            reason = f"{source}: {type(exc).__name__}: {reason}"
        return None, reason
    return target, None


def write_array(path: Path, array: np.ndarray) -> None:
    """Save float32 little-endian C-order ``.npy`` atomically (temp name, then rename)."""
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp.npy")
    try:
        np.save(tmp, np.ascontiguousarray(array, dtype="<f4"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def npy_layout(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], int]:
    """Shape and data offset (header length in bytes) of a float32 ``.npy`` file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        if dtype != np.dtype("<f4") or fortran:
            raise PreprocessError(f"{path}: not a float32 C-order cache file ({dtype})")
        return tuple(shape), f.tell()
