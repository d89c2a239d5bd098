"""Input-pipeline throughput vs the model's consumption: does the cache keep training fed?

A synthetic quick-preset cohort is preprocessed into the cache with the thesis preset's
chain (its ``resize`` set to ``--shape``; not timed). Then, one after the other on the same
machine:

- input only: scans/s that ``ct3d.data.inputs.training_input`` delivers with no model
  attached (``tf.data`` on TensorFlow, the ``PyDataset`` on JAX and PyTorch), without and
  with the thesis preset's augmentation. Before each run the cached files are evicted from
  the OS page cache, so the first epoch reads from disk (cold); the later epochs read the
  page cache (warm), as every epoch after the first does in training.
- model: scans/s of the thesis preset's model, built and compiled by ``ct3d.engine.fit`` as the
  thesis scenario trains it, on one in-memory batch of the same shape, repeated (``fit``,
  one warm-up epoch, then ``--epochs``).

The input keeps up when its warm scans/s with augmentation is at least the model's.

Usage:
    python benchmarks/input_pipeline.py [--n 40] [--shape 128 128 64] [--epochs 3]
                                        [--batch 4] [--work DIR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ct3d.augment import build_augment
from ct3d.data.cache import Cache
from ct3d.data.dataset import Scan
from ct3d.data.inputs import training_input
from ct3d.data.synthetic import generate_cohort
from ct3d.engine.fit import compiled_model
from ct3d.scenario import Scenario

THESIS = Scenario.preset("thesis")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults: the thesis preset's batch size and input shape)."""
    shape = next(s.params["shape"] for s in THESIS.preprocess if s.name == "resize")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="scans, half normal (default 40)")
    parser.add_argument("--shape", type=int, nargs=3, default=list(shape), metavar=("W", "H", "D"),
                        help=f"preprocessed input shape (default {' '.join(map(str, shape))})")
    parser.add_argument("--batch", type=int, default=THESIS.train.batch_size,
                        help=f"batch size (default {THESIS.train.batch_size})")
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs after the first (cold / warm-up) one (default 3)")
    parser.add_argument("--work", help="folder for the cohort and cache (default: a temp dir); "
                                       "an existing cohort of the same size there is reused")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 2 or args.batch < 1 or args.epochs < 1 or min(args.shape) < 1:
        parser.error(f"need --n >= 2, --batch >= 1, --epochs >= 1 and a positive --shape; "
                     f"received n={args.n}, batch={args.batch}, epochs={args.epochs}, "
                     f"shape={args.shape}")
    return args


def cohort(folder: Path, n: int, seed: int) -> list[Scan]:
    """``n`` quick-preset scans (half normal) in ``folder``, generated unless already there."""
    found = sorted(folder.glob("CT-*/study_????.nii.gz"))
    if len(found) == n:
        paths = found
    else:
        paths = generate_cohort(folder, n // 2, n - n // 2, seed=seed, preset="quick",
                                workers=os.cpu_count() or 1, progress=False)
    return [Scan(str(p), int(p.parent.name == "CT-23"), p.parent.name, p.name) for p in paths]


def fill(scans: list[Scan], cache_root: Path, shape: Sequence[int]) -> list[Path]:
    """The cache files of ``scans`` under the thesis chain resized to ``shape``."""
    chain = [{"name": s.name, "params": {**s.params, "shape": list(shape)}
              if s.name == "resize" else s.params} for s in THESIS.preprocess]
    report = Cache(cache_root, chain).fill(scans, workers=os.cpu_count() or 1, strict=True,
                                           progress=False)
    return [p for p in report.paths if p is not None]


def evict(paths: Sequence[Path]) -> None:
    """Drop the files' pages from the OS page cache (flushed first), so the next read is cold."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def input_rates(paths: list[Path], labels: np.ndarray, batch: int, epochs: int, seed: int,
                augment: Any | None) -> dict[str, float]:
    """Scans/s of the cached input alone: its first epoch (cold read) and the later ones."""
    evict(paths)
    steps = math.ceil(len(paths) / batch)
    dataset = training_input(paths, labels, batch, seed, augment, 1 + epochs)
    batches = ((dataset[i] for i in range(len(dataset)))
               if isinstance(dataset, keras.utils.PyDataset) else dataset)
    marks, scans, count = [time.perf_counter()], [], 0
    for i, (x, _) in enumerate(batches, start=1):
        count += int(x.shape[0])
        if i % steps == 0:
            marks.append(time.perf_counter())
            scans.append(count)
            count = 0
    warm = sum(scans[1:]) / (marks[-1] - marks[1])
    return {"cold_first_epoch": scans[0] / (marks[1] - marks[0]), "warm": warm}


def model_rate(shape: Sequence[int], batch: int, n: int, epochs: int, seed: int) -> float:
    """Scans/s the thesis model (compiled as ``ct3d.engine.fit`` compiles it) trains at on one
    in-memory batch, after a warm-up epoch."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    steps = math.ceil(n / batch)
    model = compiled_model(THESIS, tuple(shape), 2, steps)
    x = tf.random.uniform((batch, *shape, 1), seed=seed)
    y = tf.constant([i % 2 for i in range(batch)], tf.float32)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    marks: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: marks.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: marks.append(time.perf_counter()))
    model.fit(dataset, epochs=1 + epochs, steps_per_epoch=steps, callbacks=[timer],
              shuffle=False, verbose=0)
    timed = sum(marks[i + 1] - marks[i] for i in range(2, len(marks), 2))
    return steps * batch * epochs / timed


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every rate, with the settings and the machine they were measured on (TensorFlow)."""
    import tensorflow as tf

    scans = cohort(work / f"data-quick-{args.n}", args.n, args.seed)
    paths = fill(scans, work / "cache", args.shape)
    labels = np.array([s.label for s in scans], dtype=np.float32)
    augment_steps = [{"name": s.name, "params": s.params} for s in THESIS.augment]
    plain = input_rates(paths, labels, args.batch, args.epochs, args.seed, None)
    augmented = input_rates(paths, labels, args.batch, args.epochs, args.seed,
                            build_augment(augment_steps))
    model = model_rate(args.shape, args.batch, args.n, args.epochs, args.seed)
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
                    "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]},
        "settings": {"scans": len(paths), "shape": list(args.shape), "batch": args.batch,
                     "timed_epochs": args.epochs, "model": THESIS.model.name,
                     "augment": [s["name"] for s in augment_steps]},
        "scans_per_s": {"input_no_aug": plain, "input_aug": augmented, "model_train": model},
        "ratio_input_aug_to_model": augmented["warm"] / model,
        "ratio_cold_input_aug_to_model": augmented["cold_first_epoch"] / model,
        "input_keeps_up": augmented["warm"] >= model,
    }


def table(result: dict[str, Any]) -> str:
    """The rates as a small text table, with the verdict."""
    r = result["scans_per_s"]
    s = result["settings"]
    lines = [f"{s['scans']} scans {'x'.join(map(str, s['shape']))}, batch {s['batch']}, "
             f"{s['timed_epochs']} timed epoch(s), model {s['model']}",
             f"{'scans/s':<34}{'1st epoch (cold)':>16}{'warm':>10}",
             f"{'input only, no augmentation':<34}{r['input_no_aug']['cold_first_epoch']:>16.1f}"
             f"{r['input_no_aug']['warm']:>10.1f}",
             f"{'input only, ' + '+'.join(s['augment']):<34}"
             f"{r['input_aug']['cold_first_epoch']:>16.1f}{r['input_aug']['warm']:>10.1f}",
             f"{'model train step (in memory)':<34}{'':>16}{r['model_train']:>10.1f}",
             f"input (augmented, warm) / model: {result['ratio_input_aug_to_model']:.1f}x "
             f"(cold: {result['ratio_cold_input_aug_to_model']:.1f}x); input keeps up: "
             f"{'yes' if result['input_keeps_up'] else 'NO'}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure, print the table, and write the JSON when asked."""
    args = parse_args(argv)
    if args.work:
        result = measure(args, Path(args.work))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = measure(args, Path(tmp))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
