"""Resumable downloads against a real HTTP server on 127.0.0.1: resume with Range, servers
that ignore Range or resume at the wrong byte, cut connections, retries on 5xx/429,
wrong sizes, and the lock file."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from ct3d.fetch.download import (
    DownloadError,
    FileRecord,
    check_lock,
    download,
    forget_lock,
    read_lock,
    record_lock,
)

BODY = np.random.default_rng(0).bytes(100_000)
SHA = hashlib.sha256(BODY).hexdigest()
FAST = {"backoff": 0.001, "progress": False}


@dataclass(frozen=True)
class Served:
    """One request as the server saw it: path, Range header, status, body bytes sent."""

    path: str
    range: str | None
    status: int
    sent: int


class FileServer:
    """A stdlib HTTP server on 127.0.0.1 serving ``files`` by name.

    ``plans[name]`` is a queue of actions, one per request for that file (then ``ok``):
    ``ok`` (honours ``Range: bytes=N-``), ``cut:K`` (announces the full length, sends K
    bytes, closes), ``ignore_range`` (always 200 and the whole file), ``wrong_start``
    (206 from byte 0 whatever was asked), ``no_length`` (200 without Content-Length),
    ``drop`` (closes without answering), or an HTTP status code such as ``503``.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.plans: dict[str, list[str]] = {}
        self.log: list[Served] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,),
                                       daemon=True)

    def sent(self, name: str) -> int:
        """Body bytes served for ``name`` so far."""
        return sum(s.sent for s in self.log if s.path == name)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Keep test output clean."""

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                plan = server.plans.get(name)
                action = plan.pop(0) if plan else "ok"
                asked = self.headers.get("Range")
                body = server.files.get(name)
                status, headers, payload = self._answer(action, asked, body)
                if action == "drop":
                    server.log.append(Served(name, asked, 0, 0))
                    return
                if action.startswith("cut:"):
                    payload = payload[: int(action[4:])]
                server.log.append(Served(name, asked, status, len(payload)))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _answer(self, action: str, asked: str | None,
                        body: bytes | None) -> tuple[int, dict[str, str], bytes]:
                if body is None:
                    return 404, {"Content-Length": "0"}, b""
                if action.isdigit():
                    return int(action), {"Content-Length": "0"}, b""
                if action == "no_length":
                    return 200, {}, body
                start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1]) if asked else 0
                if action == "wrong_start":
                    start = 0
                if action == "ignore_range" or not asked:
                    return 200, {"Content-Length": str(len(body))}, body
                if start >= len(body):
                    return 416, {"Content-Range": f"bytes */{len(body)}",
                                 "Content-Length": "0"}, b""
                return 206, {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}",
                             "Content-Length": str(len(body) - start)}, body[start:]

        return Handler

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[FileServer]:
    """A fresh server on a free port serving ``BODY`` as ``data.bin``."""
    with FileServer() as srv:
        srv.files["data.bin"] = BODY
        yield srv


def test_clean_download_is_hashed_renamed_and_recorded(server: FileServer, tmp_path: Path) -> None:
    lock = tmp_path / "lock.json"
    rec = download(server.url + "data.bin", tmp_path / "data.bin", lock=lock, **FAST)
    assert rec == FileRecord(100_000, SHA, server.url + "data.bin")
    assert (tmp_path / "data.bin").read_bytes() == BODY
    assert not (tmp_path / "data.bin.part").exists()
    assert json.loads(lock.read_text()) == {
        "data.bin": {"size": 100_000, "sha256": SHA, "url": server.url + "data.bin"}}
    assert server.log == [Served("data.bin", None, 200, 100_000)]


def test_cut_connection_resumes_without_fetching_bytes_again(
    server: FileServer, tmp_path: Path
) -> None:
    server.plans["data.bin"] = ["cut:30000"]
    rec = download(server.url + "data.bin", tmp_path / "data.bin", retries=2, **FAST)
    assert [(s.range, s.status, s.sent) for s in server.log] == [
        (None, 200, 30_000), ("bytes=30000-", 206, 70_000)]
    assert server.sent("data.bin") == len(BODY)
    assert rec.sha256 == SHA and (tmp_path / "data.bin").read_bytes() == BODY


def test_part_left_by_an_earlier_run_is_hashed_then_resumed(
    server: FileServer, tmp_path: Path
) -> None:
    (tmp_path / "data.bin.part").write_bytes(BODY[:40_000])
    rec = download(server.url + "data.bin", tmp_path / "data.bin", **FAST)
    assert server.log == [Served("data.bin", "bytes=40000-", 206, 60_000)]
    assert rec.sha256 == SHA and rec.size == 100_000


def test_giving_up_keeps_the_part_and_the_next_run_resumes(
    server: FileServer, tmp_path: Path
) -> None:
    server.plans["data.bin"] = ["cut:1000"] * 3
    with pytest.raises(DownloadError, match=r"data\.bin: giving up .* after 3 attempts .*"
                                            r"3,000 bytes kept in .*data\.bin\.part"):
        download(server.url + "data.bin", tmp_path / "data.bin", retries=2, **FAST)
    assert (tmp_path / "data.bin.part").read_bytes() == BODY[:3000]
    assert not (tmp_path / "data.bin").exists()
    download(server.url + "data.bin", tmp_path / "data.bin", **FAST)
    assert server.log[-1] == Served("data.bin", "bytes=3000-", 206, 97_000)
    assert (tmp_path / "data.bin").read_bytes() == BODY


def test_server_ignoring_range_is_read_from_the_start_and_overwrites(
    server: FileServer, tmp_path: Path
) -> None:
    (tmp_path / "data.bin.part").write_bytes(b"stale" * 1000)
    server.plans["data.bin"] = ["ignore_range"]
    rec = download(server.url + "data.bin", tmp_path / "data.bin", **FAST)
    assert server.log == [Served("data.bin", "bytes=5000-", 200, 100_000)]
    assert (tmp_path / "data.bin").read_bytes() == BODY and rec.sha256 == SHA


def test_resume_at_the_wrong_byte_starts_over(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "data.bin.part").write_bytes(BODY[:10_000])
    server.plans["data.bin"] = ["wrong_start"]
    rec = download(server.url + "data.bin", tmp_path / "data.bin", retries=1, **FAST)
    assert [(s.range, s.status) for s in server.log] == [("bytes=10000-", 206), (None, 200)]
    assert (tmp_path / "data.bin").read_bytes() == BODY and rec.sha256 == SHA


@pytest.mark.parametrize("failure", ["503", "500", "429", "drop"])
def test_transient_failure_is_retried(server: FileServer, tmp_path: Path, failure: str) -> None:
    server.plans["data.bin"] = [failure]
    rec = download(server.url + "data.bin", tmp_path / "data.bin", retries=1, **FAST)
    assert [s.status for s in server.log] == [0 if failure == "drop" else int(failure), 200]
    assert rec.sha256 == SHA


def test_persistent_503_gives_up_after_the_retries(server: FileServer, tmp_path: Path) -> None:
    server.plans["data.bin"] = ["503"] * 5
    with pytest.raises(DownloadError, match=r"after 3 attempts \(HTTP 503 Service Unavailable\)"):
        download(server.url + "data.bin", tmp_path / "data.bin", retries=2, **FAST)
    assert len(server.log) == 3


def test_not_found_fails_at_once(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"nope\.bin: .*/nope\.bin: HTTP 404"):
        download(server.url + "nope.bin", tmp_path / "nope.bin", retries=3, **FAST)
    assert len(server.log) == 1
    assert list(tmp_path.iterdir()) == []


def test_server_size_differing_from_the_expected_size_is_refused(
    server: FileServer, tmp_path: Path
) -> None:
    (tmp_path / "data.bin.part").write_bytes(BODY[:1000])
    with pytest.raises(DownloadError, match=r"data\.bin: the server reports 100,000 bytes, "
                                            r"expected 100,001 \(the expected size\)"):
        download(server.url + "data.bin", tmp_path / "data.bin", 100_001, **FAST)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("expected", [99_000, 100_500])
def test_wrong_final_size_without_content_length_is_refused(
    server: FileServer, tmp_path: Path, expected: int
) -> None:
    server.plans["data.bin"] = ["no_length"]
    with pytest.raises(DownloadError, match=rf"data\.bin: downloaded 100,000 bytes, expected "
                                            rf"{expected:,} \(the expected size\); removed"):
        download(server.url + "data.bin", tmp_path / "data.bin", expected, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_no_content_length_and_no_expected_size_is_accepted(
    server: FileServer, tmp_path: Path
) -> None:
    server.plans["data.bin"] = ["no_length"]
    assert download(server.url + "data.bin", tmp_path / "data.bin", **FAST).sha256 == SHA


def test_complete_part_is_not_fetched_again(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "data.bin.part").write_bytes(BODY)
    assert download(server.url + "data.bin", tmp_path / "data.bin", 100_000, **FAST).sha256 == SHA
    assert server.log == []
    (tmp_path / "data.bin").rename(tmp_path / "data.bin.part")
    assert download(server.url + "data.bin", tmp_path / "data.bin", **FAST).sha256 == SHA
    assert server.log == [Served("data.bin", "bytes=100000-", 416, 0)]


def test_lock_mismatch_on_a_later_download_is_refused(server: FileServer, tmp_path: Path) -> None:
    lock = tmp_path / "lock.json"
    download(server.url + "data.bin", tmp_path / "data.bin", lock=lock, **FAST)
    (tmp_path / "data.bin").unlink()
    server.files["data.bin"] = BODY[::-1]
    other = hashlib.sha256(BODY[::-1]).hexdigest()
    with pytest.raises(DownloadError, match=rf"data\.bin: 100,000 bytes, SHA-256 {other} does "
                                            rf"not match the lock file .*lock\.json, which "
                                            rf"records 100,000 bytes, SHA-256 {SHA}"):
        download(server.url + "data.bin", tmp_path / "data.bin", lock=lock, **FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock.json"]
    assert read_lock(lock)["data.bin"].sha256 == SHA


def test_lock_size_is_the_expected_size(server: FileServer, tmp_path: Path) -> None:
    lock = tmp_path / "lock.json"
    record_lock(lock, "data.bin", FileRecord(123, "0" * 64, "http://elsewhere/data.bin"))
    with pytest.raises(DownloadError, match=r"expected 123 \(the lock file .*lock\.json\)"):
        download(server.url + "data.bin", tmp_path / "data.bin", lock=lock, **FAST)


def test_lock_file_records_checks_and_forgets(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / "x.lock.json"
    assert read_lock(lock) == {}
    record_lock(lock, "a.zip", FileRecord(3, "aa", "http://h/a.zip"))
    record_lock(lock, "b.zip", FileRecord(4, "bb", "http://h/b.zip"))
    check_lock(lock, "a.zip", FileRecord(3, "aa", "file:///copy/a.zip"))
    check_lock(lock, "c.zip", FileRecord(9, "cc", "http://h/c.zip"))
    with pytest.raises(DownloadError, match=r"a\.zip: 4 bytes, SHA-256 aa does not match"):
        check_lock(lock, "a.zip", FileRecord(4, "aa", "http://h/a.zip"))
    forget_lock(lock, "a.zip")
    assert read_lock(lock) == {"b.zip": FileRecord(4, "bb", "http://h/b.zip")}
    lock.write_text("{not json")
    with pytest.raises(DownloadError, match=r"x\.lock\.json: not a valid lock file"):
        read_lock(lock)


def test_only_http_urls_are_downloaded(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"cannot download 'file:///etc/passwd'"):
        download("file:///etc/passwd", tmp_path / "x", **FAST)
    assert list(tmp_path.iterdir()) == []
