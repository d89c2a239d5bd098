"""The search that chose the ``ct3d`` preset: candidate recipes on a development cohort.

The development cohort is its own synthetic cohort (seed 1: CT-0 vs CT-1, the hard task,
60 + 60 MosMed-shaped scans with varied scanners); the evaluation cohorts of the committed
reports use seed 0, so nothing is tuned on the scans the reports test on. Every candidate is
trained on the same 3 folds (stratified, seeded) and scored by its out-of-fold AUC; one
factor changes at a time from the starting recipe (the ``ct3d`` preset as first written;
the search chose ``antialias``, which the preset now has).

Usage:
    python benchmarks/recipe_search.py --work DIR [--only NAME ...] [--out FILE.json]

Prints one line per candidate (out-of-fold AUC with its 95% bootstrap interval, accuracy,
seconds per epoch) and writes them to ``--out`` (default
``benchmarks/results/recipe_search.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import ct3d
from ct3d.scenario import Scenario

_CHAIN = [
    {"name": "lung_crop", "params": {"margin_mm": 10.0}},
    {"name": "hu_window", "params": {"low": -1000.0, "high": 200.0}},
    {"name": "rotate90", "params": {"k": 1}},
    {"name": "resize", "params": {"shape": [64, 64, 48]}},
]

_LUNG_ONLY = {"name": "lung_only", "params": {"margin_mm": 10.0}}

CANDIDATES: dict[str, dict[str, Any]] = {
    "start": {},
    "no-lung-crop": {"preprocess": _CHAIN[1:]},
    "thesis-window": {"preprocess.1.params.high": 400.0},
    "standardize": {"preprocess": [_CHAIN[0], {"name": "standardize",
                                               "params": {"region": "lungs"}}, *_CHAIN[2:]]},
    "input-96x96x48": {"preprocess.3.params.shape": [96, 96, 48]},
    "no-augment": {"augment": []},
    "thesis-augment": {"augment": [
        {"name": "flip", "params": {"axes": [0, 1]}},
        {"name": "rotate", "params": {"degrees": [-20.0, 20.0]}},
        {"name": "contrast", "params": {"low": 0.5, "high": 1.0}}]},
    "bn-momentum-0.99": {"model.params.bn_momentum": 0.99},
    "resnet3d": {"model": {"name": "resnet3d", "params": {}}},
    "sgd-thesis-schedule": {"train.optimizer": "sgd", "train.schedule": "exponential",
                            "train.lr_decay_steps": 100_000},
    "epochs-60": {"train.epochs": 60, "train.patience": 60},
    "lung-only": {"preprocess": [_CHAIN[0], _LUNG_ONLY, *_CHAIN[1:]]},
    "antialias": {"preprocess.3.params.antialias": True},
    "antialias-more-augment": {
        "preprocess.3.params.antialias": True,
        "augment": [{"name": "flip", "params": {"axes": [0]}},
                    {"name": "rotate", "params": {"degrees": [-15.0, 15.0]}},
                    {"name": "gamma", "params": {"gamma": [0.8, 1.25]}},
                    {"name": "gaussian_noise", "params": {"std": 0.02}}]},
    "lung-only-96x96x48": {"preprocess": [_CHAIN[0], _LUNG_ONLY, *_CHAIN[1:3],
                                          {"name": "resize", "params": {"shape": [96, 96, 48]}}]},
    "lung-only-more-augment": {
        "preprocess": [_CHAIN[0], _LUNG_ONLY, *_CHAIN[1:]],
        "augment": [{"name": "flip", "params": {"axes": [0]}},
                    {"name": "rotate", "params": {"degrees": [-15.0, 15.0]}},
                    {"name": "gamma", "params": {"gamma": [0.8, 1.25]}}]},
}
"""Candidate name -> overrides of the starting recipe."""


def development(work: Path) -> Scenario:
    """The starting recipe (the ``ct3d`` preset as first written: its resize without
    ``antialias``) on the development cohort, 3-fold, paths under ``work``."""
    data = Scenario.preset("ct3d").to_dict()
    data["preprocess"] = [dict(step) for step in _CHAIN]
    return Scenario.from_dict(data).with_overrides({
        "data.root": str(work / ".data"), "data.cache": str(work / ".cache"),
        "data.labels": {"normal": ["CT-0"], "abnormal": ["CT-1"]},
        "data.synthetic.severity": "CT-1", "data.synthetic.normal": 60,
        "data.synthetic.abnormal": 60, "data.synthetic.seed": 1,
        "split.k": 3, "evaluate.n_boot": 1000,
    })


def candidate(base: Scenario, name: str) -> Scenario:
    """``base`` with the overrides of candidate ``name`` (whole lists replace lists)."""
    overrides = dict(CANDIDATES[name])
    data = base.to_dict()
    for key in ("preprocess", "augment", "model"):
        if key in overrides:
            data[key] = overrides.pop(key)
    return Scenario.from_dict(data).with_overrides({"name": name, **overrides})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="data, cache and run folders")
    parser.add_argument("--only", nargs="*", help="candidates to run (default: all)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "recipe_search.json")
    args = parser.parse_args()
    base = development(args.work)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.only or CANDIDATES:
        scenario = candidate(base, name).with_plugin_defaults()
        start = time.perf_counter()
        m = ct3d.run(scenario, out=args.work / "search" / name, verbose=0, force=True).metrics
        ci = (m.get("ci") or {}).get("auc")
        results[name] = {
            "overrides": CANDIDATES[name], "auc": m["auc"], "auc_ci": ci,
            "accuracy": m["accuracy"], "folds": len(m["folds"]), "n": m["n"],
            "time_per_epoch_s": round(sum(f["time_per_epoch_s"] for f in m["folds"])
                                      / len(m["folds"]), 2),
            "wall_s": round(time.perf_counter() - start),
        }
        r = results[name]
        print(f"{name:<22} AUC {r['auc']:.3f} [{ci[0]:.3f}-{ci[1]:.3f}]  acc {r['accuracy']:.3f}"
              f"  {r['time_per_epoch_s']:.1f} s/epoch  {r['wall_s']} s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
