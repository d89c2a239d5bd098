"""Seeded, stratified splits in which a patient never sits in two parts.

Example:
    >>> from collections import Counter
    >>> labels = [0] * 10 + [1] * 10
    >>> parts = holdout(labels, [f"p{i}" for i in range(20)], 0.7, 0.1, 0.2, seed=0)
    >>> sorted(Counter(zip(parts.tolist(), labels)).items())  # doctest: +NORMALIZE_WHITESPACE
    [(('test', 0), 2), (('test', 1), 2), (('train', 0), 7), (('train', 1), 7),
     (('val', 0), 1), (('val', 1), 1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ct3d.errors import Ct3dError


class SplitError(Ct3dError, ValueError):
    """A split that cannot be made (one class only, too few scans for the parts asked)."""


def _groups_by_class(labels: Sequence[int], groups: Sequence[str]) -> dict[int, list[str]]:
    """Unique groups per class (a group's class is the class of its first scan), sorted."""
    first: dict[str, int] = {}
    for label, group in zip(labels, groups, strict=True):
        first.setdefault(group, int(label))
    classes = sorted(set(first.values()))
    if len(classes) < 2:
        raise SplitError(f"a stratified split needs at least 2 classes, found {classes}")
    return {c: sorted(g for g, lab in first.items() if lab == c) for c in classes}


def holdout(
    labels: Sequence[int], groups: Sequence[str], train: float, val: float, test: float,
    seed: int,
) -> np.ndarray:
    """Part name (``train``/``val``/``test``) per scan, stratified by class, seeded.

    Each class's patients are shuffled and cut by the fractions (rounded), so every part
    with a fraction > 0 gets at least one patient of every class, or :class:`SplitError`.
    """
    rng = np.random.default_rng(seed)
    part_of: dict[str, str] = {}
    for cls, members in _groups_by_class(labels, groups).items():
        order = [members[i] for i in rng.permutation(len(members))]
        n_test, n_val = round(len(order) * test), round(len(order) * val)
        n_train = len(order) - n_test - n_val
        for name, n, frac in (("train", n_train, train), ("val", n_val, val),
                              ("test", n_test, test)):
            if frac > 0 and n < 1:
                raise SplitError(
                    f"too few scans for the split: class {cls} has {len(order)} patient(s), "
                    f"which gives no {name} patient at fraction {frac}"
                )
        for i, group in enumerate(order):
            part_of[group] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return np.array([part_of[g] for g in groups])


def kfold(labels: Sequence[int], groups: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold index per scan (stratified group k-fold, seeded)."""
    from sklearn.model_selection import StratifiedGroupKFold  # 0.6 s: only when folding

    per_class = _groups_by_class(labels, groups)
    small = {c: len(g) for c, g in per_class.items() if len(g) < k}
    if small:
        raise SplitError(f"too few patients for {k} folds: {small} (class: patients)")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = np.zeros(len(labels), dtype=int)
    for fold, (_, test_idx) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[test_idx] = fold
    return folds


def split_folds(
    labels: Sequence[int], groups: Sequence[str], kind: Literal["holdout", "kfold"] = "holdout",
    train: float = 0.7, val: float = 0.1, test: float = 0.2, k: int = 5, fold: int | None = None,
    repeats: int = 1, seed: int = 0,
) -> list[np.ndarray]:
    """The part (``train``/``val``/``test``) of every scan, one array per model to train.

    ``holdout``: one array, :func:`holdout` with the fractions ``train``/``val``/``test``.
    ``kfold``: one array per fold (every fold, or only ``fold``): that fold is ``test``, and
    ``val`` is a stratified fraction of the other folds' patients (seeded by ``seed + 1 +
    fold``), the rest ``train``. ``repeats`` (kfold only): the k-fold split is made that
    many times, repeat ``r`` exactly as a single split of seed ``seed + r`` (so repeat 0 is
    the split of ``repeats=1``); the arrays come in order repeat 0 fold 0 .. k - 1, repeat 1
    fold 0 .., that is fold ``i`` of repeat ``r`` at ``r * k + i`` (with ``fold`` set: one
    array per repeat). The keyword names are those of a scenario's ``split``.

    Example:
        >>> from collections import Counter
        >>> labels, groups = [0] * 6 + [1] * 6, [f"p{i}" for i in range(12)]
        >>> parts = split_folds(labels, groups, "kfold", val=0.25, k=3, seed=0)
        >>> len(parts), [sorted(Counter(p.tolist()).items()) for p in parts][0]
        (3, [('test', 4), ('train', 6), ('val', 2)])
        >>> len(split_folds(labels, groups, "kfold", val=0.25, k=3, repeats=2, seed=0))
        6
    """
    if repeats < 1 or (repeats > 1 and kind != "kfold"):
        raise SplitError(f"repeats must be >= 1, and 1 unless kind='kfold'; received "
                         f"repeats={repeats}, kind={kind!r}")
    if kind == "holdout":
        return [holdout(labels, groups, train, val, test, seed)]
    out = []
    for repeat_seed in range(seed, seed + repeats):
        folds = kfold(labels, groups, k, repeat_seed)
        for chosen in range(k) if fold is None else [fold]:
            parts = np.where(folds == chosen, "test", "train").astype("<U5")
            rest = np.flatnonzero(folds != chosen)
            if val > 0:
                parts[rest] = holdout([labels[i] for i in rest], [groups[i] for i in rest],
                                      1 - val, val, 0.0, repeat_seed + 1 + chosen)
            out.append(parts)
    return out
