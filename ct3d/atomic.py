"""Atomic file writes: write under a unique temporary name beside the target, then rename.

A reader never sees a half-written file, and a killed writer leaves at most a hidden
``.<name>.<random>.tmp`` file that nothing reads.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_text(Path(tmp) / "sub" / "state.json", '{"epoch": 3}')
    ...     out.read_text(), sorted(p.name for p in out.parent.iterdir())
    ('{"epoch": 3}', ['state.json'])
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_bytes", "write_text"]


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_bytes(path, text.encode("utf-8"))
