"""Lesion enrichment of class-activation maps per layer and method, on a k-fold run's
held-out abnormal scans (the search behind the Grad-CAM row of ``RESULTS.md``).

Methods, all from one layer's activations ``A`` and the logit's gradients ``G``:
``gradcam`` (channel weights = G averaged over space), ``hirescam`` (ReLU of sum_c G * A,
element-wise) and ``layercam`` (sum_c ReLU(G) * A). Scoring as
``benchmarks/gradcam_enrichment.py``: (heat in lesions / heat in lungs) / (lesion volume /
lung volume) on the original grid, each scan explained by the fold model that held it out.

Usage:
    python benchmarks/gradcam_sweep.py RUN_DIR [--root DIR] [--limit N] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ct3d import saliency
from ct3d.inference import SavedRun
from ct3d.io import read_volume
from ct3d.preprocess import build_preprocess
from ct3d.preprocess.lung import lung_mask

METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "gradcam": lambda a, g: np.maximum((a * g.mean(axis=(1, 2, 3), keepdims=True)).sum(-1), 0),
    "hirescam": lambda a, g: np.maximum((a * g).sum(-1), 0),
    "layercam": lambda a, g: np.maximum((a * np.maximum(g, 0)).sum(-1), 0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run = SavedRun.load(args.run_dir)
    chain = build_preprocess(run.scenario.resolved("preprocess"))
    rows = pd.read_csv(args.run_dir / "predictions.csv")
    rows = rows[(rows["part"] == "test") & (rows["label"] == 1)]
    rows = rows[rows["repeat"] == 0] if "repeat" in rows else rows
    rows = rows.sort_values(["fold", "scan"])
    rows = rows.iloc[np.unique(np.linspace(0, len(rows) - 1, args.limit).round().astype(int))]
    found: dict[str, list[float]] = {}
    for row in tqdm(list(rows.itertuples()), desc="sweep", unit="scan"):
        model = run.models[int(row.fold)]
        path = args.root / row.scan
        original = read_volume(path)
        lesion = read_volume(path.with_name(path.name.replace(".nii.gz", "_mask.nii.gz")),
                             hu=False).array > 0
        lungs = lung_mask(original) | lesion
        prepared = chain(original)
        batch = prepared.array[None, ..., None].astype(np.float32)
        for layer in saliency._convolutions(model):
            activations, grads = saliency._gradients(model, layer, batch, None)
            scale, offset = saliency._feature_grid(model, layer, batch.shape[1:4],
                                                   activations.shape[1:4])
            for method, cam in METHODS.items():
                heat = saliency._normalise(saliency._upsample(
                    cam(activations, grads)[0], scale, offset, batch.shape[1:4]))
                value = saliency.lesion_enrichment(
                    saliency.to_original(heat, prepared, original).array, lesion, lungs)
                if value is not None:
                    found.setdefault(f"{layer.name}/{method}", []).append(value)
    summary = {key: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)), "n": len(v)}
               for key, v in found.items()}
    for key, s in summary.items():
        print(f"{key:<24} {s['mean']:.2f} ± {s['std']:.2f} (n={s['n']})")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
