"""The error a scan that cannot be read is reported as, naming the file and the problem."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ct3d.errors import Ct3dError

__all__ = ["ScanError", "detail", "reading"]


class ScanError(Ct3dError, ValueError):
    """A scan that cannot be read as a 3D CT volume.

    Attributes:
        path: the offending file (or DICOM folder).
        reason: what is wrong with it.

    Example:
        >>> err = ScanError("scan.nii.gz", "file not found")
        >>> str(err), err.reason
        ('scan.nii.gz: file not found', 'file not found')
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def detail(exc: BaseException) -> str:
    """The message of ``exc`` on one line, to quote in a :class:`ScanError` reason."""
    return " ".join(str(exc).split())


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn the OS errors of reading ``path`` into :class:`ScanError`\\ s naming it.

    Example:
        >>> from pathlib import Path
        >>> with reading("gone.mha"):
        ...     Path("gone.mha").read_bytes()
        Traceback (most recent call last):
        ...
        ct3d.io.errors.ScanError: gone.mha: file not found
    """
    try:
        yield
    except FileNotFoundError as exc:
        raise ScanError(path, "file not found") from exc
    except PermissionError as exc:
        raise ScanError(path, "permission denied") from exc
    except OSError as exc:
        raise ScanError(path, f"cannot read file ({detail(exc)})") from exc
