"""The Jupyter toolkit, driven headless: controls, ScanViewer, PipelineBuilder, TrainingMonitor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest

import ct3d
from ct3d.data.synthetic import generate_scan
from ct3d.params import ParamError, coerce
from ct3d.preprocess import build_preprocess
from ct3d.preprocess.geometry import crop
from ct3d.preprocess.lung import lung_mask
from ct3d.registry import REGISTRIES, Param
from ct3d.scenario import Scenario, ScenarioError, StepSpec
from ct3d.volume import Volume
from ct3d.widgets import PipelineBuilder, ScanViewer, TrainingMonitor
from ct3d.widgets.controls import param_control
from ct3d.widgets.slices import PLANES, matching_index

matplotlib.use("Agg")      # headless; the toolkit itself draws on Figures, never pyplot

ALL_PLUGINS = [(kind, name) for kind, reg in REGISTRIES.items() for name in reg.names()]


@pytest.fixture(scope="module")
def scan() -> tuple[Volume, np.ndarray]:
    """A small synthetic abnormal chest CT (HU) and its lesion mask."""
    return generate_scan(0, abnormal=True)


def _image(fig: Any, panel: int = 0, layer: int = 0) -> np.ndarray:
    return np.asarray(fig.axes[panel].images[layer].get_array())


# -- controls ------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "name"), ALL_PLUGINS)
def test_every_plugin_parameter_gets_a_control_that_round_trips_its_default(
    kind: str, name: str
) -> None:
    for p in REGISTRIES[kind].describe(name).params:
        control = param_control(p)
        expected = coerce(p.annotation, p.default)
        assert control.value == expected and control.problem() is None, p
        control.value = expected
        assert control.value == expected, p
        assert isinstance(control.widget, widgets.HBox)
        assert control.widget.children[0].value == p.name


def _kinds(annotation: Any, default: Any) -> tuple[list[str], Any]:
    control = param_control(Param("p", annotation, default))
    return [type(w).__name__ for w in control.inputs], control.value


def test_controls_are_chosen_by_type_hint() -> None:
    assert _kinds(float, -1000.0) == (["FloatText"], -1000.0)
    assert _kinds(int, 1) == (["IntText"], 1)
    assert _kinds(bool, True) == (["Checkbox"], True)
    assert _kinds(Literal["replace", "crop"], "crop") == (["Dropdown"], "crop")
    assert _kinds(Literal[10, 18, 34], 18) == (["Dropdown"], 18)
    assert _kinds(tuple[float, float], (-0.1, 0.1)) == (["FloatText"] * 2, (-0.1, 0.1))
    assert _kinds(tuple[int, int, int], (128, 128, 64)) == (["IntText"] * 3, (128, 128, 64))
    assert _kinds(tuple[int, ...], (0, 1)) == (["Text"], (0, 1))
    assert _kinds(dict[str, list[str]], {"a": ["b"]}) == (["Text"], {"a": ["b"]})
    assert _kinds(str | None, None) == (["Text"], None)
    assert _kinds(int | None, 3) == (["Text"], 3)


def test_text_controls_convert_and_report_what_does_not_fit() -> None:
    optional = param_control(Param("weights", str | None, None))
    optional.inputs[0].value = "best.keras"
    assert optional.value == "best.keras"
    optional.inputs[0].value = "  "
    assert optional.value is None
    axes = param_control(Param("axes", tuple[int, ...], (0, 1)))
    axes.inputs[0].value = "[2]"
    assert axes.value == (2,)
    axes.inputs[0].value = "[0, 'x']"
    assert axes.problem() == ("parameter 'axes': expected tuple[int, ...], got \"[0, 'x']\" "
                              "(must be an integer)")
    shape = param_control(Param("shape", tuple[int, int, int], (1, 2, 3)))
    with pytest.raises(ParamError, match="must have 3 items"):
        shape.value = [1, 2]


# -- ScanViewer ----------------------------------------------------------------------------
def test_viewer_plane_and_slider_show_that_slice_of_the_array(scan: tuple[Volume, Any]) -> None:
    volume, _ = scan
    viewer = ScanViewer(volume)
    assert (viewer.plane, viewer.index) == ("axial", volume.shape[2] // 2)
    assert np.array_equal(_image(viewer.render()), volume.array[::-1, ::-1, viewer.index].T)
    for plane, axis in PLANES.items():
        viewer.plane = plane
        assert viewer.slice_slider.max == volume.shape[axis] - 1
        assert viewer.index == volume.shape[axis] // 2
        viewer.index = 7
        expected = np.take(volume.array, 7, axis=axis)[::-1, ::-1].T
        assert np.array_equal(_image(viewer.figure), expected), plane
    assert viewer.image.value[:4] == b"\x89PNG"


def test_window_presets_and_level_width_set_the_grey_limits(scan: tuple[Volume, Any]) -> None:
    viewer = ScanViewer(scan[0])
    clim = {}
    for preset in ("lung", "mediastinum", "training"):
        viewer.preset = preset
        clim[preset] = viewer.figure.axes[0].images[0].get_clim()
    assert clim == {"lung": (-1350.0, 150.0), "mediastinum": (-160.0, 240.0),
                    "training": (-1000.0, 400.0)}
    viewer.level_slider.value = 0.0
    assert viewer.preset == "custom" and viewer.window == (-700.0, 700.0)     # width 1400
    viewer.window = (-100.0, 300.0)
    assert viewer.figure.axes[0].images[0].get_clim() == (-100.0, 300.0)


def test_overlay_is_drawn_with_its_opacity(scan: tuple[Volume, np.ndarray]) -> None:
    volume, lesions = scan
    index = int(np.argmax(lesions.sum(axis=(0, 1))))
    viewer = ScanViewer(volume, overlay=lesions)
    viewer.index = index
    layer = viewer.figure.axes[0].images[1]
    assert layer.get_alpha() == 0.4
    assert np.array_equal(np.ma.getmaskarray(layer.get_array()),
                          lesions[::-1, ::-1, index].T == 0)
    viewer.opacity = 0.8
    assert viewer.figure.axes[0].images[1].get_alpha() == 0.8
    viewer.set_overlay(lung_mask(volume))
    assert viewer.figure.axes[0].images[1].get_array().count() > 0
    with pytest.raises(ValueError, match=r"overlay of shape \(4, 4, 4\) fits no panel"):
        viewer.set_overlay(np.zeros((4, 4, 4)))


def test_montage_shows_64_slices_in_an_8x8_grid() -> None:
    volume = np.random.default_rng(0).normal(size=(16, 12, 64)).astype(np.float32)
    viewer = ScanViewer(volume)
    viewer.mode = "montage"
    fig = viewer.figure
    assert len(fig.axes) == 64 and all(len(ax.images) == 1 for ax in fig.axes)
    for k in (0, 37, 63):
        assert np.array_equal(_image(fig, k), volume[::-1, ::-1, k].T)
    viewer.plane = "sagittal"
    assert sum(len(ax.images) for ax in viewer.figure.axes) == 16


def test_side_by_side_raw_preprocessed_augmented(scan: tuple[Volume, Any]) -> None:
    volume, _ = scan
    scenario = Scenario.preset("quick").with_overrides({
        "augment": [{"name": "flip", "params": {"axes": [0], "prob": 1.0}}]})
    viewer = ScanViewer(volume, scenario=scenario, window="training")
    fig = viewer.figure
    assert [ax.get_title().split()[0] for ax in fig.axes] == ["raw", "preprocessed",
                                                               "augmented"]
    prep = build_preprocess(scenario.preprocess)(volume)
    k = matching_index(volume, prep, 2, viewer.index)
    assert np.allclose(_image(fig, 1), prep.array[::-1, ::-1, k].T)
    assert np.allclose(_image(fig, 2), prep.array[::-1, ::-1, k].T[:, ::-1])  # flipped x
    assert [ax.images[0].get_clim() for ax in fig.axes] == [(-1000.0, 400.0), (0.0, 1.0),
                                                             (0.0, 1.0)]
    viewer.preset = "lung"
    assert viewer.figure.axes[1].images[0].get_clim() == pytest.approx((-0.25, 0.25 + 4 / 7))
    viewer.mode = "montage"
    assert viewer.montage_of == "augmented" and len(viewer.figure.axes) == 64


def test_matching_slice_follows_the_affine_through_crops(scan: tuple[Volume, Any]) -> None:
    volume, _ = scan
    cropped = crop(volume, (0, 0, 5), (volume.shape[0], volume.shape[1], 20))
    assert matching_index(volume, cropped, 2, 12) == 7
    assert matching_index(volume, cropped, 2, 0) == 0


def test_batch_viewer_switches_scans() -> None:
    batch = np.random.default_rng(1).random((2, 8, 8, 6, 1)).astype(np.float32)
    viewer = ScanViewer(batch)
    assert viewer.preset == "training" and viewer.batch_slider.max == 1
    assert viewer.figure.axes[0].images[0].get_clim() == (0.0, 1.0)
    viewer.batch_index = 1
    assert np.array_equal(_image(viewer.figure), batch[1, ::-1, ::-1, 3, 0].T)


# -- PipelineBuilder -----------------------------------------------------------------------
def test_builder_lists_every_plugin_and_edits_chains(tmp_path: Path) -> None:
    builder = PipelineBuilder(Scenario.preset("quick"))
    for kind in ("preprocess", "augment"):
        assert list(builder.chains[kind].dropdown.options) == REGISTRIES[kind].names()
    assert list(builder.model_dropdown.options) == REGISTRIES["model"].names()
    assert builder.add_step("augment", "gamma") == 1
    builder.set_param("augment", 1, "gamma", [0.9, 1.1])
    builder.move_step("augment", 1, -1)
    builder.add_step("preprocess", "lung_crop")
    builder.remove_step("preprocess", 1)          # rotate90
    builder.set_model("resnet3d")
    builder.set_param("model", 0, "depth", 34)
    s = builder.scenario()
    assert [st.name for st in s.preprocess] == ["hu_window", "resize", "lung_crop"]
    assert s.augment == [StepSpec("gamma", {"gamma": [0.9, 1.1], "prob": 1.0}),
                         StepSpec("flip", {"axes": [0, 1], "prob": 0.5})]
    assert s.model == StepSpec("resnet3d", {"depth": 34, "width": 16, "dropout": 0.2,
                                            "bn_momentum": 0.99, "weights": None})
    assert s.train == Scenario.preset("quick").train
    assert "name: lung_crop" in builder.yaml.value
    path = builder.save(tmp_path / "edited.yaml")
    assert Scenario.from_file(path) == s
    builder.filename.value = str(tmp_path / "clicked.yaml")
    builder.save_button.click()
    assert Scenario.from_file(tmp_path / "clicked.yaml") == s


def test_builder_buttons_add_move_remove_and_preview(scan: tuple[Volume, Any]) -> None:
    builder = PipelineBuilder(scan=scan[0])
    chain = builder.chains["preprocess"]
    chain.dropdown.value = "standardize"
    chain.add_button.click()
    up, _down, remove = chain.editors[3].buttons.children
    up.click()
    assert [e.name for e in chain.editors] == ["hu_window", "rotate90", "standardize", "resize"]
    remove.click()
    assert [e.name for e in chain.editors] == ["hu_window", "rotate90", "resize"]
    builder.preview_button.click()
    assert builder.status.value == ""
    assert [v.name for v in builder.viewer.views()] == ["raw", "preprocessed", "augmented"]
    assert builder.preview_box.children == (builder.viewer.widget,)


def test_invalid_values_show_in_the_error_label_not_as_exceptions() -> None:
    builder = PipelineBuilder()
    axes = builder.chains["augment"].editors[0].controls["axes"].inputs[0]
    axes.value = "[0, 'x']"                                  # typed in the UI
    assert "augment step 1 'flip', parameter 'axes': expected tuple[int, ...]" in (
        builder.error_label.value.replace("&#x27;", "'"))
    with pytest.raises(ScenarioError, match="parameter 'axes'"):
        builder.scenario()
    builder.save_button.click()
    assert builder.status.value.startswith("ScenarioError")
    axes.value = "[0]"
    assert builder.problems == [] and builder.error_label.value == ""
    builder.set_param("preprocess", 0, "high", -2000.0)
    assert builder.problems == ["preprocess step 1 'hu_window': hu_window needs high > low; "
                                "received low=-1000.0, high=-2000.0"]
    assert "hu_window needs high &gt; low" in builder.error_label.value
    with pytest.raises(ParamError, match=r"preprocess step 3 'resize', parameter 'shape': "
                                         r"expected tuple\[int, int, int\], got \[1, 2\]"):
        builder.set_param("preprocess", 2, "shape", [1, 2])
    assert "parameter &#x27;shape&#x27;" in builder.error_label.value


THIRD_PARTY_PY = '''
from typing import Literal

from ct3d.volume import Step, Volume


def invert(top: float = 1.0, mode: Literal["all", "lungs"] = "all",
           box: tuple[int, int, int] = (2, 3, 4), clip: bool = False) -> Step:
    """Invert intensities: top - value (third-party test plugin)."""
    def apply(volume: Volume) -> Volume:
        return volume.replace(array=top - volume.array)
    return apply
'''

THIRD_PARTY_TOML = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "ct3d-widget-plugin"
version = "0.0.1"

[tool.setuptools]
packages = ["ct3d_widget_plugin"]

[project.entry-points."ct3d.preprocessors"]
invert = "ct3d_widget_plugin.plugins:invert"
'''

THIRD_PARTY_CHECK = '''
import json
import ct3d
from ct3d.widgets import PipelineBuilder
builder = PipelineBuilder(ct3d.Scenario.preset("quick").with_overrides({"augment": []}))
options = list(builder.chains["preprocess"].dropdown.options)
index = builder.add_step("preprocess", "invert")
editor = builder.chains["preprocess"].editors[index]
controls = {name: [type(w).__name__ for w in c.inputs] for name, c in editor.controls.items()}
builder.set_param("preprocess", index, "top", 2.5)
builder.set_param("preprocess", index, "mode", "lungs")
print(json.dumps({"options": options, "controls": controls, "summary": editor.info.summary,
                  "step": builder.scenario().preprocess[index].params}))
'''


def test_third_party_plugin_appears_in_the_builder_with_its_controls(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "ct3d_widget_plugin").mkdir(parents=True)
    (src / "ct3d_widget_plugin" / "__init__.py").write_text("")
    (src / "ct3d_widget_plugin" / "plugins.py").write_text(THIRD_PARTY_PY)
    (src / "pyproject.toml").write_text(THIRD_PARTY_TOML)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(src)],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get(
        "PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(THIRD_PARTY_CHECK)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "invert" in out["options"] and "hu_window" in out["options"]
    assert out["controls"] == {"top": ["FloatText"], "mode": ["Dropdown"],
                               "box": ["IntText"] * 3, "clip": ["Checkbox"]}
    assert out["summary"] == "Invert intensities: top - value (third-party test plugin)."
    assert out["step"] == {"top": 2.5, "mode": "lungs", "box": [2, 3, 4], "clip": False}


# -- TrainingMonitor -----------------------------------------------------------------------
def test_monitor_records_epochs_and_draws_curves() -> None:
    monitor = TrainingMonitor()
    monitor.set_params({"epochs": 3, "steps": 4})
    monitor.on_train_begin()
    for epoch in range(3):
        monitor.on_epoch_begin(epoch)
        for batch in range(4):
            monitor.on_train_batch_end(batch)
        monitor.on_epoch_end(epoch, {"loss": 0.7 - 0.1 * epoch, "accuracy": 0.5 + 0.1 * epoch,
                                     "auc": 0.6, "val_loss": 0.8, "val_accuracy": 0.5,
                                     "val_auc": np.float32(0.5 + 0.1 * epoch)})
    assert monitor.history["epoch"] == [1, 2, 3]
    assert monitor.history["loss"] == pytest.approx([0.7, 0.6, 0.5])
    assert monitor.history["val_auc"] == pytest.approx([0.5, 0.6, 0.7])
    assert (monitor.epochs_bar.value, monitor.epochs_bar.max) == (3, 3)
    assert (monitor.batches_bar.value, monitor.batches_bar.max) == (4, 4)
    assert monitor.status.value.startswith("epoch 3/3: loss 0.5")
    fig = monitor.figure
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "auc"]
    train, val = fig.axes[2].lines
    assert list(train.get_xdata()) == [1, 2, 3]
    assert val.get_ydata() == pytest.approx([0.5, 0.6, 0.7])
    assert monitor.curves.value[:4] == b"\x89PNG"
    monitor.on_train_begin()                       # the next fold's fit
    assert monitor.history == {} and len(monitor.fits) == 2


def test_monitor_shows_confusion_matrices_and_metrics_table() -> None:
    from ct3d.evaluate import binary_metrics

    test = binary_metrics([0, 0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9, 0.8])
    metrics = {**test, "evaluated_on": "test", "classes": ["normal", "abnormal"],
               "parts": {"train": test, "test": test}}
    monitor = TrainingMonitor()
    fig = monitor.render_result(metrics)
    assert _image(fig, 0).tolist() == [[2, 1], [0, 2]]
    assert np.allclose(_image(fig, 1), [[2 / 3, 1 / 3], [0.0, 1.0]])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["normal", "abnormal"]
    monitor.show_result(metrics)
    assert monitor.result_image.value[:4] == b"\x89PNG"
    assert "specificity" in monitor.table.value and "train" in monitor.table.value


@pytest.mark.slow
def test_monitor_follows_a_real_run(
    cohort_root: Path, tmp_path: Path, make_scenario: Callable[..., Scenario]
) -> None:
    monitor = TrainingMonitor()
    scenario = make_scenario(cohort_root, tmp_path / "run",
                             **{"train.epochs": 1, "evaluate.n_boot": 0})
    result = ct3d.run(scenario, verbose=0, callbacks=[monitor])
    assert monitor.history["epoch"] == [1]
    assert {"loss", "val_loss", "auc", "val_auc"} <= set(monitor.history)
    assert monitor.batches_bar.value == monitor.batches_bar.max == 2
    monitor.show_result(result)
    assert "confusion" in monitor.table.value
