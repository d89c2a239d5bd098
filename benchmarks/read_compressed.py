"""Time :func:`ct3d.io.read_volume` on a 512x512x150 DICOM series, uncompressed and compressed.

The chest-like volume of ``huge_volume.py`` (150 slices, int16 with RescaleIntercept -1024,
FOV padding, +-20 HU noise) is written as an uncompressed series with the tests' DICOM writer
(``tests/test_dicom.py``), then compressed file by file: JPEG-LS Lossless, JPEG 2000
Lossless and RLE Lossless with pydicom's encoders (JPEG-LS needs ``pyjpegls``, in the
``test`` extra), and JPEG Lossless SV1 (1.2.840.10008.1.2.4.70) with GDCM, which pydicom
cannot encode and ct3d does not install: put it on the path by hand, or that row is skipped.
Each series is read ``--repeat`` times in this process (files in the page cache) with the
decoders ct3d installs (pylibjpeg and its plugins); the median and the range are printed,
and every read is checked to equal the uncompressed one voxel for voxel.

Usage:
    pip install --target /tmp/gdcm python-gdcm       # only for the JPEG Lossless row
    PYTHONPATH=/tmp/gdcm python benchmarks/read_compressed.py --repeat 5
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from huge_volume import chest
from pydicom.uid import (
    UID,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from ct3d.io import read_volume

TESTS = Path(__file__).resolve().parents[1] / "tests"
SYNTAXES = (JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless, RLELossless)


def compress(files: list[Path], folder: Path, syntax: UID) -> float:
    """Write each file into ``folder`` compressed as ``syntax``; return the seconds taken."""
    from fixtures.make_compressed_dicom import gdcm_compress

    folder.mkdir()
    start = time.perf_counter()
    for path in files:
        if syntax == JPEGLosslessSV1:
            gdcm_compress(path, folder / path.name)
        else:
            ds = pydicom.dcmread(path)
            ds.compress(syntax)
            ds.save_as(folder / path.name, enforce_file_format=True)
    return time.perf_counter() - start


def timed_reads(folder: Path, repeat: int, expected: np.ndarray | None) -> list[float]:
    """Seconds of each of ``repeat`` reads; each read must equal ``expected`` if given."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        volume = read_volume(folder)
        seconds.append(time.perf_counter() - start)
        if expected is not None and not np.array_equal(volume.array, expected):
            raise AssertionError(f"{folder}: the read differs from the uncompressed series")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=150, help="slices (default 150)")
    parser.add_argument("--repeat", type=int, default=5, help="reads per series (default 5)")
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from test_dicom import write_series

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_series(root / "uncompressed", chest(args.depth), intercept=-1024.0)
        expected = read_volume(root / "uncompressed").array
        rows = [("uncompressed (ExplicitVRLittleEndian)", None, files, root / "uncompressed")]
        for syntax in SYNTAXES:
            if syntax == JPEGLosslessSV1 and importlib.util.find_spec("gdcm") is None:
                print(f"skipped {syntax.name}: GDCM is not installed (see --help)")
                continue
            folder = root / str(syntax)
            encode = compress(files, folder, syntax)
            rows.append((f"{syntax.keyword} ({syntax})", encode, sorted(folder.iterdir()),
                         folder))

        print(f"\n512x512x{args.depth} int16, {args.repeat} reads each\n")
        print("| series | size | encode | read: median | read: range |")
        print("|---|---|---|---|---|")
        for name, encode, series, folder in rows:
            size = sum(p.stat().st_size for p in series) / 2**20
            seconds = timed_reads(folder, args.repeat, expected)
            encoded = "" if encode is None else f"{encode:.1f} s"
            print(f"| {name} | {size:.1f} MiB | {encoded} | {statistics.median(seconds):.2f} s "
                  f"| {min(seconds):.2f}–{max(seconds):.2f} s |")


if __name__ == "__main__":
    main()
