"""inflated3d: ResNet-50 in 3D with kernels inflated from a 2D ResNet-50 (I3D)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ct3d.models import build_model, min_input
from ct3d.models.backbones import scaling_layer
from ct3d.models.inflated import inflate_into


def _resnet50_2d(top: bool = False, seed: int = 0) -> keras.Model:
    """A 2D ResNet-50 with random (non-default) BatchNorm statistics: a stand-in for ImageNet."""
    net = keras.applications.ResNet50(include_top=top, weights=None, classes=5,
                                      input_shape=(32, 32, 3), pooling=None if top else "avg")
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if i in (0, 3)
                               else rng.normal(0, 0.1, w.shape).astype("float32")
                               for i, w in enumerate(layer.get_weights())])
    return net


def _activation(model: keras.Model, layer: str, x: np.ndarray) -> np.ndarray:
    return keras.Model(model.inputs, model.get_layer(layer).output)(x).numpy()


def test_identical_slices_give_the_2d_network_activations() -> None:
    source = _resnet50_2d()
    model = build_model("inflated3d", input_shape=(32, 32, 64, 1), stages=1)
    assert inflate_into(model, source) == 22  # stem + 3 bottlenecks: conv and BN layers
    image = np.random.default_rng(1).random((1, 32, 32, 1), dtype=np.float32)
    volume = np.repeat(image[:, :, :, None], 64, axis=3)
    flat = _activation(source, "conv2_block3_out",
                       scaling_layer("ResNet50", 3)(np.repeat(image, 3, axis=-1)))
    deep = _activation(model, "conv2_block3_out", volume)
    assert deep.shape == (1, 8, 8, 16, 256)
    np.testing.assert_allclose(deep[:, :, :, 8], flat, rtol=1e-4, atol=1e-3 * np.abs(flat).max())
    kernel2d = source.get_layer("conv2_block1_2_conv").kernel.numpy()
    kernel3d = model.get_layer("conv2_block1_2_conv").kernel.numpy()
    np.testing.assert_allclose(kernel3d.sum(axis=2), kernel2d, rtol=1e-5, atol=1e-7)


def test_2d_and_3d_weight_files_are_inflated_or_copied(tmp_path: Path) -> None:
    flat = _resnet50_2d()
    flat.save_weights(tmp_path / "resnet50.weights.h5")
    classifier = _resnet50_2d(top=True)
    classifier.save(tmp_path / "resnet50_top.keras")
    expected = classifier.get_layer("conv3_block1_2_conv").kernel.numpy()
    from_h5 = build_model("inflated3d", input_shape=(32, 32, 16, 1), stages=2,
                          weights=str(tmp_path / "resnet50.weights.h5"))
    np.testing.assert_allclose(
        from_h5.get_layer("conv1_conv").kernel.numpy().sum(axis=2),
        flat.get_layer("conv1_conv").kernel.numpy(), rtol=1e-5, atol=1e-7)
    from_keras = build_model("inflated3d", input_shape=(32, 32, 16, 1), stages=2, classes=3,
                             weights=str(tmp_path / "resnet50_top.keras"))
    np.testing.assert_allclose(from_keras.get_layer("conv3_block1_2_conv").kernel.numpy()
                               .sum(axis=2), expected, rtol=1e-5, atol=1e-7)
    assert from_keras.output_shape == (None, 3)  # the 5-class ImageNet-style head dropped

    from_keras.save_weights(tmp_path / "mine.weights.h5")
    again = build_model("inflated3d", input_shape=(32, 32, 16, 1), stages=2, classes=3,
                        weights=str(tmp_path / "mine.weights.h5"))
    x = np.random.default_rng(2).random((1, 32, 32, 16, 1), dtype=np.float32)
    np.testing.assert_array_equal(again(x).numpy(), from_keras(x).numpy())


def test_stages_set_the_smallest_input_and_bad_inputs_are_named(tmp_path: Path) -> None:
    assert [min_input({"name": "inflated3d", "params": {"stages": s}})
            for s in (1, 2, 3, 4)] == [4, 8, 16, 32]
    with pytest.raises(ValueError, match=r"inflated3d needs every spatial size >= 8"):
        build_model("inflated3d", input_shape=(32, 32, 7, 1), stages=2)
    with pytest.raises(ValueError, match="1-channel scans"):
        build_model("inflated3d", input_shape=(32, 32, 16, 2), stages=1)
    other = tmp_path / "other.weights.h5"
    build_model("slice2d", input_shape=(32, 32, 4, 1)).save_weights(other)
    with pytest.raises(ValueError, match="neither inflated3d weights .* nor a 2D ResNet50"):
        build_model("inflated3d", input_shape=(32, 32, 16, 1), stages=1, weights=str(other))
