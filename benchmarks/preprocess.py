"""Preprocessing speed: ct3d vs the Keras-example/thesis reference, same run, same files.

Reference, per scan: ``nibabel get_fdata()`` (float64) -> clip/scale to [0, 1] ->
``scipy.ndimage.rotate(vol, 90, reshape=False)`` -> ``scipy.ndimage.zoom(order=1)`` to
128x128x64. ct3d: ``read_volume`` (float32) -> ``hu_window`` -> ``rotate90`` -> ``resize``,
written to a cold cache by one process; then a warm cache read (``np.load`` of the cached
array). Scans: MosMed-shaped synthetic ``.nii.gz`` (512x512x36-44 int16).

Usage:
    python benchmarks/preprocess.py --n 10 [--data DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ct3d.data.cache import Cache
from ct3d.data.dataset import Scan
from ct3d.data.synthetic import generate_cohort

CHAIN = [{"name": "hu_window", "params": {"low": -1000.0, "high": 400.0}},
         {"name": "rotate90", "params": {"k": 1}},
         {"name": "resize", "params": {"shape": [128, 128, 64]}}]


def reference(path: Path) -> np.ndarray:
    """The thesis' preprocessing of one scan, as its code does it."""
    volume = nib.load(path).get_fdata()
    volume = (np.clip(volume, -1000, 400) + 1000) / 1400
    volume = ndimage.rotate(volume, 90, reshape=False)
    factors = [want / have for want, have in zip((128, 128, 64), volume.shape, strict=True)]
    return ndimage.zoom(volume, factors, order=1).astype(np.float32)


def main() -> None:
    """Time both pipelines per scan and print the figures and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="scans (default 10)")
    parser.add_argument("--data", help="existing folder of .nii.gz scans (default: generate)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            paths = sorted(Path(args.data).rglob("study_????.nii.gz"))[: args.n]
        else:
            paths = generate_cohort(Path(tmp) / "data", args.n // 2, args.n - args.n // 2,
                                    seed=0, preset="mosmed", workers=2, progress=False)
        scans = [Scan(str(p), 0, "x", p.name) for p in paths]
        ref, ours, warm, worst = [], [], [], 0.0
        cache = Cache(Path(tmp) / "cache", CHAIN)
        for scan in scans:
            start = time.perf_counter()
            expected = reference(Path(scan.path))
            ref.append(time.perf_counter() - start)
            start = time.perf_counter()
            report = cache.fill([scan], workers=1, progress=False)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            got = np.load(report.paths[0])
            warm.append(time.perf_counter() - start)
            worst = max(worst, float(np.abs(got - expected).max()))
    r, o, w = (statistics.median(t) for t in (ref, ours, warm))
    print(f"{len(scans)} scans, median per scan: reference {r:.3f} s, ct3d cold cache {o:.3f} s "
          f"({r / o:.1f}x faster), ct3d warm cache read {w * 1000:.1f} ms; "
          f"max |ct3d - reference| = {worst:.2e}")


if __name__ == "__main__":
    main()
