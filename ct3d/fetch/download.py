"""Resumable HTTP downloads, checked by size and SHA-256, and a lock file of what was fetched.

:func:`download` streams to ``FILE.part`` with a progress bar, hashing as it goes. After a
cut connection, a timeout, an HTTP 429 or 5xx it waits (exponential backoff) and asks for
the rest with ``Range: bytes=N-``; a server that answers ``200`` instead is read from the
start again, overwriting the part. The file is renamed into place only once its size and
hash are checked. A lock file (``{file: {size, sha256, url}}``, JSON) records the first
good download of each file; later downloads and local copies must match it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ct3d import atomic
from ct3d.errors import Ct3dError

__all__ = ["DownloadError", "FileRecord", "check_lock", "download", "file_record",
           "forget_lock", "read_lock", "record_lock"]

_CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")


class DownloadError(Ct3dError, RuntimeError):
    """A download that failed for good, or a file that does not match what was expected."""


@dataclass(frozen=True)
class FileRecord:
    """What a lock file records about one file: its size, SHA-256 (hex) and source URL."""

    size: int
    sha256: str
    url: str


def file_record(path: str | os.PathLike[str], url: str) -> FileRecord:
    """Size and SHA-256 of an existing file, with ``url`` as its source.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = Path(tmp, "a.bin").write_bytes(b"abc")
        ...     file_record(Path(tmp, "a.bin"), "local").sha256[:16]
        'ba7816bf8f01cfea'
    """
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileRecord(size, digest.hexdigest(), url)


def read_lock(lock: str | os.PathLike[str]) -> dict[str, FileRecord]:
    """The records of a lock file by file name; ``{}`` when the file does not exist yet.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     record_lock(Path(tmp, "x.lock.json"), "a.zip", FileRecord(3, "ab12", "http://h/a"))
        ...     read_lock(Path(tmp, "x.lock.json"))
        {'a.zip': FileRecord(size=3, sha256='ab12', url='http://h/a')}
    """
    path = Path(lock)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {name: FileRecord(int(e["size"]), str(e["sha256"]), str(e["url"]))
                for name, e in data.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DownloadError(f"{path}: not a valid lock file ({exc!r}); fix or delete it") from None


def record_lock(lock: str | os.PathLike[str], name: str, record: FileRecord) -> None:
    """Add or replace the record of ``name`` in the lock file (written atomically)."""
    path = Path(lock)
    records = {n: asdict(r) for n, r in read_lock(path).items()} | {name: asdict(record)}
    _write_json(path, records)


def forget_lock(lock: str | os.PathLike[str], name: str) -> None:
    """Drop the record of ``name`` from the lock file, if it has one."""
    path = Path(lock)
    records = read_lock(path)
    if records.pop(name, None) is not None:
        _write_json(path, {n: asdict(r) for n, r in records.items()})


def check_lock(lock: str | os.PathLike[str], name: str, record: FileRecord) -> None:
    """Raise :class:`DownloadError` if the lock file records ``name`` with another size or hash.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     lock = Path(tmp, "x.lock.json")
        ...     record_lock(lock, "a.zip", FileRecord(3, "ab12", "http://h/a"))
        ...     check_lock(lock, "a.zip", FileRecord(3, "ab12", "file:///mirror/a.zip"))
        ...     check_lock(lock, "a.zip", FileRecord(3, "ffff", "http://h/a"))
        Traceback (most recent call last):
        ...
        ct3d.fetch.download.DownloadError: a.zip: 3 bytes, SHA-256 ffff does not match ...
    """
    known = read_lock(lock).get(name)
    if known is not None and (known.size, known.sha256) != (record.size, record.sha256):
        raise DownloadError(
            f"{name}: {record.size:,} bytes, SHA-256 {record.sha256} does not match the lock file "
            f"{lock}, which records {known.size:,} bytes, SHA-256 {known.sha256} (from "
            f"{known.url}); the file changed. If the new file is right, delete its entry from "
            "the lock file")


def download(
    url: str,
    dest_file: str | os.PathLike[str],
    expected_size: int | None = None,
    lock: str | os.PathLike[str] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> FileRecord:
    """Download ``url`` to ``dest_file``, resuming ``dest_file.part`` if there is one.

    Args:
        url: an ``http://`` or ``https://`` URL.
        dest_file: where the file goes (missing folders are created); it is written as
            ``<dest_file>.part`` and renamed into place once complete and checked (an
            existing file is replaced).
        expected_size: the file's size in bytes; ``None``: the lock file's record, else the
            server's ``Content-Length``.
        lock: lock file to check against (same size and SHA-256 as recorded under the file's
            name) and to record the download in; ``None``: no lock file.
        retries: further attempts after a transient error (cut or refused connection,
            timeout, HTTP 429 or 5xx); each resumes where the last stopped.
        backoff, max_backoff: seconds to wait before retry ``n`` (1, 2, ...):
            ``min(max_backoff, backoff * 2 ** (n - 1))``.
        timeout: seconds to wait for the server to connect or send data.
        progress: show a progress bar (bytes) on stderr.

    Raises:
        DownloadError: an HTTP error other than 429/5xx, still failing after ``retries``
            retries (the part is kept for the next run to resume), or a wrong size or
            lock-file mismatch (the part is deleted); the message names the file.

    Example::

        rec = download("https://example.org/CT-0.zip", "data/CT-0.zip", 1_065_471_431,
                       lock="data/mosmed.lock.json")
        rec.sha256  # '3f5c...'
    """
    dest = Path(dest_file)
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"{dest.name}: cannot download {url!r}: not an http(s) URL")
    dest.parent.mkdir(parents=True, exist_ok=True)
    known = read_lock(lock).get(dest.name) if lock is not None else None
    source = "the expected size"
    if expected_size is None and known is not None:
        expected_size, source = known.size, f"the lock file {lock}"
    part = _Part(dest.with_name(dest.name + ".part"))
    if expected_size is not None and part.size > expected_size:
        part.reset()
    failures = 0
    while True:
        try:
            _attempt(url, part, expected_size, source, timeout, progress, dest.name)
            break
        except _Retry as exc:
            failures += 1
            if failures > retries:
                raise DownloadError(
                    f"{dest.name}: giving up on {url} after {failures} attempts ({exc}); "
                    f"{part.size:,} bytes kept in {part.path}: run again to resume") from None
            delay = min(max_backoff, backoff * 2 ** (failures - 1))
            _say(f"{dest.name}: {exc}; retry {failures}/{retries} in {delay:g} s")
            time.sleep(delay)
    record = FileRecord(part.size, part.digest.hexdigest(), url)
    try:
        if expected_size is not None and record.size != expected_size:
            raise DownloadError(f"{dest.name}: downloaded {record.size:,} bytes, expected "
                                f"{expected_size:,} ({source}); removed the download")
        if lock is not None:
            check_lock(lock, dest.name, record)
    except DownloadError:
        part.path.unlink()
        raise
    os.replace(part.path, dest)
    if lock is not None:
        record_lock(lock, dest.name, record)
    return record


class _Retry(Exception):
    """A transient failure: wait, then try again from what is on disk."""


class _Part:
    """The ``.part`` file: its size and the SHA-256 of its bytes so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size, self.digest = 0, hashlib.sha256()
        if path.exists():
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    self.digest.update(chunk)
                    self.size += len(chunk)

    def reset(self) -> None:
        self.path.write_bytes(b"")
        self.size, self.digest = 0, hashlib.sha256()


def _attempt(url: str, part: _Part, expected: int | None, source: str, timeout: float,
             progress: bool, name: str) -> None:
    """One request: append what the server sends to ``part``; raise :class:`_Retry` when
    the transfer stops early or fails transiently."""
    if expected is not None and part.size == expected:
        return
    headers = {"User-Agent": "ct3d-fetch", "Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and part.size:
                total = _UNSATISFIED_RANGE.fullmatch(exc.headers.get("Content-Range", ""))
                if total and int(total[1]) == part.size:
                    return
                at = part.size
                part.reset()
                raise _Retry(f"the server cannot resume at byte {at:,}; starting over") from None
            if exc.code == 429 or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
            raise DownloadError(f"{name}: {url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Retry(_reason(exc)) from None
    with response:
        total = _total(response, part, name)
        if expected is not None and total is not None and total != expected:
            part.path.unlink(missing_ok=True)
            raise DownloadError(f"{name}: the server reports {total:,} bytes, expected "
                                f"{expected:,} ({source}); not downloaded")
        with open(part.path, "ab") as out, tqdm(
            total=total, initial=part.size, unit="B", unit_scale=True, unit_divisor=1024,
            desc=name, disable=not progress, file=sys.stderr,
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Retry(_reason(exc)) from None
                if not chunk:
                    break
                out.write(chunk)
                part.digest.update(chunk)
                part.size += len(chunk)
                bar.update(len(chunk))
    if total is not None and part.size < total:
        raise _Retry(f"connection closed after {part.size:,} of {total:,} bytes")


def _total(response: http.client.HTTPResponse, part: _Part, name: str) -> int | None:
    """The full file size the response announces; restart ``part`` when the server does
    not resume where it ends."""
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not match or int(match[1]) != part.size:
            at, got = part.size, response.headers.get("Content-Range")
            part.reset()
            raise _Retry(f"asked for bytes {at:,}- and got Content-Range {got!r}; starting over")
        return None if match[2] == "*" else int(match[2])
    if part.size:
        _say(f"{name}: the server ignored the Range request; downloading from the start")
        part.reset()
    length = response.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(
        reason)


def _write_json(path: Path, data: dict) -> None:
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _say(message: str) -> None:
    tqdm.write(message, file=sys.stderr)
