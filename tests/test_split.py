"""Splits: stratification, no patient in two parts, determinism, and clear errors; the
k-fold parts checked are those the engine trains on (``split_folds``)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ct3d.data.split import SplitError, holdout, kfold, split_folds


def _cohort(n0: int, n1: int, scans_per_patient: int = 1) -> tuple[list[int], list[str]]:
    labels, groups = [], []
    for cls, n in ((0, n0), (1, n1)):
        for i in range(n):
            labels += [cls] * scans_per_patient
            groups += [f"c{cls}p{i}"] * scans_per_patient
    return labels, groups


def test_thesis_holdout_is_140_20_40_and_balanced() -> None:
    labels, groups = _cohort(100, 100)
    parts = holdout(labels, groups, 0.7, 0.1, 0.2, seed=0)
    counts = Counter(zip(parts.tolist(), labels, strict=True))
    assert counts == {("train", 0): 70, ("train", 1): 70, ("val", 0): 10, ("val", 1): 10,
                      ("test", 0): 20, ("test", 1): 20}


def test_holdout_is_seeded() -> None:
    labels, groups = _cohort(30, 20)
    a = holdout(labels, groups, 0.6, 0.2, 0.2, seed=7)
    assert np.array_equal(a, holdout(labels, groups, 0.6, 0.2, 0.2, seed=7))
    assert not np.array_equal(a, holdout(labels, groups, 0.6, 0.2, 0.2, seed=8))


def test_no_patient_in_two_parts() -> None:
    labels, groups = _cohort(12, 12, scans_per_patient=3)
    for parts in (holdout(labels, groups, 0.5, 0.25, 0.25, seed=1),
                  *split_folds(labels, groups, "kfold", val=0.2, k=4, seed=1)):
        by_patient: dict[str, set[str]] = {}
        for g, p in zip(groups, parts, strict=True):
            by_patient.setdefault(g, set()).add(p)
        assert all(len(s) == 1 for s in by_patient.values())
        assert set(parts) == {"train", "val", "test"}


def test_kfold_is_stratified_covers_everyone_once_and_seeded() -> None:
    labels, groups = _cohort(20, 10)
    folds = kfold(labels, groups, k=5, seed=3)
    assert Counter(folds.tolist()) == {f: 6 for f in range(5)}
    for f in range(5):
        assert Counter(np.array(labels)[folds == f].tolist()) == {0: 4, 1: 2}
    assert np.array_equal(folds, kfold(labels, groups, k=5, seed=3))
    every = split_folds(labels, groups, "kfold", val=0.25, k=5, seed=3)
    assert len(every) == 5
    for fold, parts in enumerate(every):
        assert np.array_equal(parts == "test", folds == fold)
        assert Counter(parts.tolist()) == {"train": 18, "val": 6, "test": 6}
        for part, n in (("train", 18), ("val", 6)):  # val: stratified 2:1 like the cohort
            assert Counter(np.array(labels)[parts == part].tolist()) == {0: n * 2 // 3,
                                                                         1: n // 3}
    only = split_folds(labels, groups, "kfold", val=0.25, k=5, fold=1, seed=3)
    assert len(only) == 1 and np.array_equal(only[0], every[1])
    single = split_folds(labels, groups, train=0.6, val=0.2, test=0.2, seed=3)
    assert [p.tolist() for p in single] == [holdout(labels, groups, 0.6, 0.2, 0.2, 3).tolist()]


@pytest.mark.parametrize(("labels", "groups", "message"), [
    ([0, 0, 0, 0], ["a", "b", "c", "d"], "needs at least 2 classes, found \\[0\\]"),
    ([0, 0, 1, 1], ["a", "b", "c", "d"], "class 0 has 2 patient\\(s\\), which gives no val"),
])
def test_holdout_errors(labels: list[int], groups: list[str], message: str) -> None:
    with pytest.raises(SplitError, match=message):
        holdout(labels, groups, 0.7, 0.1, 0.2, seed=0)


def test_kfold_too_few_patients() -> None:
    labels, groups = _cohort(6, 3)
    with pytest.raises(SplitError, match="too few patients for 5 folds: \\{1: 3\\}"):
        kfold(labels, groups, k=5, seed=0)


def test_repeated_kfold_keeps_repeat_0_and_reseeds_each_repeat() -> None:
    labels, groups = _cohort(12, 9, scans_per_patient=2)
    k, seed = 3, 4
    once = split_folds(labels, groups, "kfold", val=0.25, k=k, seed=seed)
    thrice = split_folds(labels, groups, "kfold", val=0.25, k=k, repeats=3, seed=seed)
    assert len(thrice) == 9
    for r in range(3):  # repeat r is exactly the single split of seed + r
        alone = split_folds(labels, groups, "kfold", val=0.25, k=k, seed=seed + r)
        assert all(np.array_equal(a, b) for a, b in zip(thrice[r * k:(r + 1) * k], alone,
                                                          strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(thrice[:k], once, strict=True))
    assert all(np.array_equal(p == "test", kfold(labels, groups, k, seed) == i)
               for i, p in enumerate(once))  # repeat 0 is today's k-fold split
    tested = [np.sum([p == "test" for p in thrice[r * k:(r + 1) * k]], axis=0)
              for r in range(3)]
    assert all(t.tolist() == [1] * len(labels) for t in tested)  # every scan once per repeat
    fold_of = [np.argmax([p == "test" for p in thrice[r * k:(r + 1) * k]], axis=0)
               for r in range(3)]
    together = [(fold_of[0] == i) for i in range(k)]
    assert not any(np.array_equal(fold_of[1] == j, t) for j in range(k) for t in together)
    only = split_folds(labels, groups, "kfold", val=0.25, k=k, fold=2, repeats=3, seed=seed)
    assert len(only) == 3
    assert all(np.array_equal(o, thrice[r * k + 2]) for r, o in enumerate(only))


@pytest.mark.parametrize(("kind", "repeats"), [("kfold", 0), ("holdout", 2)])
def test_repeats_must_be_positive_and_kfold(kind: str, repeats: int) -> None:
    labels, groups = _cohort(6, 6)
    with pytest.raises(SplitError, match=f"received repeats={repeats}, kind='{kind}'"):
        split_folds(labels, groups, kind, k=3, repeats=repeats)
