"""Input without TensorFlow: ``CachedBatches`` gives the batches ``tf.data`` gives, same order,
same augmentation, same resume, on the TensorFlow backend and on JAX."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from ct3d.augment import build_augment
from ct3d.data.batches import CachedBatches
from ct3d.data.order import Share, epoch_batches, epoch_order
from ct3d.data.pipeline import eval_dataset, training_dataset

AUGMENT = ["flip", "rotate", "contrast", "gaussian_noise"]


@pytest.fixture
def cached(tmp_path: Path) -> tuple[list[Path], list[float]]:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(7):
        paths.append(tmp_path / f"scan{i}.npy")
        np.save(paths[-1], rng.random((12, 10, 6), dtype=np.float32))
    return paths, [float(i % 2) for i in range(7)]


def _batches(data: object) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)) for x, y in data]


def _same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]
          ) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_allclose(xa, xb, atol=1e-5)
        np.testing.assert_array_equal(ya, yb)


def test_same_batches_as_tf_data_with_augmentation_and_resume(
    cached: tuple[list[Path], list[float]],
) -> None:
    paths, labels = cached
    augment = build_augment(AUGMENT)
    ours = CachedBatches(paths, labels, 3, seed=5, augment=augment, epochs=3)
    assert (ours.steps, len(ours)) == (3, 9)
    theirs = training_dataset(paths, labels, 3, seed=5, augment=augment, epochs=3)
    seen = _batches(ours[i] for i in range(len(ours)))
    _same(seen, _batches(theirs))
    assert [x.shape[0] for x, _ in seen] == [3, 3, 1] * 3
    assert not np.allclose(seen[0][0], seen[3][0][: len(seen[0][0])])
    resumed = CachedBatches(paths, labels, 3, seed=5, augment=augment, epochs=3, initial_epoch=1)
    _same(seen[3:], _batches(resumed[i] for i in range(len(resumed))))


def test_every_epoch_visits_every_scan_once_in_its_own_order(
    cached: tuple[list[Path], list[float]],
) -> None:
    paths, labels = cached
    batches = CachedBatches(paths, labels, 4, seed=0, epochs=2)
    sums = {float(np.load(p).sum()): i for i, p in enumerate(paths)}
    visits = [[sums[float(v.sum())] for v in batches[i][0]] for i in range(len(batches))]
    first, second = visits[0] + visits[1], visits[2] + visits[3]
    assert sorted(first) == sorted(second) == list(range(7))
    assert first != second
    assert first == epoch_order(0, 0, 7).tolist() and second == epoch_order(0, 1, 7).tolist()
    assert [labels[i] for i in first] == batches[0][1].tolist() + batches[1][1].tolist()


def test_without_shuffle_it_is_the_evaluation_input(cached: tuple[list[Path], list[float]]
                                                    ) -> None:
    paths, labels = cached
    ordered = CachedBatches(paths, labels, 4, shuffle=False)
    _same(_batches(ordered[i] for i in range(len(ordered))),
          _batches(eval_dataset(paths, labels, 4)))
    with pytest.raises(IndexError, match="batch 2 of 2"):
        ordered[2]


def test_epoch_batches_cut_the_last_batch_to_a_multiple_of_the_devices() -> None:
    sizes = {n: [b.stop - b.start for b in epoch_batches(n, 4, 2)] for n in (7, 8, 9, 1, 0)}
    assert sizes == {7: [4, 2], 8: [4, 4], 9: [4, 4], 1: [], 0: []}
    assert epoch_batches(7, 4) == [slice(0, 4), slice(4, 7)]
    with pytest.raises(ValueError, match="batch size 3 is not a multiple of 2"):
        epoch_batches(7, 3, 2)


def test_shares_of_two_processes_make_up_the_one_process_batches(
    cached: tuple[list[Path], list[float]],
) -> None:
    """Two processes of two devices each (4 devices): training batches of 4 scans, each
    process given its half, augmented as one process would (the whole batch's draws); the
    7th scan sits out each epoch. Evaluation: 7 scans in batches of 4 filled up to 8 with a
    copy of the last one, weighed 0."""
    paths, labels = cached
    augment = build_augment(AUGMENT)
    whole = CachedBatches(paths, labels, 4, seed=2, augment=augment, epochs=2,
                          share=Share(devices=4))
    halves = [CachedBatches(paths, labels, 4, seed=2, augment=augment, epochs=2,
                            share=Share(4, process, 2)) for process in (0, 1)]
    assert whole.steps == halves[0].steps == 1 and len(whole) == 2
    for i in range(len(whole)):
        x, y = whole[i]
        assert x.shape[0] == 4
        (x0, y0), (x1, y1) = halves[0][i], halves[1][i]
        np.testing.assert_allclose(np.concatenate([x0, x1]), x, atol=1e-6)
        np.testing.assert_array_equal(np.concatenate([y0, y1]), y)
    alone = CachedBatches(paths, labels, 4, seed=2, augment=augment, epochs=2)
    np.testing.assert_allclose(alone[0][0], whole[0][0], atol=1e-6)  # same draws, same scans
    evaluation = [CachedBatches(paths, labels, 4, shuffle=False, share=Share(4, process, 2))
                  for process in (0, 1)]
    assert evaluation[0].padding == 1
    (xa, ya, wa), (xb, yb, wb) = evaluation[0][1], evaluation[1][1]
    assert wa.tolist() == [1, 1] and wb.tolist() == [1, 0]
    np.testing.assert_array_equal(xb[1], xb[0])  # the copy of scan 6
    assert np.concatenate([ya, yb]).tolist() == [labels[4], labels[5], labels[6], labels[6]]
    np.testing.assert_array_equal(xa[0][..., 0], np.load(paths[4]))


def test_fit_reads_the_batches_in_order_across_epochs(cached: tuple[list[Path], list[float]]
                                                      ) -> None:
    """``fit(shuffle=False)``: Keras peeks at the first batches, then reads every batch in
    order, going on through the dataset from one epoch to the next (with the default
    ``shuffle=True`` it would shuffle the batches)."""
    paths, labels = cached

    class Recording(CachedBatches):
        asked: list[int] = []

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            self.asked.append(index)
            return super().__getitem__(index)

    batches = Recording(paths, labels, 3, seed=1, epochs=3, workers=1)
    model = keras.Sequential([keras.Input((12, 10, 6, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    history = model.fit(batches, epochs=3, steps_per_epoch=batches.steps, verbose=0,
                        shuffle=False)
    assert len(history.history["loss"]) == 3
    assert Recording.asked[-9:] == list(range(9))


PROBE = """
import json, sys
import numpy as np
import keras
from ct3d.augment import build_augment
from ct3d.data.batches import CachedBatches

paths, out = json.loads(sys.argv[1]), sys.argv[2]
batches = CachedBatches(paths, [0.0, 1.0] * 3 + [0.0], 3, seed=5,
                        augment=build_augment(json.loads(sys.argv[3])), epochs=2)
np.savez(out, *[batches[i][0] for i in range(len(batches))])
print(json.dumps({"backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules}))
"""


def test_jax_backend_gives_the_tf_data_batches(
    cached: tuple[list[Path], list[float]], tmp_path: Path,
) -> None:
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install jax)")
    paths, labels = cached
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([str(p) for p in paths]), str(tmp_path / "b.npz"),
         json.dumps(AUGMENT)],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"backend": "jax", "tensorflow": False}
    theirs = _batches(training_dataset(paths, labels, 3, 5, build_augment(AUGMENT), 2))
    with np.load(tmp_path / "b.npz") as jax_batches:
        ours = [(jax_batches[f"arr_{i}"], theirs[i][1]) for i in range(len(jax_batches))]
    _same(ours, theirs)
