"""The error a scan that cannot be read is reported as, naming the file and the problem."""

from __future__ import annotations

import os

from ct3d.errors import Ct3dError

__all__ = ["ScanError", "detail"]


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
