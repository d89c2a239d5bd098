"""Slice models (2D / 2.5D backbones aggregated over slices) and backbone weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ct3d.models import build_model, min_input
from ct3d.models.backbones import (
    WeightsNotFound,
    build_backbone,
    input_scaling,
    list_backbones,
    scaling_layer,
)
from ct3d.models.loading import load_by_name
from ct3d.models.slice_layers import SliceNeighbours
from ct3d.models.slices import slice_weights
from ct3d.registry import MODELS

SHAPE = (32, 32, 6, 1)


def _scans(n: int = 2, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def test_slice_models_are_registered_with_their_parameters() -> None:
    for name in ("slice2d", "slice25d"):
        params = {p.name: (p.type_name, p.default) for p in MODELS.describe(name).params}
        assert params["aggregation"] == ("'mean' | 'max' | 'attention' | 'gru'", "attention")
        assert params["backbone"] == ("str", "small")
        assert params["weights"] == ("str | None", None)
    assert min_input({"name": "slice2d", "params": {"backbone": "InceptionV3"}}) == 75
    assert min_input({"name": "slice2d", "params": {"backbone": "InceptionV3",
                                                    "slice_size": 80}}) == 1


@pytest.mark.parametrize("name", ["slice2d", "slice25d"])
@pytest.mark.parametrize("aggregation", ["mean", "max", "attention", "gru"])
def test_every_aggregation_gives_sigmoid_or_softmax_heads(name: str, aggregation: str) -> None:
    binary = build_model(name, input_shape=SHAPE, aggregation=aggregation)
    prob = binary(_scans(), training=False).numpy()
    assert binary.name == name and prob.shape == (2, 1) and np.all((prob > 0) & (prob < 1))
    three = build_model(name, input_shape=SHAPE, classes=3, aggregation=aggregation)
    probs = three(_scans(), training=False).numpy()
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(("aggregation", "invariant"), [
    ("mean", True), ("max", True), ("attention", True), ("gru", False)])
def test_only_the_recurrent_aggregator_depends_on_slice_order(
    aggregation: str, invariant: bool
) -> None:
    model = build_model("slice2d", input_shape=SHAPE, aggregation=aggregation)
    x = _scans()
    shuffled = x[:, :, :, [3, 0, 5, 1, 4, 2]]
    a, b = (model(v, training=False).numpy() for v in (x, shuffled))
    assert np.allclose(a, b, atol=1e-6) == invariant


def test_attention_weights_per_slice_sum_to_one_and_follow_the_evidence() -> None:
    model = build_model("slice2d", input_shape=SHAPE, aggregation="attention")
    x = np.zeros((2, *SHAPE), np.float32)
    x[1, :, :, 4] = 1.0  # one bright slice in the second scan
    weights = slice_weights(model, x)
    assert weights.shape == (2, 6) and np.allclose(weights.sum(axis=1), 1, atol=1e-6)
    assert np.allclose(weights[0], 1 / 6, atol=1e-6)  # identical slices: equal weights
    assert not np.allclose(weights[1, 4], 1 / 6, atol=1e-4)
    assert slice_weights(build_model("slice2d", input_shape=SHAPE, aggregation="mean"),
                         x) is None


def test_adjacent_slices_become_the_three_channels_with_edges_repeated() -> None:
    x = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1, 1) * np.ones((1, 4, 2, 2, 1))
    out = SliceNeighbours()(x).numpy()
    assert out.shape == (1, 4, 2, 2, 3)
    assert out[0, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_slice_models_save_and_load_as_keras_files(tmp_path: Path) -> None:
    import keras

    model = build_model("slice25d", input_shape=SHAPE, aggregation="attention", dropout=0.0)
    x = _scans()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert np.allclose(slice_weights(loaded, x), slice_weights(model, x), atol=1e-6)


def test_slices_are_resized_for_the_backbone_and_sizes_are_checked() -> None:
    model = build_model("slice2d", input_shape=(20, 24, 3, 1), slice_size=16)
    assert model(_scans(shape=(20, 24, 3, 1)), training=False).shape == (2, 1)
    with pytest.raises(ValueError, match="square slices or slice_size"):
        build_model("slice2d", input_shape=(20, 24, 3, 1))
    with pytest.raises(ValueError, match="at least 16 pixels a side; received 8"):
        build_model("slice2d", input_shape=(8, 8, 3, 1))
    with pytest.raises(ValueError, match="needs 1-channel scans"):
        build_model("slice25d", input_shape=(16, 16, 3, 2))


def test_unknown_backbones_and_bad_weights_are_named() -> None:
    assert {"ResNet50", "ResNet101", "InceptionV3", "DenseNet121", "EfficientNetB0",
            "MobileNetV3Small", "small"} <= set(list_backbones())
    with pytest.raises(ValueError, match="unknown backbone 'ResNet05'; did you mean ResNet50"):
        build_model("slice2d", input_shape=SHAPE, backbone="ResNet05")
    with pytest.raises(ValueError, match="small backbone has no ImageNet weights"):
        build_model("slice2d", input_shape=SHAPE, weights="imagenet")
    with pytest.raises(WeightsNotFound, match="weights file not found: '/nowhere/b.weights.h5'"):
        build_model("slice2d", input_shape=SHAPE, weights="/nowhere/b.weights.h5")


def test_input_scaling_is_measured_from_each_family_preprocess_input() -> None:
    scale, offset = input_scaling("ResNet50")  # caffe: BGR, minus the ImageNet means
    assert np.allclose(scale, 255) and np.allclose(offset, [-103.939, -116.779, -123.68])
    scale, offset = input_scaling("DenseNet121")  # torch: (x - mean) / std on [0, 1]
    assert np.allclose(scale, 1 / np.array([0.229, 0.224, 0.225]), rtol=1e-5)
    assert np.allclose(offset, -np.array([0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
                       rtol=1e-5)
    layer = scaling_layer("InceptionV3", 3)  # tf mode: [0, 1] -> [-1, 1]
    grey = np.array([0.0, 0.5, 1.0], np.float32)[:, None].repeat(3, axis=1)
    assert np.allclose(np.asarray(layer(grey)), [[-1] * 3, [0] * 3, [1] * 3], atol=1e-6)
    assert scaling_layer("small", 1) is None


def _backbone_weights(model) -> list[np.ndarray]:  # noqa: ANN001
    encoder = model.get_layer("per_slice").layer
    return [w.numpy() for w in encoder.get_layer("small").weights]


def test_local_backbone_weights_are_loaded_and_the_head_is_new(tmp_path: Path) -> None:
    import keras

    pretrained = build_backbone("small", 32, 1)
    for w in pretrained.weights:
        w.assign(np.random.default_rng(1).normal(size=w.shape).astype("float32"))
    pretrained.save_weights(tmp_path / "small.weights.h5")
    classifier = keras.Sequential([pretrained, keras.layers.Dense(7, name="probability")])
    classifier.build((None, 32, 32, 1))
    classifier.save(tmp_path / "classifier.keras")
    expected = [w.numpy() for w in pretrained.weights]

    for path in ("small.weights.h5", "classifier.keras"):
        model = build_model("slice2d", input_shape=SHAPE, classes=3,
                            weights=str(tmp_path / path))
        assert all(np.array_equal(a, b)
                   for a, b in zip(_backbone_weights(model), expected, strict=True))
        assert model.output_shape == (None, 3)  # the 7-class head was dropped
    scratch = build_model("slice2d", input_shape=SHAPE)
    assert not np.array_equal(_backbone_weights(scratch)[0], expected[0])
    with pytest.raises(ValueError, match="no layer of .* matches"):
        load_by_name(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="x")]),
                     tmp_path / "classifier.keras")


def test_keras_applications_backbone_loads_a_full_model_without_its_head(
    tmp_path: Path,
) -> None:
    import keras

    full = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None,
                                               classes=10, include_top=True)
    full.save(tmp_path / "mobilenet.keras")
    model = build_model("slice2d", input_shape=SHAPE, backbone="MobileNetV3Small",
                        weights=str(tmp_path / "mobilenet.keras"))
    backbone = model.get_layer("per_slice").layer.get_layer("MobileNetV3Small")
    for layer in backbone.layers:
        if layer.weights:
            expected = full.get_layer(layer.name).get_weights()
            assert all(np.array_equal(a, b)
                       for a, b in zip(layer.get_weights(), expected, strict=True))
    assert model.output_shape == (None, 1)


def test_imagenet_weights_offline_say_which_file_to_put_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = Path.home() / ".keras" / "models"
    if cache.is_dir() and any("mobilenet_v3_small" in p.name for p in cache.iterdir()):
        pytest.skip("MobileNetV3Small ImageNet weights are cached on this machine")
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # refuses: no download can happen
    monkeypatch.delenv("KERAS_HOME", raising=False)
    with pytest.raises(WeightsNotFound) as caught:
        build_model("slice2d", input_shape=SHAPE, backbone="MobileNetV3Small",
                    weights="imagenet")
    message = str(caught.value)
    assert "ImageNet weights of MobileNetV3Small" in message
    assert "no_top" in message and str(cache) in message and "weights=PATH" in message


@pytest.mark.parametrize(("name", "hot"), [("slice2d", [4]), ("slice25d", [3, 4, 5])])
def test_slice_gradcam_stacks_per_slice_maps_on_the_scan_grid(name: str, hot: list[int]) -> None:
    from ct3d.saliency import deepest_conv_layer, gradcam, last_conv_layer

    model = build_model(name, input_shape=SHAPE, aggregation="attention")
    assert last_conv_layer(model) == "block4_conv"
    assert deepest_conv_layer(model, min_width=8) == "block3_conv"  # 8 x 8 at 32 x 32 slices
    scan = np.zeros(SHAPE, np.float32)
    scan[8:20, 10:24, 4] = 1.0  # only slice 4 (and, in 2.5D, its neighbours) has content
    for layer in ("block4_conv", "block2_conv"):
        heat = gradcam(model, scan, layer=layer)
        assert heat.shape == SHAPE[:3] and heat.max() == pytest.approx(1.0)
        lit = np.flatnonzero(heat.max(axis=(0, 1)) > 0).tolist()
        assert lit and set(lit) <= set(hot)  # bias-free convolutions: empty input, no heat
    with pytest.raises(ValueError, match="'gap' is not in the backbone 'small' of 'slice2d'"):
        gradcam(build_model("slice2d", input_shape=SHAPE), scan, layer="gap")


def test_explain_volume_maps_a_slice_model_back_to_the_original_scan() -> None:
    from ct3d.preprocess.geometry import resize
    from ct3d.saliency import explain_volume
    from ct3d.volume import Volume

    original = Volume(np.random.default_rng(2).random((40, 40, 12), dtype=np.float32),
                      (0.8, 0.8, 5.0), np.diag([0.8, 0.8, 5.0, 1.0]), "scan")
    prepared = resize(SHAPE[:3])(original)
    heat = explain_volume(build_model("slice2d", input_shape=SHAPE), prepared, original)
    assert heat.layer == "block4_conv" and heat.shape == (40, 40, 12)
    assert heat.array.max() > 0 and np.isfinite(heat.array).all()


@pytest.mark.slow
def test_a_slice_model_trains_predicts_and_explains_through_the_cli(
    cohort_root: Path, tmp_path: Path, make_scenario,  # noqa: ANN001
) -> None:
    import csv

    from ct3d.cli import main
    from ct3d.engine import run
    from ct3d.io import read_volume

    out = tmp_path / "run"
    scenario = make_scenario(cohort_root, out, **{
        "train.epochs": 1, "model": {"name": "slice2d", "params": {"aggregation": "attention"}}})
    run(scenario, verbose=0)
    scan = sorted(next(cohort_root.glob("quick-*")).glob("CT-*/study_????.nii.gz"))[-1]
    table = tmp_path / "predict.csv"
    assert main(["predict", str(out), str(scan), "--saliency", str(tmp_path / "maps"),
                 "--layer", "block3_conv", "--csv", str(table)]) == 0
    with table.open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["saliency_layer"] == "block3_conv" and 0 <= float(row["probability"]) <= 1
    top = [tuple(pair.split(":")) for pair in row["top_slices"].split()]
    original = read_volume(scan)
    assert len(top) == 3 and all(0 <= int(k) < original.shape[2] for k, _ in top)
    weights = [float(w) for _, w in top]
    assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1.0001
    heat = read_volume(row["saliency"], hu=False)
    assert heat.shape == original.shape and heat.array.max() > 0


@pytest.mark.parametrize("name", ["slice2d", "slice25d"])
def test_batchnorm_sees_every_slice_of_the_batch_at_once(name: str) -> None:
    # momentum 0: the moving statistics become those of the last training batch, so
    # inference on that same batch must give what training mode gave (no dropout). With
    # Keras' TimeDistributed each slice position was normalised on its own, and the moving
    # statistics were those of the last position only.
    model = build_model(name, input_shape=SHAPE, aggregation="mean", dropout=0.0,
                        bn_momentum=0.0)
    x = _scans(4, seed=3)
    x[:, :, :, : SHAPE[2] // 2] *= 5.0                   # slice positions differ a lot
    trained = np.asarray(model(x, training=True))
    assert np.allclose(np.asarray(model(x, training=False)), trained, atol=1e-5)
