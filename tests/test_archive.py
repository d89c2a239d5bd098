"""Safe zip extraction: path traversal, links and other non-regular members, encrypted
members, zip bombs (too many members, too many bytes, members longer than declared),
corrupt archives; a refused or failed extraction writes nothing."""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from ct3d.fetch.archive import ArchiveError, copy_limited, safe_extract, top_level_entries

SCAN = b"\x1f\x8b" + bytes(range(256)) * 8


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    """Write ``members`` (name or ZipInfo, data) into a deflated zip at ``path``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    """A ZipInfo whose Unix mode (file type and permissions) is ``mode``."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def patch_central(data: bytes, name: str, file_size: int | None = None,
                  flag_bits: int | None = None) -> bytes:
    """Rewrite the central-directory record of member ``name`` (what readers trust)."""
    buf = bytearray(data)
    pos = buf.find(b"PK\x01\x02")
    while pos >= 0:
        n_name, n_extra, n_comment = struct.unpack_from("<HHH", buf, pos + 28)
        if buf[pos + 46: pos + 46 + n_name].decode() == name:
            if flag_bits is not None:
                struct.pack_into("<H", buf, pos + 8, flag_bits)
            if file_size is not None:
                struct.pack_into("<I", buf, pos + 24, file_size)
            return bytes(buf)
        pos = buf.find(b"PK\x01\x02", pos + 46 + n_name + n_extra + n_comment)
    raise KeyError(name)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """An existing destination folder holding one unrelated file."""
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    return tmp_path / "dest"


def test_extracts_into_place_and_leaves_no_staging(tmp_path: Path, dest: Path) -> None:
    archive = make_zip(tmp_path / "CT-0.zip", [
        ("CT-0/", b""), ("CT-0/study_0001.nii.gz", SCAN), ("CT-0/sub/study_0002.nii.gz", b"x" * 7),
        ("README.txt", b"hello")])
    assert top_level_entries(archive) == ["CT-0", "README.txt"]
    assert safe_extract(archive, dest) == [dest / "CT-0", dest / "README.txt"]
    assert snapshot(dest) == {
        "CT-0": None, "CT-0/study_0001.nii.gz": SCAN, "CT-0/sub": None,
        "CT-0/sub/study_0002.nii.gz": b"xxxxxxx", "README.txt": b"hello", "keep.txt": b"mine"}


def test_missing_destination_is_created(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", [("CT-0/a.nii.gz", SCAN)])
    safe_extract(archive, tmp_path / "new" / "dest")
    assert (tmp_path / "new" / "dest" / "CT-0" / "a.nii.gz").read_bytes() == SCAN


@pytest.mark.parametrize(("member", "why"), [
    ("../evil", "'..' component"),
    ("CT-0/../../evil", "'..' component"),
    ("/etc/evil", "absolute path"),
    ("/tmp/evil", "absolute path"),
    ("C:/evil", "absolute path"),
    ("c:evil", "absolute path"),
    ("C:\\Windows\\evil", "backslash"),
    ("CT-0\\..\\..\\evil", "backslash"),
])
def test_escaping_member_names_are_refused_before_anything_is_written(
    tmp_path: Path, member: str, why: str
) -> None:
    archive = make_zip(tmp_path / "bad.zip", [("CT-0/ok.nii.gz", SCAN), (member, b"pwned")])
    before = snapshot(tmp_path)
    with pytest.raises(ArchiveError) as err:
        safe_extract(archive, tmp_path / "dest")
    message = str(err.value)
    assert "bad.zip" in message and repr(member) in message and why in message
    assert "nothing was extracted" in message
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/evil").exists() or Path("/tmp/evil").read_bytes() != b"pwned"


@pytest.mark.parametrize(("mode", "why"), [
    (stat.S_IFLNK | 0o777, "symbolic link"),
    (stat.S_IFIFO | 0o644, "not a regular file or folder (file type 0o10000)"),
    (stat.S_IFCHR | 0o644, "not a regular file or folder (file type 0o20000)"),
    (stat.S_IFBLK | 0o644, "not a regular file or folder (file type 0o60000)"),
    (stat.S_IFSOCK | 0o644, "not a regular file or folder (file type 0o140000)"),
])
def test_links_and_special_files_are_refused(tmp_path: Path, dest: Path, mode: int,
                                             why: str) -> None:
    archive = make_zip(tmp_path / "links.zip", [
        ("CT-0/ok.nii.gz", SCAN), (with_mode("CT-0/passwd", mode), b"/etc/passwd")])
    with pytest.raises(ArchiveError, match=r"links\.zip: unsafe member 'CT-0/passwd': "
                                           + re.escape(why)):
        safe_extract(archive, dest)
    assert snapshot(dest) == {"keep.txt": b"mine"}


def test_regular_files_with_unix_modes_are_fine(tmp_path: Path, dest: Path) -> None:
    archive = make_zip(tmp_path / "modes.zip", [
        (with_mode("CT-0/", stat.S_IFDIR | 0o755), b""),
        (with_mode("CT-0/a.nii.gz", stat.S_IFREG | 0o4755), SCAN)])
    safe_extract(archive, dest)
    assert (dest / "CT-0" / "a.nii.gz").read_bytes() == SCAN
    assert not (dest / "CT-0" / "a.nii.gz").stat().st_mode & stat.S_ISUID


def test_encrypted_member_is_refused(tmp_path: Path, dest: Path) -> None:
    plain = make_zip(tmp_path / "plain.zip", [("CT-0/a.nii.gz", SCAN)]).read_bytes()
    (tmp_path / "enc.zip").write_bytes(patch_central(plain, "CT-0/a.nii.gz", flag_bits=1))
    with pytest.raises(ArchiveError, match=r"enc\.zip: unsafe member 'CT-0/a\.nii\.gz': encrypted"):
        safe_extract(tmp_path / "enc.zip", dest)
    assert snapshot(dest) == {"keep.txt": b"mine"}


def test_too_many_members_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_zip(tmp_path / "many.zip", [(f"CT-0/{i}.nii.gz", b"x") for i in range(4)])
    with pytest.raises(ArchiveError, match=r"many\.zip: 4 members, more than the limit of 3"):
        safe_extract(archive, dest, max_members=3)
    assert snapshot(dest) == {"keep.txt": b"mine"}
    assert len(safe_extract(archive, dest, max_members=4)) == 1


def test_too_many_declared_bytes_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", [("a", b"\0" * 600), ("b", b"\0" * 600)])
    assert archive.stat().st_size < 600
    with pytest.raises(ArchiveError, match=r"bomb\.zip: members declare 1,200 bytes "
                                           r"uncompressed, more than the limit of 1,000"):
        safe_extract(archive, dest, max_total_bytes=1000)
    assert snapshot(dest) == {"keep.txt": b"mine"}


def test_member_longer_than_declared_is_refused_and_nothing_is_left(
    tmp_path: Path, dest: Path
) -> None:
    honest = make_zip(tmp_path / "honest.zip", [
        ("CT-0/a.nii.gz", SCAN), ("CT-0/b.nii.gz", b"\0" * 50_000)]).read_bytes()
    (tmp_path / "liar.zip").write_bytes(patch_central(honest, "CT-0/b.nii.gz", file_size=100))
    with pytest.raises(ArchiveError, match=r"liar\.zip: cannot extract member 'CT-0/b\.nii\.gz'"
                                           r".*nothing was extracted"):
        safe_extract(tmp_path / "liar.zip", dest, max_total_bytes=5000)
    assert snapshot(dest) == {"keep.txt": b"mine"}


def test_copy_stops_one_byte_past_the_declared_size() -> None:
    src, out = io.BytesIO(b"y" * 50), io.BytesIO()
    with pytest.raises(OSError, match="more than the 10 bytes it declares"):
        copy_limited(src, out, 10)
    assert src.tell() == 11 and len(out.getvalue()) <= 10
    assert copy_limited(io.BytesIO(b"y" * 10), io.BytesIO(), 10) == 10
    assert copy_limited(io.BytesIO(b"y" * 9), io.BytesIO(), 10) == 9


def test_corrupt_member_midway_rolls_back(tmp_path: Path, dest: Path) -> None:
    data = bytearray(make_zip(tmp_path / "ok.zip", [
        ("CT-0/a.nii.gz", SCAN), ("CT-0/b.nii.gz", b"payload-" * 100)]).read_bytes())
    where = data.find(b"CT-0/b.nii.gz") + len("CT-0/b.nii.gz") + 5
    data[where] ^= 0xFF
    (tmp_path / "crc.zip").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"crc\.zip: cannot extract member 'CT-0/b\.nii\.gz'"):
        safe_extract(tmp_path / "crc.zip", dest)
    assert snapshot(dest) == {"keep.txt": b"mine"}


@pytest.mark.parametrize("content", [b"", b"not a zip at all", "truncated"])
def test_unreadable_archive_is_refused(tmp_path: Path, content: bytes | str) -> None:
    if content == "truncated":
        full = make_zip(tmp_path / "full.zip", [("CT-0/a.nii.gz", SCAN)]).read_bytes()
        content = full[: len(full) - 30]
    (tmp_path / "broken.zip").write_bytes(content)
    with pytest.raises(ArchiveError, match=r"broken\.zip: not a valid zip archive"):
        safe_extract(tmp_path / "broken.zip", tmp_path / "dest")
    with pytest.raises(ArchiveError, match=r"broken\.zip: not a valid zip archive"):
        top_level_entries(tmp_path / "broken.zip")
    assert not (tmp_path / "dest").exists()


def test_duplicate_member_is_refused(tmp_path: Path, dest: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        archive = make_zip(tmp_path / "dup.zip", [("CT-0/a.nii.gz", b"1"), ("CT-0/a.nii.gz", b"2")])
    with pytest.raises(ArchiveError, match=r"dup\.zip: member 'CT-0/a\.nii\.gz' is listed twice"):
        safe_extract(archive, dest)
    assert snapshot(dest) == {"keep.txt": b"mine"}


def test_existing_entry_is_not_overwritten(tmp_path: Path, dest: Path) -> None:
    (dest / "CT-0").mkdir()
    (dest / "CT-0" / "old.nii.gz").write_bytes(b"old")
    archive = make_zip(tmp_path / "a.zip", [("CT-0/a.nii.gz", SCAN), ("notes.txt", b"n")])
    with pytest.raises(ArchiveError, match=r"a\.zip: CT-0 already exist\(s\) in .*dest"):
        safe_extract(archive, dest)
    assert snapshot(dest) == {"CT-0": None, "CT-0/old.nii.gz": b"old", "keep.txt": b"mine"}


def test_symlinked_destination_entry_is_not_followed(tmp_path: Path, dest: Path) -> None:
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", dest / "CT-0")
    archive = make_zip(tmp_path / "a.zip", [("CT-0/a.nii.gz", SCAN)])
    with pytest.raises(ArchiveError, match="already exist"):
        safe_extract(archive, dest)
    assert list((tmp_path / "outside").iterdir()) == []
