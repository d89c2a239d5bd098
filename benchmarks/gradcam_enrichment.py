"""Grad-CAM lesion enrichment of a k-fold run on a synthetic cohort (scans with lesion masks).

For every fold model of the run's first repeat, the abnormal scans it held out (its test
part): Grad-CAM on the original scan's grid (:func:`ct3d.saliency.explain_volume`), then
:func:`ct3d.saliency.lesion_enrichment` with the scan's lesion mask (``*_mask.nii.gz`` beside
it) and its lungs (ct3d's lung mask, lesions added). Two layers: ``default`` (what
``ct3d predict --saliency`` uses: the last 3D convolution) and ``report`` (what the reports
draw: the deepest convolution still 4 voxels wide).

Usage:
    python benchmarks/gradcam_enrichment.py RUN_DIR [--root DIR] [--limit N] [--out FILE.json]

``--root``: the folder relative scan paths in ``predictions.csv`` are relative to (a report's
run folder records them relative to its report folder). ``--limit N``: N of the scans,
evenly spread over the folds (Grad-CAM on the original grid takes 3-10 s a scan here).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ct3d.inference import SavedRun
from ct3d.io import read_volume
from ct3d.preprocess import build_preprocess
from ct3d.preprocess.lung import lung_mask
from ct3d.saliency import deepest_conv_layer, explain_volume, last_conv_layer, lesion_enrichment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--limit", type=int, help="at most this many scans, spread over folds")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run = SavedRun.load(args.run_dir)
    chain = build_preprocess(run.scenario.resolved("preprocess"))
    rows = pd.read_csv(args.run_dir / "predictions.csv")
    rows = rows[(rows["part"] == "test") & (rows["label"] == 1)]
    if "repeat" in rows:
        rows = rows[rows["repeat"] == 0]
    rows = rows.sort_values(["fold", "scan"])
    if args.limit is not None and args.limit < len(rows):
        rows = rows.iloc[np.unique(np.linspace(0, len(rows) - 1, args.limit).round().astype(int))]
    found: dict[str, list[float]] = {"default": [], "report": []}
    for row in tqdm(list(rows.itertuples()), desc="Grad-CAM", unit="scan"):
        model = run.models[int(row.fold)]
        path = args.root / row.scan
        original = read_volume(path)
        lesion = read_volume(path.with_name(path.name.replace(".nii.gz", "_mask.nii.gz")),
                             hu=False)
        lesion_mask = lesion.array > 0
        lungs = lung_mask(original) | lesion_mask
        prepared = chain(original)
        layers = {"default": last_conv_layer(model),
                  "report": deepest_conv_layer(model) or last_conv_layer(model)}
        for name, layer in layers.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                heat = explain_volume(model, prepared, original, layer=layer)
            value = lesion_enrichment(heat.array, lesion_mask, lungs)
            if value is not None:
                found[name].append(value)
    summary = {name: {"layer_rule": rule, "mean": float(np.mean(v)) if v else None,
                      "std": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v)}
               for (name, v), rule in zip(found.items(), ("last 3D conv",
                                                          "deepest 3D conv >= 4 wide"),
                                          strict=True)}
    for name, s in summary.items():
        print(f"{name:<8} ({s['layer_rule']}): lesion enrichment {s['mean']:.2f} ± "
              f"{s['std']:.2f} over {s['n']} held-out abnormal scans")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
