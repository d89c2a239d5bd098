"""Reading and writing scans as :class:`~ct3d.volume.Volume` objects.

:func:`read_volume` turns a ``.nii`` / ``.nii.gz`` file, or a folder of DICOM slices, into a
float32 volume in Hounsfield units, in canonical RAS+ voxel order, so that the same anatomy
gives the same array whatever the orientation the file was stored in. It loads the scan and
then checks it, the same way for both formats: values must be finite, not constant and look
like CT in HU; padding outside the field of view is set to air. Anything wrong with a scan is
reported as a :class:`ScanError` that names the file and the problem. :func:`write_volume` is
the inverse, used for synthetic data and tests.

One module per concern, each importing only those before it, never this package:
:mod:`ct3d.io.errors` (:class:`ScanError`), :mod:`ct3d.io.checks` (the checks shared by every
format), :mod:`ct3d.io.nifti` (NIfTI files) and :mod:`ct3d.io.dicom` (DICOM series). This
module dispatches :func:`read_volume` to them and gathers the public names.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ct3d.io.checks import AIR_HU, checked_volume
from ct3d.io.dicom import (
    DicomWarning,
    SeriesInfo,
    is_dicom_file,
    is_series_folder,
    list_series,
    read_dicom_series,
)
from ct3d.io.errors import ScanError, detail
from ct3d.io.nifti import MAX_VOXELS, read_nifti, write_volume
from ct3d.volume import Volume

__all__ = [
    "AIR_HU",
    "MAX_VOXELS",
    "DicomWarning",
    "ScanError",
    "SeriesInfo",
    "is_dicom_file",
    "is_series_folder",
    "list_series",
    "read_dicom_series",
    "read_volume",
    "write_volume",
]


def read_volume(
    path: str | os.PathLike[str], series: str | None = None, *, hu: bool = True
) -> Volume:
    """Read a ``.nii`` / ``.nii.gz`` scan or a DICOM folder as float32 HU in RAS+ order.

    A folder is read with :func:`ct3d.io.dicom.read_dicom_series` (``series``: the
    SeriesInstanceUID to pick when it holds several). NIfTI integers are scaled with the
    file's ``scl_slope`` / ``scl_inter`` in float32 (no float64 copy is made). The array is
    flipped / transposed to RAS+ voxel order; ``spacing`` and ``affine`` are reordered to
    match. Trailing dimensions of size one (a 4D file holding one volume) are dropped.

    A degenerate or non-finite affine (sform) falls back to the qform, else to the voxel
    sizes with the axes as stored, with a warning. Then both formats are checked alike:
    values must be finite and, with ``hu``, not constant and in HU (minimum at most -500,
    |HU| <= 65536); values below :data:`AIR_HU` (field-of-view padding such as -2048 or
    -3024) are set to -1024, since nothing in a body is below air.

    Args:
        path: a NIfTI file, or a folder holding one DICOM series.
        series: the DICOM series to read; ``None`` reads the only one. Only for folders.
        hu: the scan holds CT in Hounsfield units (checked as above). ``False`` reads any
            image, e.g. a heat map or a mask, checking only that it is finite.

    Raises:
        ScanError: the file is missing, unreadable (permission denied), empty, not NIfTI (nor
            a DICOM folder), truncated or corrupt, not a single 3D volume, has no voxels or
            more than :data:`MAX_VOXELS`, has no usable geometry, or holds NaN / infinite
            values; with ``hu`` also a constant volume or values that are not HU.

    Example:
        >>> vol = read_volume("data/raw/case_0001.nii.gz")  # doctest: +SKIP
        >>> vol.array.dtype, vol.array.shape, vol.spacing  # doctest: +SKIP
        (dtype('float32'), (512, 512, 40), (0.7, 0.7, 5.0))
        >>> read_volume("missing.nii.gz")
        Traceback (most recent call last):
        ...
        ct3d.io.errors.ScanError: missing.nii.gz: file not found
    """
    path = Path(path)
    if _is_folder(path):
        volume, stored = read_dicom_series(path, series), "DICOM series"
    elif series is not None:
        raise ScanError(path, f"series={series!r} is for a DICOM folder; this is a file")
    else:
        volume, stored = read_nifti(path)
    return checked_volume(path, volume, stored, hu)


def _is_folder(path: Path) -> bool:
    """True for a folder, False for a regular file; anything else is a ScanError."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise ScanError(path, "file not found") from exc
    except PermissionError as exc:
        raise ScanError(path, "permission denied") from exc
    except OSError as exc:
        raise ScanError(path, f"cannot read file ({detail(exc)})") from exc
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise ScanError(path, "not a regular file (a pipe, socket or device)")
    return stat.S_ISDIR(mode)
