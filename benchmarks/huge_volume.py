"""Peak memory of reading and preprocessing one huge scan (512x512x600 and 512x512x1000 int16).

For each depth a child process writes a synthetic chest-like volume (body, two lungs,
-3024 padding outside a circular field of view) as int16 ``.nii.gz`` and ``.nii``; then a
fresh process (the parent stays small: a child's ``ru_maxrss`` starts from its parent's)
imports ct3d, runs :func:`ct3d.io.read_volume` and the thesis preset's preprocess chain
(``hu_window`` -> ``rotate90`` -> ``resize`` to 128x128x64), and reports its peak RSS
(``ru_maxrss``) and the peak of numpy's allocations (``tracemalloc``) after each stage. The
raw int16 voxels take 2 bytes each (``n``), the float32 volume 4 bytes each.

Usage:
    python benchmarks/huge_volume.py --depths 600 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from ct3d.io import read_volume, write_volume
from ct3d.preprocess import build_preprocess
from ct3d.scenario import Scenario
from ct3d.volume import Volume

SIZE = 512


def chest(depth: int) -> Volume:
    """A chest-like int16-valued volume: soft tissue, two lungs, padding outside the FOV."""
    x, y = np.ogrid[:SIZE, :SIZE]
    r2 = ((x - SIZE / 2) / (SIZE / 2)) ** 2 + ((y - SIZE / 2) / (SIZE / 2)) ** 2
    body = ((x - 256) / 200) ** 2 + ((y - 256) / 150) ** 2 < 1
    lungs = (((np.abs(x - 256) - 90) / 70) ** 2 + ((y - 256) / 110) ** 2) < 1
    plane = np.where(r2 > 1, -3024, np.where(lungs, -850, np.where(body, 40, -1000)))
    noise = np.random.default_rng(0).integers(-20, 21, (SIZE, SIZE, 8))
    array = np.empty((SIZE, SIZE, depth), np.float32)
    for k in range(depth):
        array[:, :, k] = plane + noise[:, :, k % 8]
    spacing = (0.7, 0.7, 0.5)
    return Volume(array, spacing, np.diag([*spacing, 1.0]), "chest")


def measure(path: str) -> dict[str, float]:
    """In this process: peak RSS and traced numpy peak (GiB) after reading and the chain."""
    gib = 2**30
    chain = build_preprocess(Scenario.preset("thesis").preprocess)
    result = {"import_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib}
    tracemalloc.start()
    start = time.perf_counter()
    volume = read_volume(path)
    result["read_s"] = time.perf_counter() - start
    result["read_traced"] = tracemalloc.get_traced_memory()[1] / gib
    result["read_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib
    tracemalloc.reset_peak()
    start = time.perf_counter()
    out = chain(volume)
    result["chain_s"] = time.perf_counter() - start
    result["chain_traced"] = (tracemalloc.get_traced_memory()[1]) / gib
    result["total_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib
    result["volume"] = volume.array.nbytes / gib
    assert out.shape == (128, 128, 64) and np.isfinite(out.array).all()
    return result


def main() -> None:
    """Write each test volume, then measure it in a child process and print a table row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[600, 1000])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--write", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    if args.write:
        volume = chest(int(args.write[1]))
        for suffix in (".nii.gz", ".nii"):
            write_volume(volume, args.write[0] + suffix)
        return
    print("| shape | file | import RSS | peak RSS after read | after chain | numpy peak: read / "
          "chain | read s | chain s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            stem = Path(tmp) / f"chest{depth}"
            subprocess.run([sys.executable, __file__, "--write", str(stem), str(depth)],
                           check=True)
            for path in (stem.with_suffix(".nii.gz"), stem.with_suffix(".nii")):
                line = subprocess.run([sys.executable, __file__, "--child", str(path)],
                                      check=True, capture_output=True, text=True).stdout
                r = json.loads(line.splitlines()[-1])
                print(f"| {SIZE}x{SIZE}x{depth} | {path.name.split('.', 1)[1]} "
                      f"({path.stat().st_size / 2**30:.2f} GiB) | {r['import_rss']:.2f} GiB "
                      f"| {r['read_rss']:.2f} GiB | {r['total_rss']:.2f} GiB "
                      f"| {r['read_traced']:.2f} / {r['chain_traced']:.2f} GiB "
                      f"| {r['read_s']:.1f} | {r['chain_s']:.1f} |", flush=True)
                path.unlink()


if __name__ == "__main__":
    main()
