"""How fast ``ct3d train`` refuses a bad scenario (the whole command, in a fresh process).

Four refusals, each checked before any data is touched and without importing TensorFlow:
a typo in a key, a missing data folder, an input too small for the model, and a run
folder that already holds a run. Median wall time of ``--repeat`` runs each; the target is
under 3 s on the 2-core machine (it was 8-11 s when TensorFlow was imported first).

Usage:
    python benchmarks/cli_refusal.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ct3d.scenario import Scenario

CASES = {
    "typo in a key": ["--set", "train.epocs=3"],
    "missing data folder": ["--set", "data.source=folder", "--set", "data.root=missing"],
    "input too small for the model": ["--set", "preprocess.2.params.shape=[32,32,32]"],
    "existing run folder": ["--out", "done"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        Scenario.preset("quick").to_yaml(folder / "s.yaml")
        (folder / "done").mkdir()
        Scenario.preset("quick").to_yaml(folder / "done" / "scenario.yaml")
        (folder / "done" / "metrics.json").write_text("{}")
        print("| refusal | exit status | median s | max s |\n|---|---|---|---|")
        for name, extra in CASES.items():
            times, codes = [], set()
            for _ in range(args.repeat):
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "ct3d.cli", "train", "s.yaml",
                                       *extra], cwd=folder, capture_output=True)
                times.append(time.perf_counter() - start)
                codes.add(proc.returncode)
            print(f"| {name} | {', '.join(map(str, sorted(codes)))} | "
                  f"{statistics.median(times):.2f} | {max(times):.2f} |")


if __name__ == "__main__":
    main()
