"""Safe zip extraction: validate every member first, extract to a temporary folder, then
rename into place.

A member is refused, before anything is written, when its name is absolute (``/x``,
``C:x``), contains a backslash or a ``..`` component, or is listed twice; when it is a
symlink or any other non-regular, non-directory entry; when it is encrypted; or when the
archive holds more than ``max_members`` members or declares more than ``max_total_bytes``
uncompressed. While copying, no member may yield more bytes than it declares. On any error
the temporary folder is removed, so a failed extraction leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ct3d.errors import Ct3dError

__all__ = ["DEFAULT_MAX_MEMBERS", "DEFAULT_MAX_TOTAL_BYTES", "ArchiveError", "copy_limited",
           "safe_extract", "top_level_entries"]

DEFAULT_MAX_TOTAL_BYTES = 5 * 1024**3
DEFAULT_MAX_MEMBERS = 10_000
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(Ct3dError, ValueError):
    """An archive that is not a readable zip, or that holds an unsafe member."""


def top_level_entries(zip_path: str | os.PathLike[str]) -> list[str]:
    """Sorted first path components of the members of ``zip_path`` (nothing is extracted).

    Example:
        >>> import tempfile, zipfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with zipfile.ZipFile(Path(tmp, "a.zip"), "w") as z:
        ...         z.writestr("CT-0/study_0001.nii.gz", b"x")
        ...         z.writestr("README.txt", b"y")
        ...     top_level_entries(Path(tmp, "a.zip"))
        ['CT-0', 'README.txt']
    """
    with _open(Path(zip_path)) as zf:
        return sorted({name.split("/", 1)[0] for name in zf.namelist() if name.strip("/")})


def safe_extract(
    zip_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` safely; return the top-level paths created, sorted.

    Args:
        zip_path: the ``.zip`` file.
        dest: destination folder (created when missing). None of the archive's top-level
            entries may exist in it yet.
        max_total_bytes: the most uncompressed bytes the members may declare in total.
        max_members: the most members (files and folders) the archive may hold.

    Raises:
        ArchiveError: naming the archive and, where one is at fault, the member. Every
            member is checked before anything is written; a failure while copying removes
            the temporary folder (``dest/.extract-*``), so ``dest`` is left as it was.

    Example:
        >>> import tempfile, zipfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with zipfile.ZipFile(Path(tmp, "a.zip"), "w") as z:
        ...         z.writestr("CT-0/study_0001.nii.gz", b"scan")
        ...     [p.name for p in safe_extract(Path(tmp, "a.zip"), Path(tmp, "out"))]
        ['CT-0']
    """
    archive, target = Path(zip_path), Path(dest)
    with _open(archive) as zf:
        members = _checked_members(zf, archive, max_total_bytes, max_members)
        top = sorted({rel.parts[0] for rel, _ in members})
        clash = [name for name in top if os.path.lexists(target / name)]
        if clash:
            raise ArchiveError(f"{archive}: {', '.join(clash)} already exist(s) in {target}; "
                               "remove it first to extract again")
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
        try:
            for rel, info in members:
                _extract_member(zf, info, staging / rel, archive)
            for name in top:
                os.replace(staging / name, target / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [target / name for name in top]


def _open(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ArchiveError(f"{archive}: not a valid zip archive ({exc})") from None
    except OSError as exc:
        raise ArchiveError(f"{archive}: cannot read ({exc})") from None


def _checked_members(
    zf: zipfile.ZipFile, archive: Path, max_total_bytes: int, max_members: int
) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    infos = zf.infolist()
    if len(infos) > max_members:
        raise ArchiveError(f"{archive}: {len(infos)} members, more than the limit of "
                           f"{max_members} (zip bomb?)")
    total = sum(info.file_size for info in infos)
    if total > max_total_bytes:
        raise ArchiveError(f"{archive}: members declare {total:,} bytes uncompressed, more than "
                           f"the limit of {max_total_bytes:,} (zip bomb?)")
    members, seen = [], set()
    for info in infos:
        rel = _member_path(info, archive)
        if rel is None:
            continue
        if rel in seen:
            raise ArchiveError(f"{archive}: member {info.filename!r} is listed twice")
        seen.add(rel)
        members.append((rel, info))
    return members


def _member_path(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath | None:
    """The member's safe relative path (None for the root folder entry), or raise."""
    name = info.filename

    def refuse(why: str) -> ArchiveError:
        return ArchiveError(f"{archive}: unsafe member {name!r}: {why}; nothing was extracted")

    if "\\" in name:
        raise refuse("backslash in the name (a Windows path)")
    if name.startswith("/") or _DRIVE.match(name):
        raise refuse("absolute path")
    rel = PurePosixPath(name)
    if ".." in rel.parts:
        raise refuse("'..' component (would escape the destination)")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise refuse("symbolic link")
    if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise refuse(f"not a regular file or folder (file type {kind:#o})")
    if info.flag_bits & 0x1:
        raise refuse("encrypted")
    return rel if rel.parts else None


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, archive: Path) -> None:
    try:
        if info.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(path, "xb") as dst:
            copied = copy_limited(src, dst, info.file_size)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise ArchiveError(f"{archive}: cannot extract member {info.filename!r} ({exc}); "
                           "nothing was extracted") from None
    if copied != info.file_size:
        raise ArchiveError(f"{archive}: member {info.filename!r} holds {copied:,} bytes, not the "
                           f"{info.file_size:,} it declares; nothing was extracted")


def copy_limited(src: BinaryIO, dst: BinaryIO, limit: int) -> int:
    """Copy ``src`` to ``dst``; raise :class:`OSError` if ``src`` holds more than ``limit``
    bytes (at most ``limit + 1`` are read). Return the number of bytes copied.

    Example:
        >>> import io
        >>> out = io.BytesIO()
        >>> copy_limited(io.BytesIO(b"abc"), out, 3), out.getvalue()
        (3, b'abc')
    """
    copied = 0
    while chunk := src.read(min(_CHUNK, limit - copied + 1)):
        copied += len(chunk)
        if copied > limit:
            raise OSError(f"decompresses to more than the {limit:,} bytes it declares")
        dst.write(chunk)
    return copied
