"""Peak memory (RSS) of a 2-epoch training run over N synthetic scans, for several N.

Each size runs in its own process: ``ct3d preprocess`` fills the cache first, then
``ct3d train`` trains the thesis scenario (modified 3D CNN, 128x128x64 input, batch 4) for
2 epochs, reading the cache through ``tf.data``. The peak RSS of each process is read from
``wait4``. Memory must not grow with N: the reference pipeline holds every scan in RAM
(float64 while loading), about 3.6 GiB for 200 scans.

Usage:
    python benchmarks/memory.py --sizes 200 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ct3d.scenario import Scenario


def peak_rss_gib(argv: list[str]) -> tuple[float, float]:
    """Run ``python -m ct3d.cli ARGV`` in a child; (its peak RSS in GiB, seconds)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "ct3d.cli", *argv],
                             stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"ct3d {' '.join(argv)} failed with status {status}")
    return usage.ru_maxrss / 2**20, time.perf_counter() - start


def main() -> None:
    """Print peak RSS of preprocessing and of training for every size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            scenario = Scenario.preset("thesis").with_overrides({
                "data.root": f"{tmp}/data", "data.cache": f"{tmp}/cache",
                "data.synthetic.preset": "quick", "data.synthetic.normal": n // 2,
                "data.synthetic.abnormal": n - n // 2, "train.epochs": 2, "out": f"{tmp}/run{n}",
            })
            path = Path(tmp) / f"s{n}.yaml"
            scenario.to_yaml(path)
            prep, prep_s = peak_rss_gib(["preprocess", str(path)])
            train, train_s = peak_rss_gib(["train", str(path)])
            print(f"{n} scans: peak RSS preprocess {prep:.2f} GiB ({prep_s:.0f} s), "
                  f"train 2 epochs {train:.2f} GiB ({train_s:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
