"""Metrics from counts and probabilities."""

from __future__ import annotations

import math

import pytest

from ct3d.evaluate import binary_metrics, format_table


def test_metrics_from_counts_not_normalized_matrix() -> None:
    # 6 normal (5 right), 2 abnormal (both right): precision from counts is 2/3,
    # from a row-normalized matrix it would be 1 / (1 + 1/6) = 0.857.
    y = [0, 0, 0, 0, 0, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.2, 0.1, 0.7, 0.8, 0.9]
    m = binary_metrics(y, p)
    assert m["confusion_matrix"] == [[5, 1], [0, 2]]
    assert m["accuracy"] == pytest.approx(7 / 8)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == 1.0
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(0.8)
    assert m["auc"] == 1.0
    assert m["mse"] == pytest.approx(sum((a - b) ** 2 for a, b in zip(p, y, strict=True)) / 8)
    expected_loss = -sum(math.log(q if t else 1 - q) for t, q in zip(y, p, strict=True)) / 8
    assert m["loss"] == pytest.approx(expected_loss)
    assert m["n"] == 8


def test_single_class_has_no_auc_and_table_shows_dash() -> None:
    m = binary_metrics([1, 1, 1], [0.2, 0.6, 0.9])
    assert m["auc"] is None and m["confusion_matrix"] == [[0, 0], [1, 2]]
    table = format_table({"test": m})
    assert "test confusion matrix (rows = true 0/1): [[0 0] [1 2]]" in table
    assert table.splitlines()[1].split()[7] == "-"


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        binary_metrics([0, 1], [0.5])
