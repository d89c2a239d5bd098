"""Model builders: thesis parameter counts, output heads, weights files, ResNet and DenseNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ct3d.models import build_model
from ct3d.models.resnet3d import resnet3d
from ct3d.registry import MODELS


def _counts(model) -> tuple[int, int]:  # noqa: ANN001
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return model.count_params(), non_trainable


@pytest.mark.parametrize(("name", "total", "frozen"), [
    ("baseline_3dcnn", 1_352_897, 1024), ("modified_3dcnn", 214_817, 352)])
def test_parameter_counts_at_thesis_input(name: str, total: int, frozen: int) -> None:
    model = build_model(name, input_shape=(128, 128, 64, 1))
    assert _counts(model) == (total, frozen)
    assert model.name == name
    assert model.output_shape == (None, 1)


def test_modified_layers_follow_the_thesis() -> None:
    model = build_model("modified_3dcnn", input_shape=(128, 128, 64, 1))
    convs = [layer for layer in model.layers if layer.name.endswith("_conv")]
    assert [c.filters for c in convs] == [16, 32, 64, 64]
    drops = {layer.name: layer.rate for layer in model.layers if "dropout" in layer.name}
    assert drops == {"block2_dropout": 0.1, "block3_dropout": 0.1, "block4_dropout": 0.1,
                     "head_dropout": 0.2}
    assert model.get_layer("block4_pool").output.shape[1:4] == (6, 6, 2)


def test_small_input_predicts_probabilities() -> None:
    model = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1), dropout=0.0)
    prob = model.predict(np.zeros((2, 46, 46, 46, 1), np.float32), verbose=0)
    assert prob.shape == (2, 1) and np.all((prob > 0) & (prob < 1))


def test_input_too_small_or_malformed() -> None:
    with pytest.raises(ValueError, match=r"spatial size >= 46.*input_shape=\(45, 64, 64, 1\)"):
        build_model("modified_3dcnn", input_shape=(45, 64, 64, 1))
    with pytest.raises(ValueError, match="must be \\(W, H, D, C\\)"):
        build_model("baseline_3dcnn", input_shape=(64, 64, 1))


ALL_MODELS = MODELS.names()
VOLUME_MODELS = [name for name in ALL_MODELS if not name.startswith("slice")]
SMALL_INPUT = (48, 48, 48, 1)


def _conv3d_layers(model) -> list:  # noqa: ANN001
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]


def _scans(shape: tuple[int, ...], n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def test_the_builders_are_registered_with_their_parameters() -> None:
    assert ALL_MODELS == ["baseline_3dcnn", "densenet3d", "inflated3d", "modified_3dcnn",
                          "resnet3d", "slice25d", "slice2d"]
    for name in ALL_MODELS:
        params = {p.name: p for p in MODELS.describe(name).params}
        assert "input_shape" not in params and "classes" not in params
        assert (params["weights"].type_name, params["weights"].default) == ("str | None", None)
    resnet = {p.name: (p.type_name, p.default) for p in MODELS.describe("resnet3d").params}
    assert resnet["depth"] == ("10 | 18 | 34", 18)
    dense = {p.name: (p.type_name, p.default) for p in MODELS.describe("densenet3d").params}
    assert dense["blocks"] == ("tuple[int, ...]", (4, 4, 4))
    assert MODELS.resolve("densenet3d", {"blocks": [2, 3]}).params["blocks"] == (2, 3)


@pytest.mark.parametrize("name", VOLUME_MODELS)
@pytest.mark.parametrize("shape", [SMALL_INPUT, (64, 64, 48, 1)])
def test_every_model_builds_with_a_sigmoid_or_softmax_head(
    name: str, shape: tuple[int, int, int, int]
) -> None:
    binary = build_model(name, input_shape=shape)
    assert binary.name == name and binary.output_shape == (None, 1)
    assert binary.get_layer("probability").activation.__name__ == "sigmoid"
    assert _conv3d_layers(binary), "Grad-CAM needs a Conv3D layer"
    prob = binary(_scans(shape), training=False).numpy()
    assert prob.shape == (2, 1) and np.all((prob > 0) & (prob < 1))

    three = build_model(name, input_shape=shape, classes=3)
    assert three.name == name and three.output_shape == (None, 3)
    assert three.get_layer("probability").activation.__name__ == "softmax"
    probs = three(_scans(shape), training=False).numpy()
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.slow
@pytest.mark.parametrize(("classes", "loss", "labels"), [
    (2, "binary_crossentropy", np.array([0.0, 1.0], np.float32)),
    (3, "sparse_categorical_crossentropy", np.array([0, 2]))])
def test_every_model_trains_one_step(
    name: str, classes: int, loss: str, labels: np.ndarray
) -> None:
    model = build_model(name, input_shape=SMALL_INPUT, classes=classes)
    model.compile("adam", loss, run_eagerly=True)
    value = model.train_on_batch(_scans(SMALL_INPUT), labels)
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.parametrize("name", VOLUME_MODELS)
def test_every_model_checks_classes_and_input_size(name: str) -> None:
    for classes in (1, 0, True):
        with pytest.raises(ValueError, match=rf"`classes` must be an integer >= 2; "
                                             rf"received classes={classes}"):
            build_model(name, input_shape=SMALL_INPUT, classes=classes)
    with pytest.raises(ValueError, match=r"must be \(W, H, D, C\); received input_shape="
                                         r"\(48, 48, 1\)"):
        build_model(name, input_shape=(48, 48, 1))
    with pytest.raises(ValueError, match=rf"{name} needs every spatial size >= \d+ .*"
                                         rf"received input_shape=\(48, 15, 48, 1\)"):
        build_model(name, input_shape=(48, 15, 48, 1))


@pytest.mark.parametrize(("name", "minimum"), [("resnet3d", 32), ("densenet3d", 16)])
def test_minimum_input_size_is_quoted_and_accepted(name: str, minimum: int) -> None:
    with pytest.raises(ValueError, match=rf"{name} needs every spatial size >= {minimum} "):
        build_model(name, input_shape=(64, 64, minimum - 1, 1))
    model = build_model(name, input_shape=(minimum, minimum, minimum, 1))
    assert model(_scans((minimum,) * 3 + (1,)), training=False).shape == (2, 1)


def test_resnet3d_depths_grow_with_the_expected_residual_blocks() -> None:
    counts, adds = [], []
    for depth in (10, 18, 34):
        model = build_model("resnet3d", input_shape=SMALL_INPUT, depth=depth, width=4)
        counts.append(model.count_params())
        adds.append(sum(layer.name.endswith("_add") for layer in model.layers))
    assert counts[0] < counts[1] < counts[2]
    assert adds == [4, 8, 16]
    stages = [model.get_layer(f"conv{s}_block1_add").output.shape[1:] for s in (2, 3, 4, 5)]
    assert stages == [(12, 12, 12, 4), (6, 6, 6, 8), (3, 3, 3, 16), (2, 2, 2, 32)]
    assert _conv3d_layers(model)[-1].name == "conv5_block3_2_conv"
    with pytest.raises(ValueError, match=r"parameter 'depth': expected 10 \| 18 \| 34, got 50"):
        build_model("resnet3d", input_shape=SMALL_INPUT, depth=50)
    with pytest.raises(ValueError, match="`depth` must be one of 10, 18, 34; received depth=50"):
        resnet3d(input_shape=SMALL_INPUT, depth=50)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`width` must be an integer >= 1; received width=0"):
        build_model("resnet3d", input_shape=SMALL_INPUT, width=0)


@pytest.mark.parametrize("growth", [4, 8])
def test_densenet3d_growth_sets_the_channel_counts(growth: int) -> None:
    width, blocks = 8, (2, 3)
    model = build_model("densenet3d", input_shape=SMALL_INPUT, blocks=blocks, growth=growth,
                          width=width, compression=0.5)
    first = model.get_layer(f"conv2_block{blocks[0]}_concat").output.shape[-1]
    assert first == width + blocks[0] * growth
    compressed = model.get_layer("pool2_conv").output.shape[-1]
    assert compressed == int(first * 0.5)
    assert model.get_layer(f"conv3_block{blocks[1]}_concat").output.shape[-1] == (
        compressed + blocks[1] * growth)
    assert model.get_layer("pool2_pool").output.shape[1:4] == (6, 6, 6)
    with pytest.raises(ValueError, match=r"`compression` must be in \(0, 1\]; received "
                                         r"compression=0.0"):
        build_model("densenet3d", input_shape=SMALL_INPUT, compression=0.0)


@pytest.mark.parametrize("name", VOLUME_MODELS)
def test_weights_round_trip(name: str, tmp_path) -> None:  # noqa: ANN001
    x = _scans(SMALL_INPUT)
    saved = build_model(name, input_shape=SMALL_INPUT)
    path = tmp_path / f"{name}.weights.h5"
    saved.save_weights(path)
    loaded = build_model(name, input_shape=SMALL_INPUT, weights=str(path))
    fresh = build_model(name, input_shape=SMALL_INPUT)
    expected = saved(x, training=False).numpy()
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)
    assert not np.array_equal(fresh(x, training=False).numpy(), expected)


def test_weights_must_be_an_existing_local_weights_file(tmp_path) -> None:  # noqa: ANN001
    missing = tmp_path / "nowhere.weights.h5"
    for name in ALL_MODELS:
        with pytest.raises(FileNotFoundError, match=rf"weights file not found: '{missing}'"):
            build_model(name, input_shape=SMALL_INPUT, weights=str(missing))
    with pytest.raises(ValueError, match=r"local \.weights\.h5 file .* received "
                                         r"weights='https://example.org/w.h5'"):
        build_model("resnet3d", input_shape=SMALL_INPUT, weights="https://example.org/w.h5")


@pytest.mark.parametrize("name", ["slice2d", "slice25d", "resnet3d", "inflated3d"])
def test_batchnorm_momentum_reaches_every_batchnorm_layer_and_survives_saving(
    name: str, tmp_path: Path
) -> None:
    import keras

    from ct3d.models.loading import load_model, walk_layers

    def momenta(model: keras.Model) -> set[float]:
        return {layer.momentum for layer in walk_layers(model)
                if isinstance(layer, keras.layers.BatchNormalization)}

    shape = (32, 32, 32, 1)
    assert momenta(build_model(name, input_shape=shape)) == {0.99}            # Keras' default
    model = build_model(name, input_shape=shape, bn_momentum=0.9)
    assert momenta(model) == {0.9}
    model.save(tmp_path / "m.keras")
    assert momenta(load_model(tmp_path / "m.keras")) == {0.9}
    with pytest.raises(ValueError, match=r"`bn_momentum` must be in \[0, 1\); received "
                                         r"bn_momentum=1.0"):
        build_model(name, input_shape=shape, bn_momentum=1.0)
