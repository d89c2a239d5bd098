"""Fine-tuning phases: a frozen feature extractor first, then everything at a lower rate."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from ct3d.engine import run
from ct3d.engine.phases import feature_extractor, is_frozen, set_frozen
from ct3d.models import build_model
from ct3d.scenario import Scenario, ScenarioError


def _weights(layers: list) -> list[np.ndarray]:
    return [w.numpy().copy() for layer in layers for w in layer.weights]


@pytest.mark.parametrize(("name", "shape"), [("slice2d", (32, 32, 4, 1)),
                                             ("modified_3dcnn", (46, 46, 46, 1))])
def test_a_frozen_step_trains_the_head_only(name: str, shape: tuple[int, ...]) -> None:
    keras.utils.set_random_seed(0)
    model = build_model(name, input_shape=shape, dropout=0.0)
    extractor = feature_extractor(model)
    head = [layer for layer in model.layers if layer.weights and layer not in extractor]
    set_frozen(model, True)
    assert is_frozen(model)
    model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy")
    x = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    y = np.array([0, 1, 0, 1], np.float32)
    before, before_head = _weights(extractor), _weights(head)
    model.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(extractor), strict=True))
    assert any(not np.array_equal(a, b)
               for a, b in zip(before_head, _weights(head), strict=True))
    set_frozen(model, False)
    assert not is_frozen(model)


def test_freeze_epochs_are_checked() -> None:
    base = Scenario.preset("quick")
    with pytest.raises(ScenarioError, match=r"train.freeze_epochs must be in \[0, train.epochs\]"):
        base.with_overrides({"train.epochs": 3, "train.freeze_epochs": 4}).validate()
    with pytest.raises(ScenarioError, match=r"finetune_lr_scale in \(0, 1\]"):
        base.with_overrides({"train.finetune_lr_scale": 0.0}).validate()


class _Interrupt(keras.callbacks.Callback):
    """Stop the process' fit like a kill would: after the state of ``epoch`` is saved."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.at = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.at:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resume_across_the_phase_change_equals_an_uninterrupted_run(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    overrides = {"train.epochs": 3, "train.freeze_epochs": 2, "train.patience": 0,
                 "model": {"name": "slice2d", "params": {"aggregation": "mean"}}}
    scenario = make_scenario(cohort_root, tmp_path / "full", **overrides)
    full = run(scenario, verbose=0).metrics
    with (tmp_path / "full" / "history.csv").open(newline="") as f:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    lr = scenario.train.learning_rate
    assert rates == pytest.approx([lr, lr, lr * 0.1])  # patience 0 cannot stop a frozen phase

    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run(scenario, out=killed, verbose=0, callbacks=[_Interrupt(2)])
    state = json.loads((killed / "state" / "state.json").read_text())
    assert state["epoch"] == 2 and is_frozen(keras.saving.load_model(
        killed / "state" / state["last_file"]))
    resumed = run(resume=killed, verbose=0).metrics
    for measured in ("time_per_epoch_s", "peak_rss_gib"):
        full.pop(measured), resumed.pop(measured)
    assert resumed == full
