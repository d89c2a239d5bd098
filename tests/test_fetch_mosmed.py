"""``ct3d fetch mosmed``: download from a local HTTP server, idempotent re-runs, lock-file
checks, corrupt zips, ``--from`` (a zip, a folder of zips, a class-folder layout, the full
``studies/CT-0..CT-4`` layout with its registry), and the printed scenario overrides."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_download import FileServer

from ct3d.cli import main, parse_sets
from ct3d.data.dataset import discover_folder
from ct3d.fetch import ArchiveError, DownloadError, FetchError, fetch_mosmed, inspect_mosmed
from ct3d.fetch.mosmed import DEFAULT_BASE_URL, LICENCE_NAME, subset_source
from ct3d.io import write_volume
from ct3d.scenario import Scenario
from ct3d.volume import Volume

FAST = {"progress": False, "backoff": 0.001, "retries": 2}


def write_scans(folder: Path, first: int, count: int) -> list[Path]:
    """``count`` tiny synthetic NIfTI studies ``study_<n>.nii.gz`` (plus one mask)."""
    paths = []
    for n in range(first, first + count):
        arr = np.random.default_rng(n).integers(-1000, 400, (6, 5, 4)).astype(np.float32)
        vol = Volume(arr, (1.0, 1.0, 2.0), np.diag([1.0, 1.0, 2.0, 1.0]), f"study_{n:04d}")
        paths.append(write_volume(vol, folder / f"study_{n:04d}.nii.gz"))
    write_volume(Volume(np.zeros((6, 5, 4), np.float32), (1.0, 1.0, 2.0), np.eye(4), "m"),
                 folder / f"study_{first:04d}_mask.nii.gz")
    return paths


def subset_zip(path: Path, subset: str, first: int, count: int) -> Path:
    """A zip like the published ones: ``<subset>/study_<n>.nii.gz``."""
    scans = write_scans(path.parent / f".scans-{path.stem}" / subset, first, count)
    with zipfile.ZipFile(path, "w") as zf:
        for scan in sorted(scans[0].parent.iterdir()):
            zf.write(scan, f"{subset}/{scan.name}")
    return path


def set_flags(line: str) -> dict[str, str]:
    """The ``--set KEY=VALUE`` pairs of a printed override line, as ``parse_sets`` sees them."""
    words = shlex.split(line)
    return parse_sets([words[i + 1] for i, w in enumerate(words) if w == "--set"])


def override_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith("--set")]


def scans_per_class(flags: dict[str, str]) -> dict[str, int]:
    """Apply printed overrides to a default scenario, validate it and discover its scans."""
    s = Scenario().with_overrides(flags).validate()
    assert s.data.source == "folder"
    scans = discover_folder(s.data.root, s.data.labels)
    return {cls: sum(x.cls == cls for x in scans) for cls in s.data.labels}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    """A local server publishing CT-0.zip (3 studies) and CT-23.zip (2 studies)."""
    zips = tmp_path / "published"
    zips.mkdir()
    with FileServer() as srv:
        srv.files["CT-0.zip"] = subset_zip(zips / "CT-0.zip", "CT-0", 1, 3).read_bytes()
        srv.files["CT-23.zip"] = subset_zip(zips / "CT-23.zip", "CT-23", 4, 2).read_bytes()
        yield srv


def test_fetch_downloads_extracts_records_and_is_idempotent(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "mosmed"
    assert fetch_mosmed(dest, base_url=server.url, **FAST) == dest
    assert inspect_mosmed(dest).counts == {"CT-0": 3, "CT-23": 2}
    lock = json.loads((dest / "mosmed.lock.json").read_text())
    assert lock == {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                           "url": server.url + name} for name, data in server.files.items()}
    out = capsys.readouterr().out
    assert "CC BY-NC-ND 3.0" in out and "Diagnostics and Telemedicine" in out
    assert (dest / LICENCE_NAME).is_file()
    requests = len(server.log)
    assert requests == 2

    assert fetch_mosmed(dest, base_url=server.url, **FAST) == dest
    out = capsys.readouterr().out
    assert "CT-0: already extracted" in out and "CT-23: already extracted" in out
    assert "CC BY-NC-ND" not in out and len(server.log) == requests

    shutil.rmtree(dest / "CT-0")
    fetch_mosmed(dest, base_url=server.url, **FAST)
    assert "CT-0.zip: already downloaded" in capsys.readouterr().out
    assert len(server.log) == requests
    assert inspect_mosmed(dest).counts == {"CT-0": 3, "CT-23": 2}


def test_cut_download_resumes_then_extracts(server: FileServer, tmp_path: Path) -> None:
    server.plans["CT-0.zip"] = ["cut:700", "503"]
    fetch_mosmed(tmp_path / "m", subsets=["CT-0"], base_url=server.url, **FAST)
    assert [(s.range, s.status) for s in server.log] == [
        (None, 200), ("bytes=700-", 503), ("bytes=700-", 206)]
    assert server.sent("CT-0.zip") == len(server.files["CT-0.zip"])
    assert inspect_mosmed(tmp_path / "m").counts == {"CT-0": 3}


def test_corrupt_download_is_removed_and_nothing_looks_extracted(
    server: FileServer, tmp_path: Path
) -> None:
    server.files["CT-0.zip"] = b"PK\x03\x04" + np.random.default_rng(1).bytes(5000)
    dest = tmp_path / "m"
    with pytest.raises(ArchiveError, match=r"CT-0\.zip: not a valid zip archive .*removed the "
                                           r"download, run again"):
        fetch_mosmed(dest, subsets=["CT-0"], base_url=server.url, **FAST)
    assert sorted(p.name for p in dest.iterdir()) == ["mosmed.lock.json"]
    assert json.loads((dest / "mosmed.lock.json").read_text()) == {}


def test_zip_without_its_subset_folder_is_refused(server: FileServer, tmp_path: Path) -> None:
    server.files["CT-0.zip"] = subset_zip(tmp_path / "x.zip", "other", 1, 1).read_bytes()
    with pytest.raises(FetchError, match=r"CT-0\.zip: expected a CT-0/ folder inside, found "
                                         r"other; removed the download"):
        fetch_mosmed(tmp_path / "m", subsets=["CT-0"], base_url=server.url, **FAST)
    assert not (tmp_path / "m" / "other").exists() and not (tmp_path / "m" / "CT-0").exists()


def test_lock_mismatch_on_a_second_fetch(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    fetch_mosmed(dest, subsets=["CT-0"], base_url=server.url, **FAST)
    shutil.rmtree(dest / "CT-0")
    (dest / "CT-0.zip").unlink()
    changed = bytearray(server.files["CT-0.zip"])
    changed[200] ^= 0xFF
    server.files["CT-0.zip"] = bytes(changed)
    with pytest.raises(DownloadError, match=r"CT-0\.zip: [\d,]+ bytes, SHA-256 \w+ does not match "
                                            r"the lock file .*mosmed\.lock\.json"):
        fetch_mosmed(dest, subsets=["CT-0"], base_url=server.url, **FAST)
    assert not (dest / "CT-0").exists() and not (dest / "CT-0.zip").exists()
    assert not (dest / "CT-0.zip.part").exists()

    (dest / "CT-0.zip").write_bytes(changed)
    with pytest.raises(DownloadError, match=r"CT-0\.zip: .* does not match the lock file"):
        fetch_mosmed(dest, subsets=["CT-0"], base_url=server.url, **FAST)
    assert not (dest / "CT-0").exists()


def test_official_release_sizes_and_urls() -> None:
    assert subset_source("CT-0") == (DEFAULT_BASE_URL + "CT-0.zip", 1_065_471_431)
    assert subset_source("CT-23") == (DEFAULT_BASE_URL + "CT-23.zip", 1_045_162_547)
    assert subset_source("CT-1") == (DEFAULT_BASE_URL + "CT-1.zip", None)
    assert subset_source("CT-0", "http://mirror/x/") == ("http://mirror/x/CT-0.zip", None)
    assert DEFAULT_BASE_URL == ("https://github.com/hasibzunair/3D-image-classification-tutorial"
                                "/releases/download/v0.2/")
    with pytest.raises(FetchError, match="unknown MosMedData subset 'CT-4'; published: CT-0"):
        subset_source("CT-4")


def test_from_a_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = subset_zip(tmp_path / "CT-0.zip", "CT-0", 1, 2)
    dest = tmp_path / "m"
    assert fetch_mosmed(dest, source=archive, progress=False) == dest
    assert inspect_mosmed(dest).counts == {"CT-0": 2}
    record = json.loads((dest / "mosmed.lock.json").read_text())["CT-0.zip"]
    assert record["url"] == archive.resolve().as_uri()
    assert record["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert "CC BY-NC-ND 3.0" in capsys.readouterr().out
    fetch_mosmed(dest, source=archive, progress=False)
    assert "CT-0.zip: already extracted" in capsys.readouterr().out


def test_from_a_folder_of_zips(tmp_path: Path) -> None:
    src = tmp_path / "downloads"
    src.mkdir()
    subset_zip(src / "CT-0.zip", "CT-0", 1, 3)
    subset_zip(src / "CT-23.zip", "CT-23", 4, 2)
    fetch_mosmed(tmp_path / "a", subsets=["CT-23"], source=src, progress=False)
    assert inspect_mosmed(tmp_path / "a").counts == {"CT-23": 2}
    fetch_mosmed(tmp_path / "b", source=src, progress=False)
    assert inspect_mosmed(tmp_path / "b").counts == {"CT-0": 3, "CT-23": 2}
    with pytest.raises(FetchError, match=r"--from .*downloads: no CT-2\.zip there"):
        fetch_mosmed(tmp_path / "c", subsets=["CT-0", "CT-2"], source=src, progress=False)
    assert not (tmp_path / "c").exists()


def test_from_a_class_folder_layout_checks_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "MosMedData"
    write_scans(src / "CT-0", 1, 3)
    write_scans(src / "CT-23", 4, 2)
    dest = tmp_path / "unused"
    assert main(["fetch", "mosmed", "--from", str(src), "--dest", str(dest)]) == 0
    assert not dest.exists()
    out = capsys.readouterr().out
    assert "using the scans in place (nothing copied)" in out and "CC BY-NC-ND 3.0" in out
    assert f"data.root: {src}" in out
    assert "CT-0       3 scans" in out and "CT-23      2 scans" in out
    thesis, = override_lines(out)
    assert scans_per_class(set_flags(thesis)) == {"normal": 3, "abnormal": 2}
    assert "missing CT-1, CT-2, CT-3, CT-4" in out
    assert (src / LICENCE_NAME).is_file()
    assert main(["fetch", "mosmed", "--from", str(src), "--subsets", "CT-0,CT-4"]) == 2
    assert "ct3d: error: --from" in capsys.readouterr().err


def test_from_the_full_layout_with_its_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = tmp_path / "COVID19_1110"
    first, listed = 1, []
    for category, count in zip(("CT-0", "CT-1", "CT-2", "CT-3", "CT-4"), (3, 2, 2, 1, 1),
                               strict=True):
        for scan in write_scans(full / "studies" / category, first, count):
            listed.append((f"studies/{category}/{scan.name}", category))
        first += count
    listed[4] = (listed[4][0], "CT-2")          # study_0005 sits in CT-1/
    listed[-1] = ("studies/CT-4/study_0999.nii.gz", "CT-4")   # study_0009 is not listed
    (full / "dataset_registry.csv").write_text(
        "study_file,category\n" + "".join(f"{f},{c}\n" for f, c in listed))
    root = fetch_mosmed(tmp_path / "unused", source=full, progress=False)
    assert root == full / "studies"
    data = inspect_mosmed(root)
    assert data.registry == full / "dataset_registry.csv"
    assert data.notes == ("study_0005: registry says CT-2, file is in CT-1/",
                          "study_0999: in the registry (CT-4) but no scan file",
                          "study_0009: scan in CT-4/ but not in the registry")
    assert data.thesis_labels == {"normal": ["CT-0"], "abnormal": ["CT-2", "CT-3"]}
    assert data.five_class_labels == {c: [c] for c in ("CT-0", "CT-1", "CT-2", "CT-3", "CT-4")}
    capsys.readouterr()
    assert main(["fetch", "mosmed", "--from", str(full)]) == 0
    out = capsys.readouterr().out
    assert "3 disagreement(s) with the folders" in out and "study_0005: registry says" in out
    thesis, five = override_lines(out)
    assert scans_per_class(set_flags(thesis)) == {"normal": 3, "abnormal": 3}
    assert scans_per_class(set_flags(five)) == {
        "CT-0": 3, "CT-1": 2, "CT-2": 2, "CT-3": 1, "CT-4": 1}


def test_registry_with_unknown_columns_is_reported_not_fatal(tmp_path: Path) -> None:
    write_scans(tmp_path / "studies" / "CT-0", 1, 1)
    (tmp_path / "registry.csv").write_text("who,what\nx,y\n")
    data = inspect_mosmed(tmp_path)
    assert data.counts == {"CT-0": 1}
    assert data.notes == ("no study-id and category columns (found ['who', 'what']); "
                          "not compared",)


def test_folder_without_scans_is_refused(tmp_path: Path) -> None:
    (tmp_path / "CT-0").mkdir()
    (tmp_path / "CT-0" / "notes.txt").write_text("no scans")
    with pytest.raises(FetchError, match="no CT-<n>/ folders with .nii/.nii.gz scans"):
        fetch_mosmed(tmp_path / "d", source=tmp_path)


def test_cli_fetches_and_prints_the_summary(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "mosmed"
    assert main(["fetch", "mosmed", "--base-url", server.url, "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "CC BY-NC-ND 3.0" in out and f"MosMedData in {dest}" in out
    assert "CT-0       3 scans" in out and "CT-23      2 scans" in out
    thesis, = override_lines(out)
    assert set_flags(thesis) == {"data.source": "folder", "data.root": str(dest),
                                 "data.labels": "{normal: [CT-0], abnormal: [CT-23]}"}
    assert scans_per_class(set_flags(thesis)) == {"normal": 3, "abnormal": 2}
    assert main(["fetch", "mosmed", "--base-url", server.url, "--dest", str(dest),
                 "--subsets", "CT-0"]) == 0
    assert "CT-0: already extracted" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "message"), [
    (["--subsets", "CT-1"], r"ct3d: error: CT-1\.zip: .*/CT-1\.zip: HTTP 404"),
    (["--subsets", "CT-9"], r"ct3d: error: unknown MosMedData subset 'CT-9'"),
    (["--from", "/nonexistent/mosmed"], r"ct3d: error: --from /nonexistent/mosmed: not found"),
])
def test_cli_failure_is_a_user_error(
    server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str],
    message: str
) -> None:
    argv = ["fetch", "mosmed", "--base-url", server.url, "--dest", str(tmp_path / "m"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ct3d: error:")
    assert re.search(message, err)
