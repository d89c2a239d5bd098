"""Reading and writing single-file NIfTI scans (``.nii`` / ``.nii.gz``).

:func:`read_nifti` loads a NIfTI-1 or NIfTI-2 file as float32, scaled with its ``scl_slope`` /
``scl_inter``, in canonical RAS+ voxel order; anything that is not one readable 3D volume with
a usable geometry is a :class:`~ct3d.io.errors.ScanError`. :func:`write_volume` is the inverse.
Both are used through :mod:`ct3d.io`, which adds the checks every scan gets.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip, isal_zlib
from nibabel.spatialimages import HeaderDataError
from nibabel.wrapstruct import WrapStructError
from numpy.typing import DTypeLike

from ct3d import atomic
from ct3d.io.canonical import canonical_volume
from ct3d.io.checks import checked_shape, usable_affine
from ct3d.io.errors import ScanError, detail, reading
from ct3d.volume import Volume

__all__ = ["NIFTI_SUFFIXES", "read_nifti", "write_volume"]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
"""The file name endings of NIfTI scans (matched in any case)."""
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_CLASSES = {348: nib.Nifti1Header, 540: nib.Nifti2Header}


def _nifti_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((suffix for suffix in NIFTI_SUFFIXES if name.endswith(suffix)), None)


def read_nifti(path: Path) -> tuple[Volume, str]:
    """The scan as stored (scaled, in RAS+ order), and a description of its storage."""
    suffix = _nifti_suffix(path)
    if suffix is None:
        raise ScanError(path, "not a NIfTI file (expected a .nii or .nii.gz extension)")
    data = _file_bytes(path, suffix)
    header = _header(path, data)
    shape = _shape(path, header)
    raw = _voxels(path, header, data, shape)
    affine, zooms = _geometry(path, header)
    slope, inter = _scaling(path, header)

    stored = f"dtype {raw.dtype.name}"
    if (slope, inter) != (1.0, 0.0):
        stored += f", scl_slope {slope:g}, scl_inter {inter:g}"
    return canonical_volume(path, raw, affine, zooms, slope, inter), stored


def _file_bytes(path: Path, suffix: str) -> bytes:
    """The file's bytes, decompressed for ``.nii.gz``."""
    with reading(path):
        data = path.read_bytes()
    if not data:
        raise ScanError(path, "empty file (0 bytes)")
    compressed = data[:2] == _GZIP_MAGIC
    if suffix == ".nii.gz" and not compressed:
        raise ScanError(path, "not a NIfTI file (not gzip-compressed despite the .gz suffix)")
    if suffix == ".nii" and compressed:
        raise ScanError(path, "not a NIfTI file (gzip-compressed despite the .nii suffix; "
                              "rename it to .nii.gz)")
    if not compressed:
        return data
    try:
        return igzip.decompress(data)
    except (EOFError, zlib.error, gzip.BadGzipFile, igzip.BadGzipFile, isal_zlib.error) as exc:
        raise ScanError(path, f"gzip stream is truncated or corrupt ({detail(exc)})") from exc
    except MemoryError as exc:
        raise ScanError(path, "not enough memory to decompress it") from exc


def _header(path: Path, data: bytes) -> nib.Nifti1Header:
    """The NIfTI-1 or NIfTI-2 header at the start of ``data`` (told apart by its size)."""
    header_class = next((cls for size, cls in _HEADER_CLASSES.items()
                         if data[:4] in (size.to_bytes(4, "little"), size.to_bytes(4, "big"))),
                        None)
    if header_class is None:
        raise ScanError(path, "not a NIfTI file (unrecognised header)")
    try:
        header = header_class.from_fileobj(io.BytesIO(data))
    except (HeaderDataError, WrapStructError, ValueError, EOFError) as exc:
        raise ScanError(path, f"not a NIfTI file (invalid header: {detail(exc)})") from exc
    magic = bytes(header["magic"]).rstrip(b"\0")
    if magic[:3] not in (b"n+1", b"n+2"):
        raise ScanError(path, f"not a single-file NIfTI (magic {magic!r}; a .hdr/.img pair?)")
    return header


def _shape(path: Path, header: nib.Nifti1Header) -> tuple[int, int, int]:
    """The 3D shape (trailing dimensions of size one dropped), checked before any reading."""
    shape = tuple(int(n) for n in header.get_data_shape())
    if min(shape, default=0) < 0:
        raise ScanError(path, f"not a NIfTI file (invalid header: negative size in {shape})")
    return checked_shape(path, shape)


def _voxels(
    path: Path, header: nib.Nifti1Header, data: bytes, shape: tuple[int, int, int]
) -> np.ndarray:
    """The stored voxels as a read-only view of ``data`` (no copy), in stored axis order."""
    dtype = header.get_data_dtype()
    if dtype.kind not in "iuf" or dtype.fields is not None:
        raise ScanError(path, f"unsupported voxel type {dtype} (expected integers or floats)")
    try:
        offset = int(header.get_data_offset())
    except (ValueError, OverflowError) as exc:
        raise ScanError(path, f"not a NIfTI file (invalid header: {detail(exc)})") from exc
    need = offset + math.prod(shape) * dtype.itemsize
    if offset < 0 or len(data) < need:
        raise ScanError(path, f"file is truncated: shape {shape} of {dtype.name} needs {need} "
                              f"bytes, found {len(data)}")
    return np.frombuffer(data, dtype, count=math.prod(shape), offset=offset).reshape(
        shape, order="F")


def _geometry(path: Path, header: nib.Nifti1Header) -> tuple[np.ndarray, np.ndarray]:
    """The affine and the voxel sizes along the stored axes, with fallbacks (see read_volume)."""
    zooms = np.array(header.get_zooms()[:3], dtype=float)
    zooms_ok = bool(np.isfinite(zooms).all() and (zooms > 0).all())
    candidates = {"the header's": header.get_best_affine}
    if header["qform_code"] > 0:
        candidates["the qform"] = header.get_qform
    if zooms_ok:
        candidates["the voxel sizes, axes as stored"] = lambda: np.diag([*zooms, 1.0])
    found = None
    for name, get in candidates.items():
        try:
            affine = get()
        except (HeaderDataError, ValueError, np.linalg.LinAlgError):
            continue
        if usable_affine(affine):
            found = name
            break
    if found is None:
        raise ScanError(path, f"no usable geometry: the affine is degenerate or not finite "
                              f"and the voxel sizes are {zooms.tolist()}")
    if found != "the header's":
        warnings.warn(f"{path}: degenerate or non-finite affine in the header; using {found}",
                      stacklevel=4)
    spacing = zooms if zooms_ok else np.linalg.norm(affine[:3, :3], axis=0)
    return affine, spacing


def _scaling(path: Path, header: nib.Nifti1Header) -> tuple[float, float]:
    """``(scl_slope, scl_inter)``; ``(1, 0)`` where the header asks for no scaling."""
    try:
        slope, inter = header.get_slope_inter()
    except HeaderDataError as exc:
        raise ScanError(path, f"not a NIfTI file (invalid header: {detail(exc)})") from exc
    return (1.0, 0.0) if slope is None else (float(slope), float(inter))


def write_volume(volume: Volume, path: str | os.PathLike[str], dtype: DTypeLike = np.int16) -> Path:
    """Save ``volume`` as a ``.nii`` / ``.nii.gz`` file, atomically; return the path written.

    Values are rounded and clipped to the range of an integer ``dtype``. The affine goes into
    both qform and sform (code 1, scanner) and ``volume.spacing`` into the zooms. Missing
    parent folders are created; the file is written under a temporary name in the same folder
    and then renamed into place, so readers never see a partial file. ``.nii.gz`` files are
    gzipped fast (level 1) with no timestamp: equal volumes give byte-identical files.

    Example:
        >>> import tempfile
        >>> from ct3d.io import read_volume
        >>> air_and_water = np.tile(np.float32([-1000.0, 0.0]), (20, 16, 3))
        >>> vol = Volume(air_and_water, (0.7, 0.7, 5.0), np.eye(4), "stripes")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = write_volume(vol, Path(tmp) / "scans" / "stripes.nii.gz")
        ...     out.name, read_volume(out).shape
        ('stripes.nii.gz', (20, 16, 6))
    """
    path = Path(path)
    suffix = _nifti_suffix(path)
    if suffix is None:
        raise ValueError(f"{path}: expected a .nii or .nii.gz extension")
    if volume.array.ndim != 3:
        raise ValueError(f"{path}: expected a 3D array, got shape {volume.array.shape}")
    dtype = np.dtype(dtype)
    data = volume.array
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        # float32 cannot represent the bounds of 32-bit and wider integers exactly.
        data = np.rint(data, dtype=np.float32 if info.bits <= 16 else np.float64)
        np.clip(data, info.min, info.max, out=data)
    data = np.asarray(data, dtype=dtype)

    affine = np.asarray(volume.affine, dtype=np.float64)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(dtype)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_zooms(volume.spacing)
    img.header.set_xyzt_units("mm")

    payload = img.to_bytes()
    if suffix == ".nii.gz":
        payload = gzip.compress(payload, compresslevel=1, mtime=0)
    return atomic.write_bytes(path, payload)
