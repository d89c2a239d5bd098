"""What a model costs: parameters and FLOPs counted exactly on a model small enough to count
by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ct3d.engine.cost import model_cost, peak_rss_gib

keras = pytest.importorskip("keras")


def test_flops_of_a_convolution_and_a_dense_layer_are_counted_exactly() -> None:
    inputs = keras.Input((4, 4, 4, 1))
    x = keras.layers.Conv3D(2, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(x), name="tiny")
    cost = model_cost(model)
    conv = 2 * 3**3 * 1 * 2 * 4**3              # multiply-adds per output voxel and filter
    dense = 2 * (2 * 4**3)
    assert cost["gflops_per_scan"] == pytest.approx((conv + dense) / 1e9)
    assert cost["parameters"] == 3**3 * 2 + 2 * 4**3 == model.count_params()
    assert cost["input_shape"] == [4, 4, 4, 1]
    assert set(cost) == {"parameters", "gflops_per_scan", "input_shape"}   # no measurement
    assert 0.1 < peak_rss_gib() < 64


def test_doubling_the_filters_doubles_the_convolution_flops() -> None:
    def conv_flops(filters: int) -> float:
        inputs = keras.Input((6, 6, 6, 1))
        y = keras.layers.Conv3D(filters, 3, use_bias=False)(inputs)
        return model_cost(keras.Model(inputs, y))["gflops_per_scan"]

    assert conv_flops(4) == pytest.approx(2 * conv_flops(2), rel=1e-3)   # 4 digits kept



def test_counting_flops_prints_nothing() -> None:
    # a fresh process: TensorFlow prints its deprecation notice once per process
    code = ("import keras\nfrom ct3d.engine.cost import model_cost\n"
            "x = keras.Input((4, 4, 4, 1))\n"
            "print(model_cost(keras.Model(x, keras.layers.Conv3D(1, 3)(x))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)
    assert "'parameters': 28" in done.stdout
    assert "deprecated" not in done.stdout + done.stderr
