"""The lung mask on the chest phantoms of ``tests/chest.py``: what it holds and leaves out.

For each finding: the Dice of ``lung_mask`` against the true lungs (lesions included), the
share of the lesion in the mask and in ``lung_crop``'s box (default 10 mm margin), the share
of what must stay out (effusion, gas in the colon and stomach) that the mask leaves out,
the mask's volume over the true lungs' and the mediastinum inside it; then ``lung_crop``'s
time on a MosMedData-size synthetic scan (512 x 512 x 36-44, median of 7 runs).

Run it from the repository root (``python benchmarks/lung_mask.py``); the table goes to
stdout in Markdown. ``benchmarks/RESULTS.md`` holds the figures before and after the change.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from chest import FINDINGS, dice, kept_share, render, volume_ml  # noqa: E402

from ct3d.data.synthetic import render_phantom  # noqa: E402
from ct3d.preprocess.lung import lung_crop, lung_mask  # noqa: E402


def _share(part: np.ndarray, whole: np.ndarray) -> str:
    return f"{part.sum() / whole.sum():.3f}" if whole.any() else "-"


def table() -> list[str]:
    """One Markdown row per finding."""
    rows = ["| phantom | slices mm | Dice | lesion in mask | lesion in box | outside left "
            "out | mask / lungs | mediastinum in mask, ml |",
            "|---|---|---|---|---|---|---|---|"]
    for name, chest in FINDINGS.items():
        scan = render(chest)
        found = lung_mask(scan.volume)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cropped = lung_crop()(scan.volume)
        box = f"{kept_share(scan.volume, cropped, scan.lesion):.3f}" if scan.lesion.any() \
            else "-"
        rows.append(
            f"| {name} | {chest.slice_mm:g} | {dice(found, scan.lungs, scan):.3f} | "
            f"{_share(found & scan.lesion, scan.lesion)} | {box} | "
            f"{_share(~found & scan.outside, scan.outside)} | "
            f"{volume_ml(found, scan) / volume_ml(scan.lungs, scan):.3f} | "
            f"{volume_ml(found & scan.mediastinum, scan):.1f} |")
    return rows


def crop_ms(runs: int = 7) -> float:
    """Median ``lung_crop`` time (ms) on a MosMedData-size phantom."""
    volume = render_phantom(0, abnormal=True, preset="mosmed", grade="CT-3").volume
    step = lung_crop()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step(volume)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


if __name__ == "__main__":
    print("\n".join(table()))
    depth = render_phantom(0, True, preset="mosmed").volume.shape[2]
    with open("/proc/loadavg") as f:
        print(f"\nlung_crop on 512 x 512 x {depth}: {crop_ms():.0f} ms "
              f"(median of 7; load {f.read().split()[0]})")
