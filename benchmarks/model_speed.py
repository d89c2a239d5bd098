"""Cost of each model family here: parameters, GFLOPs per scan, seconds per training epoch,
peak memory.

Each model is measured in its own process (so peak RSS is its own): built and compiled by
``ct3d.engine.fit`` as a scenario of the ``ct3d`` preset with that model trains it, then
``fit`` on one in-memory batch repeated for ``--n`` scans per epoch (one warm-up epoch,
then ``--epochs`` timed). Seconds per epoch = ``n`` / scans per second; GFLOPs: forward pass
of one scan, counted by TensorFlow's profiler on the traced graph (multiply-add = 2 FLOPs).
No data is read: this is the model's own cost, the input pipeline is measured by
``input_pipeline.py``.

Usage:
    python benchmarks/model_speed.py [--shape 128 128 64] [--n 140] [--batch 4]
                                     [--epochs 2] [--models NAME ...] [--json OUT.json]

``--models``: keys of ``MODELS`` below (default: all).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import time
from collections.abc import Sequence
from typing import Any

MODELS: dict[str, dict[str, Any]] = {
    "thesis-cnn": {"name": "modified_3dcnn", "params": {"bn_momentum": 0.9}},
    "keras-example-cnn": {"name": "baseline_3dcnn", "params": {}},
    "resnet3d": {"name": "resnet3d", "params": {"depth": 18}},
    "slice2d-small-mean": {"name": "slice2d", "params": {"aggregation": "mean"}},
    "slice2d-small-attention": {"name": "slice2d", "params": {"aggregation": "attention"}},
    "slice25d-small-attention": {"name": "slice25d", "params": {"aggregation": "attention"}},
    "inflated3d-2stages": {"name": "inflated3d", "params": {"stages": 2}},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[128, 128, 64])
    parser.add_argument("--n", type=int, default=140, help="scans per epoch")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def measure_one(key: str, args: argparse.Namespace) -> dict[str, Any]:
    """One model's figures (run in a fresh process)."""
    import keras
    import tensorflow as tf

    from ct3d.engine.cost import forward_gflops, peak_rss_gib
    from ct3d.engine.fit import compiled_model
    from ct3d.scenario import Scenario

    shape = tuple(args.shape)
    scenario = Scenario.preset("ct3d").with_overrides({"model": MODELS[key]})
    keras.utils.set_random_seed(0)
    steps = math.ceil(args.n / args.batch)
    model = compiled_model(scenario, shape, 2, steps)
    x = tf.random.uniform((args.batch, *shape, 1), seed=0)
    y = tf.constant([i % 2 for i in range(args.batch)], tf.float32)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    marks: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: marks.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: marks.append(time.perf_counter()))
    model.fit(dataset, epochs=1 + args.epochs, steps_per_epoch=steps, callbacks=[timer],
              shuffle=False, verbose=0)
    timed = [marks[i + 1] - marks[i] for i in range(2, len(marks), 2)]
    return {"model": MODELS[key], "params": int(model.count_params()),
            "gflops_per_scan": round(forward_gflops(model), 3),
            "seconds_per_epoch": round(float(sum(timed) / len(timed)) * args.n
                                       / (steps * args.batch), 2),
            "peak_rss_gib": round(peak_rss_gib(), 2)}


def _child(key: str, args: argparse.Namespace, queue: Any) -> None:
    queue.put(measure_one(key, args))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    for key in args.models:
        queue = context.Queue()
        process = context.Process(target=_child, args=(key, args, queue))
        process.start()
        process.join()
        if process.exitcode != 0:
            print(f"{key:<26} failed (exit code {process.exitcode}); see its traceback above",
                  flush=True)
            continue
        r = results[key] = queue.get()
        print(f"{key:<26} {r['params']:>11,} params {r['gflops_per_scan']:>8.2f} GFLOPs/scan "
              f"{r['seconds_per_epoch']:>8.1f} s/epoch  peak RSS {r['peak_rss_gib']:.2f} GiB",
              flush=True)
    if "thesis-cnn" in results:
        base = results["thesis-cnn"]["seconds_per_epoch"]
        for r in results.values():
            r["epoch_time_vs_thesis_cnn"] = round(r["seconds_per_epoch"] / base, 2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "shape": args.shape, "n": args.n,
                       "batch": args.batch, "epochs": args.epochs, "results": results},
                      f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
