"""Reading a folder of DICOM CT slices (one series) as a :class:`~ct3d.volume.Volume`.

:func:`read_dicom_series` gives the same float32 HU array, spacing and affine as
:func:`ct3d.io.read_volume` gives for a NIfTI of the same anatomy: slices are ordered by their
position along the slice normal (never by file name or InstanceNumber), rescaled to HU, placed
with their DICOM (LPS) geometry converted to RAS, and put in canonical RAS+ voxel order.
Whatever makes a folder unusable is a :class:`~ct3d.io.ScanError` naming the file or folder
and what was found there; what ct3d fixes itself (skipped non-DICOM files, identical duplicate
slices, missing slices filled by interpolation, an anonymized series read without its
SeriesInstanceUID) is reported as a :class:`DicomWarning`.

Example::

    list_series("export/patient_7")             # [SeriesInfo('1.2.840...', 'AX LUNG 1.0', ...)]
    vol = read_dicom_series("export/patient_7", series="1.2.840...")
    vol.shape, vol.spacing                       # (512, 512, 301), (0.68, 0.68, 1.0)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import UID, MediaStorageDirectoryStorage

from ct3d.io.canonical import canonical_spacing
from ct3d.io.errors import ScanError, detail
from ct3d.volume import Volume

__all__ = [
    "DicomWarning",
    "SeriesInfo",
    "is_dicom_file",
    "is_series_folder",
    "list_series",
    "read_dicom_series",
]

DICOM_SUFFIX = ".dcm"
GAP_TOLERANCE = 0.1
"""A slice step deviating from the median step by more than this fraction is a gap."""
SAME_POSITION_MM = 0.01
"""Slices closer than this along the slice normal are duplicates."""
SAME_VALUE = 1e-4
"""Header numbers (orientation, spacing) closer than this (relative above 1) are the same."""
IDENTITY_TAGS = ("SOPClassUID", "Modality", "SeriesInstanceUID")
"""A header holding none of these (even empty) is not read as a DICOM image."""
ONE_SERIES_TAGS = ("Rows", "Columns", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                   "FrameOfReferenceUID", "StudyInstanceUID", "SeriesNumber")
"""Files without a SeriesInstanceUID are read as one series when these agree wherever present."""
NO_UID = "(no SeriesInstanceUID)"
_DEFAULT_DECODERS = ("pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle")
"""The pydicom decoder plugins among ct3d's dependencies: with them JPEG (lossless too),
JPEG-LS, JPEG 2000, HTJ2K and RLE series read without another package."""
_DECOMPRESS_HINT = "decompress the series first (gdcmconv --raw, or dcmdjpeg from DCMTK for JPEG)"


class DicomWarning(UserWarning):
    """Something ct3d handled itself while reading a series (skipped files, duplicates, gaps).

    Turn it into an error to refuse such series.

    Example:
        >>> with warnings.catch_warnings():  # doctest: +SKIP
        ...     warnings.simplefilter("error", DicomWarning)
        ...     read_dicom_series("export/patient_7")  # a gap now raises instead
    """


@dataclass(frozen=True)
class SeriesInfo:
    """One series found in a folder: its UID, description, modality and files.

    ``uid`` is ``""`` for the files whose SeriesInstanceUID is missing or empty (anonymized).

    Example:
        >>> info = SeriesInfo("1.2.3", "AX LUNG", "CT", (Path("a.dcm"), Path("b.dcm")))
        >>> str(info)
        "1.2.3 ('AX LUNG', CT, 2 files)"
    """

    uid: str
    description: str
    modality: str
    files: tuple[Path, ...]

    def __str__(self) -> str:
        return (f"{self.uid or NO_UID} ({self.description!r}, {self.modality}, "
                f"{len(self.files)} files)")


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """A file with the ``DICM`` marker at byte 128 or a ``.dcm`` suffix (``DICOMDIR`` excluded).

    Only reads 4 bytes, so it is cheap enough to scan dataset folders with.

    Example:
        >>> is_dicom_file("no/such/file.dcm")
        False
    """
    path = Path(path)
    if path.name.upper() == "DICOMDIR" or not path.is_file():
        return False
    return path.suffix.lower() == DICOM_SUFFIX or _has_marker(path)


def is_series_folder(path: str | os.PathLike[str]) -> bool:
    """A folder that directly holds at least one DICOM file (see :func:`is_dicom_file`).

    Example:
        >>> is_series_folder("no/such/folder")
        False
    """
    path = Path(path)
    return path.is_dir() and any(is_dicom_file(f) for f in path.iterdir())


def list_series(folder: str | os.PathLike[str]) -> list[SeriesInfo]:
    """The DICOM series in ``folder`` (its files only, not sub-folders), sorted by UID.

    Only headers are read. Non-DICOM files and ``DICOMDIR`` are ignored. Files whose
    SeriesInstanceUID is missing or empty (anonymized) are listed together with ``uid=""``.

    Raises:
        ScanError: the folder is missing or holds no DICOM file, or a DICOM file in it is
            unreadable or corrupt.

    Example:
        >>> [str(s) for s in list_series("export/patient_7")]  # doctest: +SKIP
        ["1.2.840.1 ('AX LUNG 1.0', CT, 301 files)", "1.2.840.2 ('Topogram', CT, 1 files)"]
    """
    return [info for info, _ in _group(Path(folder))[0]]


def read_dicom_series(folder: str | os.PathLike[str], series: str | None = None) -> Volume:
    """Read the CT series in ``folder`` as a float32 HU volume in canonical RAS+ order.

    Every file in the folder is looked at (not only ``*.dcm``); files that are not DICOM and
    ``DICOMDIR`` are skipped with a :class:`DicomWarning`. Slices are sorted by
    ImagePositionPatient projected on the slice normal, rescaled with RescaleSlope /
    RescaleIntercept, and placed with PixelSpacing (row, column) and the slice positions.
    Identical duplicate slices are kept once, and missing slices or uneven steps are filled by
    linear interpolation onto a uniform slice grid; both with a :class:`DicomWarning`.
    Files whose SeriesInstanceUID is missing or empty (anonymizers blank UIDs) are read as one
    series, with a :class:`DicomWarning`, when their Rows, Columns, ImageOrientationPatient,
    PixelSpacing, SliceThickness, FrameOfReferenceUID, StudyInstanceUID and SeriesNumber agree
    wherever present.

    Args:
        folder: a folder holding the slices of one series (one file per slice).
        series: the SeriesInstanceUID to read when the folder holds several series; ``None``
            reads the only series there.

    Raises:
        ScanError: the folder has no series, several series and no ``series`` (the error
            lists them), an unknown ``series``, or a series that is not CT, has one slice,
            mixes orientations / pixel sizes / stacks, has two different slices at one
            position, lacks a required tag, is corrupt, or is compressed with no decoder; files
            without a SeriesInstanceUID whose geometry differs, or that sit beside a series with
            a UID.

    Example:
        >>> vol = read_dicom_series("export/patient_7")  # doctest: +SKIP
        >>> vol.array.dtype, vol.shape, vol.spacing  # doctest: +SKIP
        (dtype('float32'), (512, 512, 301), (0.68, 0.68, 1.0))
        >>> read_dicom_series("missing")
        Traceback (most recent call last):
        ...
        ct3d.io.errors.ScanError: missing: folder not found
    """
    folder = Path(folder)
    found, skipped = _group(folder)
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} file(s) that are not DICOM images: "
                      f"{_names(skipped)}", DicomWarning, stacklevel=2)
    _refuse_files_without_uid(folder, found)
    info, headers = _choose(folder, found, series)
    note = None if info.uid else _one_series(folder, info, headers)
    volume = _read_series(folder, info, headers)
    if note:
        warnings.warn(note, DicomWarning, stacklevel=2)
    return volume


# --- finding the series -----------------------------------------------------------------------


def _has_marker(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _names(paths: Sequence[Path], limit: int = 5) -> str:
    """The first ``limit`` file names, then ``...`` if there are more."""
    return ", ".join(p.name for p in paths[:limit]) + (", ..." if len(paths) > limit else "")


def _read_header(path: Path) -> Dataset | None:
    """The header of a DICOM image file; ``None`` for a file that is not one (to skip)."""
    marker = _has_marker(path)
    if path.name.upper() == "DICOMDIR" or not (marker or path.suffix.lower() == DICOM_SUFFIX):
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=not marker)
    except OSError as exc:
        raise ScanError(path, f"cannot read file ({detail(exc)})") from exc
    except Exception as exc:  # pydicom raises many types on corrupt headers
        unmarked = "" if marker else "; the file has no DICM marker at byte 128"
        raise ScanError(path, f"cannot parse the DICOM header ({detail(exc)}){unmarked}") from exc
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        return None
    if not any(keyword in ds for keyword in IDENTITY_TAGS):
        raise ScanError(path, _no_identity(path, ds, marker))
    return ds


def _no_identity(path: Path, ds: Dataset, marker: bool) -> str:
    """What a header holding none of :data:`IDENTITY_TAGS` holds instead."""
    tags = [str(element.tag) for element in ds]
    shown = ": " + ", ".join(tags[:5]) + (", ..." if len(tags) > 5 else "") if tags else ""
    wanted = [f"{keyword} {Tag(keyword)}" for keyword in IDENTITY_TAGS]
    return (f"no {', '.join(wanted[:-1])} or {wanted[-1]} in the header: it holds {len(tags)} "
            f"data element(s){shown} ({path.stat().st_size}-byte file, "
            f"{'' if marker else 'no '}DICM marker at byte 128)")


def _series_uid(ds: Dataset) -> str:
    """The SeriesInstanceUID, ``""`` when it is missing or empty."""
    return str(ds.get("SeriesInstanceUID") or "").strip()


def _group(folder: Path) -> tuple[list[tuple[SeriesInfo, list[Dataset]]], list[Path]]:
    """The series in ``folder`` (sorted by UID) with their headers, and the files skipped."""
    if not folder.is_dir():
        raise ScanError(folder, "not a folder" if folder.exists() else "folder not found")
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise ScanError(folder, f"cannot list the folder ({detail(exc)})") from exc
    files = [p for p in entries if p.is_file()]
    headers: dict[str, list[tuple[Path, Dataset]]] = {}
    skipped = []
    for path in files:
        ds = _read_header(path)
        if ds is None:
            skipped.append(path)
        else:
            headers.setdefault(_series_uid(ds), []).append((path, ds))
    if not headers:
        subfolders = [p.name for p in entries if p.is_dir()]
        hint = (f"; it has sub-folders ({', '.join(subfolders[:5])}): pass one series folder"
                if subfolders else "")
        others = f": {_names(files)}" if files else ""
        raise ScanError(folder, f"no DICOM files in this folder ({len(files)} other file(s)"
                                f"{others}){hint}")
    found = []
    for uid, items in sorted(headers.items()):
        first = items[0][1]
        info = SeriesInfo(uid, str(first.get("SeriesDescription", "")),
                          str(first.get("Modality", "")), tuple(p for p, _ in items))
        found.append((info, [ds for _, ds in items]))
    return found, skipped


def _choose(folder: Path, found: list[tuple[SeriesInfo, list[Dataset]]],
            series: str | None) -> tuple[SeriesInfo, list[Dataset]]:
    """The series ``series`` names, or the only one found."""
    listing = "; ".join(str(info) for info, _ in found)
    if series is not None:
        chosen = [item for item in found if item[0].uid == series.strip()]
        if not chosen:
            raise ScanError(folder, f"no series {series!r} here; series found: {listing}")
        return chosen[0]
    if len(found) > 1:
        raise ScanError(folder, f"{len(found)} series in one folder: {listing}; choose one "
                                f"with read_volume(folder, series=UID), or move each series "
                                f"into a folder of its own")
    return found[0]


# --- files without a SeriesInstanceUID (anonymized) -------------------------------------------

_Value = np.ndarray | str


def _blank_uid(headers: Sequence[Dataset]) -> str:
    """How the SeriesInstanceUID of ``headers`` is blank: missing, empty, or both, with counts."""
    missing = sum("SeriesInstanceUID" not in ds for ds in headers)
    empty = len(headers) - missing
    counts = [f"{word} in {n}" for word, n in (("missing", missing), ("empty", empty)) if n]
    return f"SeriesInstanceUID {Tag('SeriesInstanceUID')} is {' and '.join(counts)} file(s)"


def _refuse_files_without_uid(folder: Path,
                              found: list[tuple[SeriesInfo, list[Dataset]]]) -> None:
    """Files without a SeriesInstanceUID beside a series with one cannot be assigned."""
    others = [info for info, _ in found if info.uid]
    blank = [(info, headers) for info, headers in found if not info.uid]
    if blank and others:
        info, headers = blank[0]
        raise ScanError(folder, f"{_blank_uid(headers)} ({_names(info.files)}) beside "
                                f"{len(others)} series with one "
                                f"({'; '.join(str(o) for o in others)}): cannot tell which "
                                f"series these files belong to; move them into a folder of "
                                f"their own, or give them their SeriesInstanceUID back")


def _tag_value(ds: Dataset, keyword: str) -> _Value | None:
    """``keyword``'s value as numbers (text for UIDs and non-numbers); ``None`` if absent/empty."""
    value = ds.get(keyword)
    values = list(value) if isinstance(value, MultiValue) else [value]
    if value is None or not values or str(value).strip() == "":
        return None
    if keyword.endswith("UID"):
        return str(value).strip()
    try:
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        return str(value)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal within :data:`SAME_VALUE` (relative to ``b`` where it is above 1)."""
    return float(np.abs(a - b).max()) <= SAME_VALUE * max(1.0, float(np.abs(b).max()))


def _same_value(a: _Value, b: _Value) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a.shape == b.shape and _close(a, b)


def _by_value(files: Sequence[Path],
              values: Sequence[_Value | None]) -> list[tuple[_Value, list[Path]]]:
    """The files grouped by value, in order of first appearance; ``None`` values left out."""
    groups: list[tuple[_Value, list[Path]]] = []
    for path, value in zip(files, values, strict=True):
        if value is None:
            continue
        group = next((g for g in groups if _same_value(g[0], value)), None)
        if group is None:
            groups.append((value, [path]))
        else:
            group[1].append(path)
    return groups


def _show(value: _Value) -> str:
    if isinstance(value, str):
        return value
    return _fmt(value) if value.size > 1 else f"{value[0]:.6g}"


def _counted(groups: list[tuple[_Value, list[Path]]]) -> str:
    """``value in n file(s) (names), ...`` for each group."""
    return ", ".join(f"{_show(value)} in {len(paths)} file(s) ({_names(paths, 3)})"
                     for value, paths in groups)


def _one_series(folder: Path, info: SeriesInfo, headers: Sequence[Dataset]) -> str:
    """The warning to give when files without a SeriesInstanceUID are one series.

    They are when each of :data:`ONE_SERIES_TAGS` has one value wherever present; otherwise a
    :class:`ScanError` names each tag that differs, its values and the files holding them.
    """
    groups = {keyword: _by_value(info.files, [_tag_value(ds, keyword) for ds in headers])
              for keyword in ONE_SERIES_TAGS}
    differ = [f"{keyword} differs: {_counted(g)}" for keyword, g in groups.items() if len(g) > 1]
    if differ:
        raise ScanError(folder, f"{_blank_uid(headers)}, and they are not one series: "
                                f"{'; '.join(differ)}")
    agree = ", ".join(keyword for keyword, g in groups.items() if g)
    absent = ", ".join(keyword for keyword, g in groups.items() if not g)
    note = f" ({absent} absent or empty in every file)" if absent else ""
    return (f"{folder}: {_blank_uid(headers)}; read as one series, since {agree} agree across "
            f"them{note}")


# --- checking the headers ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Slice:
    """One file's header facts: where the slice is and how its pixels map to HU."""

    path: Path
    position: np.ndarray
    slope: float
    intercept: float


def _required(path: Path, ds: Dataset, keyword: str, why: str) -> object:
    value = ds.get(keyword)
    if value is None or value == "":
        found = "empty" if keyword in ds else "missing"
        raise ScanError(path, f"{found} {keyword} {Tag(keyword)}, needed {why}")
    return value


def _numbers(path: Path, ds: Dataset, keyword: str, n: int, why: str) -> np.ndarray:
    value = _required(path, ds, keyword, why)
    try:
        numbers = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise ScanError(path, f"invalid {keyword} {value!r}: expected {n} numbers") from exc
    if numbers.shape != (n,) or not np.isfinite(numbers).all():
        raise ScanError(path, f"invalid {keyword} {_fmt(numbers)}: expected {n} finite numbers")
    return numbers


def _size(path: Path, ds: Dataset, keyword: str) -> int:
    """Rows or Columns: a positive whole number."""
    value = _required(path, ds, keyword, "for the image size")
    if not isinstance(value, int) or value < 1:
        raise ScanError(path, f"invalid {keyword} {value!r}: expected a positive whole number")
    return value


def _number(path: Path, ds: Dataset, keyword: str, default: float) -> float:
    value = ds.get(keyword)
    try:
        number = default if value is None or value == "" else float(value)
    except (TypeError, ValueError) as exc:
        raise ScanError(path, f"invalid {keyword} {value!r}: expected a number") from exc
    if not np.isfinite(number):
        raise ScanError(path, f"invalid {keyword} {value!r}: expected a finite number")
    return number


def _check_decoder(path: Path, ds: Dataset) -> None:
    """Fail before reading any pixels if the transfer syntax cannot be decoded here."""
    ts = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if ts is None:
        return
    uid = UID(ts)
    if not uid.is_transfer_syntax:
        raise ScanError(path, f"unknown transfer syntax {uid}: pixel data cannot be decoded")
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as exc:
        raise ScanError(path, f"pixel data compressed as {uid.name} ({uid}), which pydicom "
                              f"cannot decode; decompress the series first (gdcmconv --raw)"
                        ) from exc
    if not decoder.is_available:
        plugins = "; ".join(decoder.missing_dependencies) or "none known"
        raise ScanError(path, f"pixel data compressed as {uid.name} ({uid}) and no decoder "
                              f"for it is installed (pydicom's plugins for it: {plugins}): "
                              f"reinstall ct3d, whose dependencies include "
                              f"{', '.join(_DEFAULT_DECODERS)}, or {_DECOMPRESS_HINT}")


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def _slices(
    info: SeriesInfo, headers: Sequence[Dataset]
) -> tuple[list[_Slice], np.ndarray, np.ndarray, tuple[int, int]]:
    """Per-file facts, plus the shared orientation (6), pixel spacing (2) and (rows, cols)."""
    modalities = _by_value(info.files, [str(ds.get("Modality") or "").strip() or "(none)"
                                         for ds in headers])
    if [modality for modality, _ in modalities] != ["CT"]:
        found = f"{modalities[0][0]}, not CT" if len(modalities) == 1 else _counted(modalities)
        raise ScanError(info.files[0].parent,
                        f"series {info.uid or NO_UID} has modality {found}: ct3d reads CT image "
                        f"series only (not MR, SEG, RTSTRUCT, SR, ...)")
    slices = []
    first = info.files[0]
    for path, ds in zip(info.files, headers, strict=True):
        frames = _number(path, ds, "NumberOfFrames", 1.0)
        if frames > 1:
            raise ScanError(path, f"multi-frame file ({frames:.0f} frames, e.g. Enhanced CT): "
                                  f"ct3d reads one slice per file; convert it to NIfTI with "
                                  f"dcm2niix")
        samples = _number(path, ds, "SamplesPerPixel", 1.0)
        if samples != 1:
            raise ScanError(path, f"{samples:.0f} samples per pixel (a colour image, e.g. a "
                                  f"screenshot): expected a greyscale CT slice")
        shape = (_size(path, ds, "Rows"), _size(path, ds, "Columns"))
        orientation = _numbers(path, ds, "ImageOrientationPatient", 6, "for the slice axes")
        pixel_spacing = _numbers(path, ds, "PixelSpacing", 2, "for the voxel size")
        position = _numbers(path, ds, "ImagePositionPatient", 3, "to place the slice")
        if not slices:
            shape0, orientation0, spacing0 = shape, orientation, pixel_spacing
            row, col = orientation[:3], orientation[3:]
            if (abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3
                    or abs(row @ col) > 1e-3):
                raise ScanError(path, f"invalid ImageOrientationPatient {_fmt(orientation)}: "
                                      f"expected two orthogonal unit vectors")
            if (pixel_spacing <= 0).any():
                raise ScanError(path, f"invalid PixelSpacing {_fmt(pixel_spacing)}: expected "
                                      f"positive sizes")
        elif shape != shape0:
            raise ScanError(path, f"{shape[0]}x{shape[1]} pixels, but {first.name} has "
                                  f"{shape0[0]}x{shape0[1]}: a series must have one image size")
        elif not _close(orientation, orientation0):
            raise ScanError(path, f"ImageOrientationPatient {_fmt(orientation)} differs from "
                                  f"{_fmt(orientation0)} in {first.name}: slices of one volume "
                                  f"must share one orientation")
        elif not _close(pixel_spacing, spacing0):
            raise ScanError(path, f"PixelSpacing {_fmt(pixel_spacing)} differs from "
                                  f"{_fmt(spacing0)} in {first.name}: slices of one volume "
                                  f"must share one pixel size")
        _check_decoder(path, ds)
        slices.append(_Slice(path, position, _number(path, ds, "RescaleSlope", 1.0),
                             _number(path, ds, "RescaleIntercept", 0.0)))
    return slices, orientation0, spacing0, shape0


# --- geometry ---------------------------------------------------------------------------------


def _stacks(folder: Path, slices: list[_Slice], normal: np.ndarray) -> list[list[_Slice]]:
    """Slices sorted along ``normal``, grouped by position (a group > 1 holds duplicates)."""
    ordered = sorted(slices, key=lambda s: float(s.position @ normal))
    groups: list[list[_Slice]] = []
    for s in ordered:
        if groups and float((s.position - groups[-1][0].position) @ normal) <= SAME_POSITION_MM:
            groups[-1].append(s)
        else:
            groups.append([s])
    if len(groups) < 2:
        raise ScanError(folder, f"only one slice position ({len(slices)} file(s)): a single "
                                f"image, not a 3D volume")
    return groups


def _check_line(folder: Path, firsts: list[_Slice], normal: np.ndarray, tolerance: float) -> None:
    """Slice positions must lie on one straight line (straight or gantry-tilted stack)."""
    positions = np.array([s.position for s in firsts])
    along = (positions - positions[0]) @ normal
    drift = positions - positions[0] - along[:, None] * normal
    off = np.linalg.norm(drift - along[:, None] * (drift[-1] / along[-1]), axis=1)
    worst = int(np.argmax(off))
    if off[worst] > tolerance:
        raise ScanError(firsts[worst].path,
                        f"slice is {off[worst]:.3g} mm off the line through the first and last "
                        f"slices of the series in {folder}: the series mixes stacks")


def _gaps(folder: Path, firsts: list[_Slice], along: np.ndarray) -> np.ndarray | None:
    """Uniform target positions if the slice steps are uneven (warned), else ``None``."""
    steps = np.diff(along)
    median = float(np.median(steps))
    uneven = np.flatnonzero(np.abs(steps - median) > GAP_TOLERANCE * median)
    if not len(uneven):
        return None
    n = int(round((along[-1] - along[0]) / median)) + 1
    shown = ", ".join(f"{steps[i]:.3g} mm between {firsts[i].path.name} and "
                      f"{firsts[i + 1].path.name}" for i in uneven[:5])
    more = f" and {len(uneven) - 5} more" if len(uneven) > 5 else ""
    warnings.warn(f"{folder}: uneven slice spacing (median {median:.3g} mm): {shown}{more}; "
                  f"resampled {len(along)} slices onto {n} evenly spaced slices "
                  f"({(along[-1] - along[0]) / (n - 1):.3g} mm) by linear interpolation",
                  DicomWarning, stacklevel=4)
    return np.linspace(along[0], along[-1], n)


# --- pixels -----------------------------------------------------------------------------------


def _pixels(s: _Slice, shape: tuple[int, int]) -> np.ndarray:
    """The slice in HU, float32, shape (rows, columns)."""
    ts = None
    try:
        ds = pydicom.dcmread(s.path)
        ts = ds.file_meta.get("TransferSyntaxUID")
        raw = ds.pixel_array
    except OSError as exc:
        raise ScanError(s.path, f"cannot read file ({detail(exc)})") from exc
    except Exception as exc:  # decoders raise many types on corrupt pixel data
        if ts is not None and UID(ts).is_transfer_syntax and UID(ts).is_compressed:
            reason = (f"cannot decode the {UID(ts).name} ({ts}) pixel data ({detail(exc)}): "
                      f"the file is corrupt, or compressed in a way the installed decoders do "
                      f"not support; if another viewer shows it, {_DECOMPRESS_HINT}")
        else:
            reason = f"cannot read the pixel data ({detail(exc)})"
        raise ScanError(s.path, reason) from exc
    if raw.shape != shape:
        raise ScanError(s.path, f"pixel data has shape {raw.shape}, expected {shape} (Rows, "
                                f"Columns)")
    hu = raw.astype(np.float32)
    if s.slope != 1.0:
        hu *= np.float32(s.slope)
    if s.intercept != 0.0:
        hu += np.float32(s.intercept)
    return hu


def _place(out: np.ndarray, hu: np.ndarray, k: int, ornt: np.ndarray) -> None:
    """Write stored slice ``k`` (rows, columns) into ``out``, already in canonical order."""
    axis = int(ornt[2, 0])
    index = out.shape[axis] - 1 - k if ornt[2, 1] < 0 else k
    plane = apply_orientation(hu.T[:, :, None], ornt)
    np.moveaxis(out, axis, 0)[index] = np.moveaxis(plane, axis, 0)[0]


def _resample(array: np.ndarray, ornt: np.ndarray, old: np.ndarray,
              new: np.ndarray) -> np.ndarray:
    """Linear interpolation along the slice axis from positions ``old`` to ``new`` (ascending)."""
    axis = int(ornt[2, 0])
    shape = list(array.shape)
    shape[axis] = len(new)
    out = np.empty(shape, np.float32)
    src, dst = np.moveaxis(array, axis, 0), np.moveaxis(out, axis, 0)
    if ornt[2, 1] < 0:
        src, dst = src[::-1], dst[::-1]
    upper = np.clip(np.searchsorted(old, new, side="right"), 1, len(old) - 1)
    for j, (position, k) in enumerate(zip(new, upper, strict=True)):
        w = np.float32((position - old[k - 1]) / (old[k] - old[k - 1]))
        dst[j] = src[k - 1] * (np.float32(1) - w) + src[k] * w
    return out


def _check_duplicate(folder: Path, first: _Slice, hu: np.ndarray, other: _Slice,
                     other_hu: np.ndarray) -> None:
    """Two slices at one position must hold the same pixels."""
    differ = hu != other_hu
    if differ.any():
        raise ScanError(folder, f"{first.path.name} and {other.path.name} are at the same "
                                f"position but hold different pixels ({int(differ.sum())} of "
                                f"{differ.size} pixels differ, by up to "
                                f"{float(np.abs(hu - other_hu).max()):.6g} HU)")


def _read_series(folder: Path, info: SeriesInfo, headers: Sequence[Dataset]) -> Volume:
    slices, orientation, pixel_spacing, (rows, cols) = _slices(info, headers)
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    groups = _stacks(folder, slices, normal)
    firsts = [g[0] for g in groups]
    _check_line(folder, firsts, normal, max(0.1 * float(pixel_spacing.min()), SAME_POSITION_MM))
    along = np.array([(s.position - firsts[0].position) @ normal for s in firsts])
    targets = _gaps(folder, firsts, along)
    depth = len(firsts) if targets is None else len(targets)

    lps = np.eye(4)  # stored voxel axes: (column, row, slice)
    lps[:3, 0] = row * pixel_spacing[1]
    lps[:3, 1] = col * pixel_spacing[0]
    lps[:3, 2] = (firsts[-1].position - firsts[0].position) / (depth - 1)
    lps[:3, 3] = firsts[0].position
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    stored_shape = (cols, rows, depth)
    ornt = io_orientation(affine)

    shape = [0, 0, 0]
    for in_axis, out_axis in enumerate(ornt[:, 0].astype(int)):
        shape[out_axis] = (cols, rows, len(firsts))[in_axis]
    array = np.empty(shape, np.float32)
    duplicates = []
    for k, group in enumerate(groups):
        hu = _pixels(group[0], (rows, cols))
        for other in group[1:]:
            _check_duplicate(folder, group[0], hu, other, _pixels(other, (rows, cols)))
            duplicates.append(f"{other.path.name} = {group[0].path.name}")
        _place(array, hu, k, ornt)
    if duplicates:
        warnings.warn(f"{folder}: {len(duplicates)} duplicate slice(s) with identical pixels "
                      f"kept once: {', '.join(duplicates[:5])}"
                      f"{', ...' if len(duplicates) > 5 else ''}", DicomWarning, stacklevel=3)
    if targets is not None:
        array = _resample(array, ornt, along, targets)

    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    return Volume(array=array, spacing=canonical_spacing(zooms, ornt),
                  affine=affine @ inv_ornt_aff(ornt, stored_shape), source=str(folder))
