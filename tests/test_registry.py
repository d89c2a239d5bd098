"""Registries: listing, lookup errors, parameter checks, and entry-point plugins."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ct3d
from ct3d.params import ParamError
from ct3d.registry import PREPROCESSORS, PluginError, Registry, UnknownPlugin, resolve_step


def test_builtin_plugins_are_listed_sorted_with_patterns() -> None:
    assert ct3d.list_plugins("preprocess") == [
        "hu_window", "keras_example", "lung_crop", "lung_only", "resample", "resize", "rotate90",
        "slice_trim", "standardize"]
    assert ct3d.list_plugins("augment", "*", exclude="r*") == [
        "brightness", "contrast", "flip", "gamma", "gaussian_noise", "zoom"]
    assert ct3d.list_plugins("model", "*3dcnn") == ["baseline_3dcnn", "modified_3dcnn"]
    with pytest.raises(UnknownPlugin, match="unknown registry 'preproc'; known: preprocess"):
        ct3d.list_plugins("preproc")


def test_unknown_plugin_lists_known_names_and_suggests() -> None:
    with pytest.raises(UnknownPlugin) as err:
        ct3d.MODELS.describe("modified_3dcnm")
    assert str(err.value) == (
        "unknown model plugin 'modified_3dcnm'; did you mean 'modified_3dcnn'? "
        "known: baseline_3dcnn, densenet3d, inflated3d, modified_3dcnn, resnet3d, slice25d, "
        "slice2d"
    )


def test_describe_comes_from_signature_and_docstring() -> None:
    info = PREPROCESSORS.describe("hu_window")
    assert info.summary == "Clip HU to [low, high] and scale linearly to [0, 1] (float32)."
    assert [(p.name, p.type_name, p.default) for p in info.params] == [
        ("low", "float", -1000.0), ("high", "float", 400.0)]
    resize = PREPROCESSORS.describe("resize").params[0]
    assert (resize.type_name, resize.default) == ("tuple[int, int, int]", (128, 128, 64))
    assert "input_shape" not in [p.name for p in ct3d.MODELS.describe("baseline_3dcnn").params]


def test_bad_parameters_name_plugin_parameter_and_type() -> None:
    with pytest.raises(ParamError, match="preprocess plugin 'hu_window' has no parameter "
                                         "'hgh'; parameters: low, high"):
        PREPROCESSORS.resolve("hu_window", {"hgh": 3})
    with pytest.raises(ParamError, match=r"preprocess plugin 'resize', parameter 'shape': "
                                         r"expected tuple\[int, int, int\], got \[1, 2\]"):
        PREPROCESSORS.resolve("resize", {"shape": [1, 2]})
    with pytest.raises(ParamError, match="parameter 'low': expected float, got 'cold'"):
        PREPROCESSORS.resolve("hu_window", {"low": "cold"})
    with pytest.raises(ParamError, match="parameter 'k': expected int, got True"):
        PREPROCESSORS.resolve("rotate90", {"k": True})


def test_resolve_converts_by_type_hint_fills_defaults_and_none_means_default() -> None:
    resize = PREPROCESSORS.resolve("resize", {"shape": [8, 8, 4], "order": None})
    assert resize.params == {"shape": (8, 8, 4), "order": 1, "antialias": False}
    assert PREPROCESSORS.resolve("hu_window", {"low": -900, "high": "1e2"}).params == {
        "low": -900.0, "high": 100.0}


def test_a_resolved_step_reads_like_its_call_and_round_trips() -> None:
    step = resolve_step("preprocess", {"name": "resize", "params": {"shape": [8, 8, 4]}})
    assert repr(step) == "resize(shape=(8, 8, 4), order=1, antialias=False)"
    assert step.to_dict() == {"name": "resize", "params": {"shape": [8, 8, 4], "order": 1,
                                                           "antialias": False}}
    assert resolve_step("preprocess", step.to_dict()) == step
    assert resolve_step("preprocess", step) is step  # resolved once, not checked again
    assert resolve_step("preprocess", "resize") == PREPROCESSORS.resolve("resize")
    assert pickle.loads(pickle.dumps(step)) == step  # what the preprocessing workers get
    assert step.build()(ct3d.Volume(np.zeros((2, 2, 2), np.float32), (1.0, 1.0, 1.0),
                                    np.eye(4), "x")).shape == (8, 8, 4)
    assert repr(ct3d.build_augment(["flip", {"name": "gamma", "params": {"prob": 1}}])) == (
        "AugmentChain(flip(axes=(0, 1), prob=0.5), gamma(gamma=(0.8, 1.25), prob=1.0))")
    with pytest.raises(PluginError, match=r"resize\(.*\) is a step of the preprocess registry, "
                                          r"not of augment"):
        resolve_step("augment", step)
    with pytest.raises(ParamError, match=r"a model step is \{'name': ..., 'params'"):
        resolve_step("model", {"nme": "resnet3d"})
    with pytest.raises(UnknownPlugin, match="did you mean 'resnet3d'"):
        ct3d.build_model("resnet3", input_shape=(32, 32, 32, 1))


def test_declarations_are_checked_at_registration() -> None:
    reg = Registry("test", "ct3d.test-none", declarations=frozenset({"output_shape"}))
    with pytest.raises(PluginError, match="unknown declaration\\(s\\) min_input; a test "
                                          "plugin may declare: output_shape"):
        reg.register("x", min_input=lambda p: 1)
    assert PREPROCESSORS.describe("lung_crop").declared == {}  # its output depends on the scan
    assert set(PREPROCESSORS.describe("resize").declared) == {"output_shape"}
    assert set(ct3d.MODELS.describe("densenet3d").declared) == {"min_input"}


def test_decorator_returns_the_function_and_checks_the_contract() -> None:
    reg = Registry("test", "ct3d.test-none")

    @reg.register("double")
    def double(factor: float = 2.0) -> float:
        """Double it."""
        return factor * 2

    assert double(factor=3.0) == 6.0
    assert reg.resolve("double", {"factor": 1}).build() == 2.0
    with pytest.raises(PluginError, match=r"\*args/\*\*kwargs are not allowed"):
        reg.register("bad")(lambda **kw: kw)
    with pytest.raises(PluginError, match="parameter 'x' needs a default"):
        reg.register("bad")(lambda x: x)

    def untyped(x=1):  # noqa: ANN001, ANN202 - the missing hint is the point
        return x

    with pytest.raises(PluginError, match="parameter 'x' needs a type hint"):
        reg.register("bad")(untyped)
    with pytest.raises(PluginError, match="'double' is already registered"):
        reg.register("double")(lambda factor=1.0: factor)


PLUGIN_PY = '''
from ct3d.volume import Step, Volume


def invert(top: float = 1.0) -> Step:
    """Invert intensities: top - value (third-party test plugin)."""
    def apply(volume: Volume) -> Volume:
        return volume.replace(array=top - volume.array)
    return apply
'''

PLUGIN_TOML = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "ct3d-extra-test"
version = "0.0.1"

[tool.setuptools]
packages = ["ct3d_extra_test"]

[project.entry-points."ct3d.preprocessors"]
invert = "ct3d_extra_test.plugins:invert"
broken = "ct3d_extra_test.broken:thing"
'''

CHECK = '''
import json, warnings
import numpy as np
import ct3d
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    names = ct3d.list_plugins("preprocess")
chain = ct3d.build_preprocess([{"name": "invert", "params": {"top": 2}}])
v = ct3d.Volume(np.ones((2, 2, 2), np.float32), (1.0, 1.0, 1.0), np.eye(4), "x")
s = ct3d.Scenario.preset("quick").with_overrides({"preprocess.1": {"name": "invert"}})
s.validate()
print(json.dumps({"names": names, "value": float(chain(v).array[0, 0, 0]),
                  "warnings": [str(w.message) for w in caught],
                  "errors": ct3d.PREPROCESSORS.load_errors}))
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third-party plugin distribution, built and pip-installed into its own folder."""
    src = tmp_path_factory.mktemp("plugin_src")
    (src / "ct3d_extra_test").mkdir()
    (src / "ct3d_extra_test" / "__init__.py").write_text("")
    (src / "ct3d_extra_test" / "plugins.py").write_text(PLUGIN_PY)
    (src / "ct3d_extra_test" / "broken.py").write_text("raise RuntimeError('boom')\n")
    (src / "pyproject.toml").write_text(PLUGIN_TOML)
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(src)],
        check=True, capture_output=True,
    )
    assert list(site.glob("ct3d_extra_test-0.0.1.dist-info/entry_points.txt"))
    return site


def _run(code_or_args: list[str], site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get(
        "PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *code_or_args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_installed_distribution_adds_plugins_and_broken_one_is_reported(
    plugin_site: Path,
) -> None:
    proc = _run(["-c", textwrap.dedent(CHECK)], plugin_site)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["names"] == ["hu_window", "invert", "keras_example", "lung_crop", "lung_only",
                            "resample", "resize", "rotate90", "slice_trim", "standardize"]
    assert out["value"] == 1.0
    assert "broken" in out["errors"] and "RuntimeError: boom" in out["errors"]["broken"]
    assert any("'broken'" in w and "could not be loaded" in w for w in out["warnings"])


def test_cli_lists_third_party_plugin_with_parameters(plugin_site: Path) -> None:
    proc = _run(["-m", "ct3d.cli", "plugins", "preprocess", "--json"], plugin_site)
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    invert = next(p for p in listing["plugins"]["preprocess"] if p["name"] == "invert")
    assert invert["params"] == [{"name": "top", "type": "float", "default": 1.0, "doc": ""}]
    assert invert["origin"] == "ct3d-extra-test:ct3d_extra_test.plugins:invert"
    assert "boom" in listing["load_errors"]["preprocess"]["broken"]


def test_every_builtin_parameter_has_a_one_line_description() -> None:
    params = {(kind, name, p.name): p.doc for kind, registry in ct3d.registry.REGISTRIES.items()
              for name in registry.names() for p in registry.describe(name).params}
    assert [key for key, doc in params.items() if not doc] == []
    described = list(params.values())
    assert len(described) > 40
    assert not [d for d in described if "\n" in d or "`" in d or d.endswith(".")]
    hu_window = PREPROCESSORS.describe("hu_window").params
    assert [(p.name, p.doc) for p in hu_window] == [
        ("low", "lowest HU kept (lower values become 0)"),
        ("high", "highest HU kept (higher values become 1); must be above low")]
    weights = {p.name: p.doc for p in ct3d.MODELS.describe("resnet3d").params}["weights"]
    assert weights == ("a local .weights.h5 file of this model, or a .keras model whose "
                       "layers are copied by name (e.g. ct3d pretrain's pretrained.keras); "
                       "None: random initial weights")


def test_parameter_descriptions_come_from_args_and_undocumented_ones_are_allowed() -> None:
    reg = Registry("test", "ct3d.test-none")

    @reg.register("shift")
    def shift(by: float = 1.0, clip: bool = False, scale: float = 1.0) -> float:
        """Shift it.

        Args:
            by: offset added, in HU. Any float; negative values
                lower the scan.
            ghost: an entry for no parameter, ignored.
            clip (bool): clip to [0, 1] afterwards.

        Returns:
            by: not an entry of Args.
        """
        return by

    @reg.register("bare")
    def bare(top: float = 1.0) -> float:
        """No Args section (a third-party plugin may have none)."""
        return top

    assert [(p.name, p.doc) for p in reg.describe("shift").params] == [
        ("by", "offset added, in HU"), ("clip", "clip to [0, 1] afterwards"), ("scale", "")]
    assert [(p.name, p.doc) for p in reg.describe("bare").params] == [("top", "")]
    assert reg.describe("shift").summary == "Shift it."

