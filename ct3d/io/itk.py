"""Reading NRRD (``.nrrd`` / ``.nhdr``) and MetaImage (``.mha`` / ``.mhd``) scans with SimpleITK.

ITK reads both formats with every encoding (raw, gzip or zlib, data in the file or in a
detached one) and gives the geometry in LPS, the ITK / 3D Slicer convention, whatever space
the file was written in: a NRRD in ``right-anterior-superior`` space is converted as it is
read, and MetaImage's ``TransformMatrix`` and ``Offset`` are LPS by definition (its
``AnatomicalOrientation`` field is ignored, as ITK does). :func:`read_itk` turns that into a
RAS affine and the array into canonical RAS+ order exactly as for NIfTI
(:func:`ct3d.io.canonical.canonical_volume`). SimpleITK is imported only when such a file is
read, so ``import ct3d`` stays fast.

ct3d checks two things itself, before ITK reads the voxels, because ITK's own messages do
not name them: that a detached data file named in the header exists, and that MetaImage's
zlib-compressed data is intact (ITK's MetaIO reads a corrupt stream without an error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from isal import isal_zlib

from ct3d.io.canonical import canonical_volume
from ct3d.io.checks import checked_shape, usable_affine
from ct3d.io.errors import ScanError, detail, reading
from ct3d.volume import Volume

__all__ = ["ITK_FORMATS", "ITK_SUFFIXES", "read_itk"]

ITK_FORMATS = {".nrrd": "NRRD", ".nhdr": "NRRD", ".mha": "MetaImage", ".mhd": "MetaImage"}
"""File name ending (matched in any case) -> format, for the formats read with SimpleITK."""
ITK_SUFFIXES = tuple(ITK_FORMATS)
_IMAGE_IO = {"NRRD": "NrrdImageIO", "MetaImage": "MetaImageIO"}
_DATA_FILE_KEYS = {"NRRD": ("data file", "datafile"), "MetaImage": ("elementdatafile",)}
_SEPARATOR = {"NRRD": ":", "MetaImage": "="}
_HEADER_BYTES = 1 << 16
"""Headers are read from at most this many bytes at the start of the file."""
_CHUNK = 1 << 22
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _format(path: Path) -> str:
    name = path.name.lower()
    found = next((fmt for suffix, fmt in ITK_FORMATS.items() if name.endswith(suffix)), None)
    if found is None:
        raise ScanError(path, f"not a NRRD or MetaImage file (expected one of "
                              f"{', '.join(ITK_SUFFIXES)})")
    return found


def read_itk(path: Path) -> tuple[Volume, str]:
    """The scan as stored (in RAS+ order, as float32), and a description of its storage.

    Raises:
        ScanError: the file is empty, unreadable, not NRRD / MetaImage or its header is
            corrupt, its detached data file is missing, it is not one 3D volume (2D, 4D,
            a vector or complex image), its geometry is unusable, or its voxel data is
            truncated or corrupt.

    Example:
        >>> import SimpleITK as sitk, tempfile
        >>> image = sitk.GetImageFromArray(np.full((2, 3, 4), -1000, np.int16))  # (z, y, x)
        >>> image.SetSpacing((0.7, 0.8, 5.0))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     sitk.WriteImage(image, f"{tmp}/scan.nrrd", useCompression=True)
        ...     vol, stored = read_itk(Path(tmp) / "scan.nrrd")
        >>> vol.shape, vol.spacing, stored
        ((4, 3, 2), (0.7, 0.8, 5.0), 'NRRD, dtype int16')
        >>> np.diag(vol.affine).tolist()   # LPS axes in the file, reversed into RAS+
        [0.7, 0.8, 5.0, 1.0]
    """
    import SimpleITK as sitk

    fmt = _format(path)
    fields, data_start = _header_fields(path, fmt)
    data_file = _data_file(path, fmt, fields)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(_IMAGE_IO[fmt])
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ScanError(path, f"not a {fmt} file, or its header is corrupt"
                              f"{_itk_detail(exc)}") from exc
    if reader.GetNumberOfComponents() != 1:
        raise ScanError(path, f"a vector or complex image ({reader.GetNumberOfComponents()} "
                              f"values per voxel, "
                              f"{sitk.GetPixelIDValueAsString(reader.GetPixelID())}): expected "
                              f"one value per voxel")
    shape = checked_shape(path, tuple(reader.GetSize()))
    affine, zooms = _geometry(path, reader)
    if fmt == "MetaImage" and fields.get("compresseddata", "").lower() == "true":
        _check_zlib(path, data_file or path, 0 if data_file else data_start)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ScanError(path, f"cannot read the voxel data: the file is truncated or corrupt"
                              f"{_itk_detail(exc)}") from exc
    raw = sitk.GetArrayViewFromImage(image).reshape(shape[::-1]).T  # ITK's (z, y, x) -> (x, y, z)
    return canonical_volume(path, raw, affine, zooms), f"{fmt}, dtype {raw.dtype.name}"


def _header_fields(path: Path, fmt: str) -> tuple[dict[str, str], int]:
    """The header's fields (keys in lower case) and the offset where data in the file starts."""
    with reading(path), path.open("rb") as f:
        head = f.read(_HEADER_BYTES)
    if not head:
        raise ScanError(path, "empty file (0 bytes)")
    fields: dict[str, str] = {}
    offset = 0
    for line in head.splitlines(keepends=True):
        offset += len(line)
        text = line.decode("latin-1").strip()
        if fmt == "NRRD" and not text:  # a blank line ends a NRRD header
            break
        key, found, value = text.partition(_SEPARATOR[fmt])
        if found:
            fields[key.strip().lower()] = value.strip()
        if fmt == "MetaImage" and key.strip().lower() == "elementdatafile":  # the last field
            break
    return fields, offset


def _data_file(path: Path, fmt: str, fields: dict[str, str]) -> Path | None:
    """The detached data file the header names (checked to exist); None for data in the file.

    Lists and numbered file patterns (``LIST``, ``slice%03d.raw 1 20 1``) are left to ITK.
    """
    name = next((fields[key] for key in _DATA_FILE_KEYS[fmt] if key in fields), None)
    if name is None or name.upper() in ("LOCAL", "LIST") or len(name.split()) > 1:
        return None
    data = path.parent / name
    if not data.is_file():
        raise ScanError(path, f"the detached data file {name!r} named in the header is missing "
                              f"(looked for {data})")
    return data


def _check_zlib(path: Path, data: Path, start: int) -> None:
    """MetaImage's zlib stream, from ``start`` in ``data``, must be complete and intact."""
    stream = isal_zlib.decompressobj()
    try:
        with data.open("rb") as f:
            f.seek(start)
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                stream.decompress(chunk)
                if stream.eof:
                    break
    except isal_zlib.error as exc:
        raise ScanError(path, f"the zlib-compressed voxel data in {data.name} is corrupt "
                              f"({detail(exc)})") from exc
    except OSError as exc:
        raise ScanError(path, f"cannot read the voxel data in {data.name} ({detail(exc)})"
                        ) from exc
    if not stream.eof:
        raise ScanError(path, f"the zlib-compressed voxel data in {data.name} is truncated "
                              f"(the stream ends early)")


def _geometry(path: Path, reader: Any) -> tuple[np.ndarray, np.ndarray]:
    """The RAS affine and the voxel sizes along the stored axes, from ITK's LPS geometry."""
    n = reader.GetDimension()
    zooms = np.array(reader.GetSpacing()[:3], dtype=float)
    directions = np.array(reader.GetDirection(), dtype=float).reshape(n, n)[:3, :3]
    lps = np.eye(4)
    lps[:3, :3] = directions * zooms
    lps[:3, 3] = reader.GetOrigin()[:3]
    affine = _LPS_TO_RAS @ lps
    if not (np.isfinite(zooms).all() and (zooms > 0).all() and usable_affine(affine)):
        raise ScanError(path, f"no usable geometry: spacing {zooms.tolist()}, directions "
                              f"{directions.tolist()} and origin {lps[:3, 3].tolist()} (LPS)")
    return affine, zooms


def _itk_detail(exc: RuntimeError) -> str:
    """What an ITK error says about the file, as `` (...)``; empty if it says nothing useful.

    NRRD errors end in teem's own message (``[nrrd] _nrrdEncodingRaw_read: fread got only
    ...``); MetaImage errors give an OS reason, often just ``Success``.
    """
    lines = [line.strip() for line in str(exc).splitlines()]
    teem = [line.removeprefix("[nrrd]").strip() for line in lines if line.startswith("[nrrd]")]
    if teem:
        return f" ({teem[-1].split(': ', 1)[-1]})"
    reasons = [line.removeprefix("Reason:").strip() for line in lines
               if line.startswith("Reason:")]
    return next((f" ({reason})" for reason in reasons if reason != "Success"), "")
