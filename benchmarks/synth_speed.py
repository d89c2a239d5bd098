"""Time synthetic cohort generation (scans and masks written as .nii.gz) into a temp folder.

Usage:
    python benchmarks/synth_speed.py --n 20 --workers 2 --preset mosmed
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ct3d.data.synthetic import DIFFICULTIES, PRESETS, generate_cohort


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="scans, half normal (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--preset", default="mosmed", choices=sorted(PRESETS))
    parser.add_argument("--difficulty", default="moderate", choices=sorted(DIFFICULTIES))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate the cohort, print seconds in total and per scan."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        paths = generate_cohort(
            out,
            normal=args.n // 2,
            abnormal=args.n - args.n // 2,
            seed=args.seed,
            preset=args.preset,
            difficulty=args.difficulty,
            workers=args.workers,
            progress=False,
        )
        seconds = time.perf_counter() - start
        mib = sum(p.stat().st_size for p in Path(out).rglob("*.nii.gz")) / 2**20
    per_scan = seconds / max(len(paths), 1)
    print(
        f"{len(paths)} {args.preset} scans, {args.workers} worker(s): {seconds:.1f} s total, "
        f"{per_scan:.2f} s per scan, {mib:.0f} MiB written"
    )


if __name__ == "__main__":
    main()
