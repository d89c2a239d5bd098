"""Reading and writing scans as :class:`~ct3d.volume.Volume` objects.

:func:`read_volume` turns a NIfTI file (``.nii`` / ``.nii.gz``), a NRRD (``.nrrd`` / ``.nhdr``)
or MetaImage (``.mha`` / ``.mhd``) file, or a folder of DICOM slices, into a float32 volume in
Hounsfield units, in canonical RAS+ voxel order, so that the same anatomy gives the same array
whatever the format and the orientation the file was stored in. It loads the scan and then
checks it, the same way for every format: values must be finite, not constant and look like
CT in HU; padding outside the field of view is set to air. Anything wrong with a scan is
reported as a :class:`ScanError` that names the file and the problem. :func:`write_volume` is
the inverse (NIfTI), used for synthetic data and tests.

One module per concern, each importing only those before it, never this package:
:mod:`ct3d.io.errors` (:class:`ScanError`), :mod:`ct3d.io.checks` (the checks shared by every
format), :mod:`ct3d.io.canonical` (stored order -> RAS+), :mod:`ct3d.io.nifti` (NIfTI files),
:mod:`ct3d.io.itk` (NRRD and MetaImage, read with SimpleITK) and :mod:`ct3d.io.dicom` (DICOM
series). This module dispatches :func:`read_volume` to them and gathers the public names.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from ct3d.io.checks import AIR_HU, MAX_VOXELS, checked_volume
from ct3d.io.dicom import (
    DicomWarning,
    SeriesInfo,
    is_dicom_file,
    is_series_folder,
    list_series,
    read_dicom_series,
)
from ct3d.io.errors import ScanError, reading
from ct3d.io.itk import ITK_FORMATS, read_itk
from ct3d.io.nifti import NIFTI_SUFFIXES, read_nifti, write_volume
from ct3d.volume import Volume

__all__ = [
    "AIR_HU",
    "MAX_VOXELS",
    "SCAN_SUFFIXES",
    "DicomWarning",
    "ScanError",
    "SeriesInfo",
    "is_dicom_file",
    "is_series_folder",
    "list_series",
    "read_dicom_series",
    "read_volume",
    "scan_format",
    "write_volume",
]

_FORMATS = {**dict.fromkeys(NIFTI_SUFFIXES, "NIfTI"), **ITK_FORMATS}
SCAN_SUFFIXES = tuple(_FORMATS)
"""The file name endings :func:`read_volume` reads (in any case): NIfTI, NRRD, MetaImage."""
_READERS: dict[str, Callable[[Path], tuple[Volume, str]]] = {
    "NIfTI": read_nifti, "NRRD": read_itk, "MetaImage": read_itk}


def scan_format(path: str | os.PathLike[str]) -> str | None:
    """The format of a scan file, by its name: ``NIfTI``, ``NRRD``, ``MetaImage`` or None.

    Example:
        >>> scan_format("a/study_0001.nii.gz"), scan_format("b.NRRD"), scan_format("c.mhd")
        ('NIfTI', 'NRRD', 'MetaImage')
        >>> scan_format("notes.txt") is None
        True
    """
    name = Path(path).name.lower()
    return next((fmt for suffix, fmt in _FORMATS.items() if name.endswith(suffix)), None)


def read_volume(
    path: str | os.PathLike[str], series: str | None = None, *, hu: bool = True
) -> Volume:
    """Read a NIfTI, NRRD or MetaImage scan or a DICOM folder as float32 HU in RAS+ order.

    The format is told by the name (see :data:`SCAN_SUFFIXES`); a folder is read with
    :func:`ct3d.io.dicom.read_dicom_series` (``series``: the SeriesInstanceUID to pick when it
    holds several). NIfTI integers are scaled with the file's ``scl_slope`` / ``scl_inter``
    in float32 (no float64 copy is made). NRRD and MetaImage are read with SimpleITK
    (:func:`ct3d.io.itk.read_itk`): any encoding, detached data files too, their LPS
    geometry (a NRRD's ``right-anterior-superior`` space too) turned into RAS. The array is
    flipped / transposed to RAS+ voxel order; ``spacing`` and ``affine`` are reordered to
    match. Trailing dimensions of size one (a 4D file holding one volume) are dropped.

    A degenerate or non-finite NIfTI affine (sform) falls back to the qform, else to the voxel
    sizes with the axes as stored, with a warning. Then every format is checked alike:
    values must be finite and, with ``hu``, not constant and in HU (minimum at most -500,
    |HU| <= 65536); values below :data:`AIR_HU` (field-of-view padding such as -2048 or
    -3024) are set to -1024, since nothing in a body is below air.

    Args:
        path: a ``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha`` or ``.mhd`` file, or a
            folder holding one DICOM series.
        series: the DICOM series to read; ``None`` reads the only one. Only for folders.
        hu: the scan holds CT in Hounsfield units (checked as above). ``False`` reads any
            image, e.g. a heat map or a mask, checking only that it is finite.

    Raises:
        ScanError: the file is missing, unreadable (permission denied), empty, of none of
            these formats, truncated or corrupt (a detached data file missing too), not a
            single 3D volume of one value per voxel, has no voxels or more than
            :data:`MAX_VOXELS`, has no usable geometry, or holds NaN / infinite values; with
            ``hu`` also a constant volume or values that are not HU.

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
        fmt = scan_format(path)
        if fmt is None:
            raise ScanError(path, f"not a NIfTI, NRRD or MetaImage file, nor a DICOM folder "
                                  f"(expected a {', '.join(SCAN_SUFFIXES[:-1])} or "
                                  f"{SCAN_SUFFIXES[-1]} extension)")
        volume, stored = _READERS[fmt](path)
    return checked_volume(path, volume, stored, hu)


def _is_folder(path: Path) -> bool:
    """True for a folder, False for a regular file; anything else is a ScanError."""
    with reading(path):
        mode = path.stat().st_mode
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise ScanError(path, "not a regular file (a pipe, socket or device)")
    return stat.S_ISDIR(mode)
