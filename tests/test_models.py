"""Model builders: exact parameter counts and output shapes of the thesis' networks."""

from __future__ import annotations

import numpy as np
import pytest

from ct3d.registry import MODELS


def _counts(model) -> tuple[int, int]:  # noqa: ANN001
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return model.count_params(), non_trainable


@pytest.mark.parametrize(("name", "total", "frozen"), [
    ("baseline_3dcnn", 1_352_897, 1024), ("modified_3dcnn", 214_817, 352)])
def test_parameter_counts_at_thesis_input(name: str, total: int, frozen: int) -> None:
    model = MODELS.create(name, input_shape=(128, 128, 64, 1))
    assert _counts(model) == (total, frozen)
    assert model.name == name
    assert model.output_shape == (None, 1)


def test_modified_layers_follow_the_thesis() -> None:
    model = MODELS.create("modified_3dcnn", input_shape=(128, 128, 64, 1))
    convs = [layer for layer in model.layers if layer.name.endswith("_conv")]
    assert [c.filters for c in convs] == [16, 32, 64, 64]
    drops = {layer.name: layer.rate for layer in model.layers if "dropout" in layer.name}
    assert drops == {"block2_dropout": 0.1, "block3_dropout": 0.1, "block4_dropout": 0.1,
                     "head_dropout": 0.2}
    assert model.get_layer("block4_pool").output.shape[1:4] == (6, 6, 2)


def test_small_input_predicts_probabilities() -> None:
    model = MODELS.create("modified_3dcnn", input_shape=(46, 46, 46, 1), dropout=0.0)
    prob = model.predict(np.zeros((2, 46, 46, 46, 1), np.float32), verbose=0)
    assert prob.shape == (2, 1) and np.all((prob > 0) & (prob < 1))


def test_input_too_small_or_malformed() -> None:
    with pytest.raises(ValueError, match=r"spatial size >= 46.*input_shape=\(45, 64, 64, 1\)"):
        MODELS.create("modified_3dcnn", input_shape=(45, 64, 64, 1))
    with pytest.raises(ValueError, match="must be \\(W, H, D, C\\)"):
        MODELS.create("baseline_3dcnn", input_shape=(64, 64, 1))
