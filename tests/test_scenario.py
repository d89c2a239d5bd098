"""Scenario: round trips, presets, overrides and validation errors."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
import yaml

from ct3d.docs import one_line_docs
from ct3d.registry import REGISTRIES, Registry
from ct3d.scenario import (
    PRESETS,
    DataSpec,
    EvalSpec,
    Scenario,
    ScenarioError,
    SplitSpec,
    StepSpec,
    SyntheticSpec,
    TrainSpec,
)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_round_trip_dict_json_yaml_and_file(preset: str, tmp_path) -> None:
    s = Scenario.preset(preset)
    assert Scenario.from_dict(s.to_dict()) == s
    assert Scenario.from_json(s.to_json()) == s
    assert Scenario.from_yaml(s.to_yaml()) == s
    s.to_yaml(tmp_path / "s.yaml")
    assert Scenario.from_file(tmp_path / "s.yaml") == s
    (tmp_path / "s.json").write_text(s.to_json())
    assert Scenario.from_file(tmp_path / "s.json") == s
    assert s.validate() is s


def test_preset_writes_every_plugin_default() -> None:
    s = Scenario.preset("thesis")
    assert s.preprocess[2] == StepSpec("resize", {"shape": [128, 128, 64], "order": 1,
                                                  "antialias": False})
    assert s.model == StepSpec("modified_3dcnn", {"dropout": 0.1, "head_dropout": 0.2,
                                                  "bn_momentum": 0.99, "weights": None})
    assert (s.train.optimizer, s.train.momentum, s.train.batch_size) == ("sgd", 0.9, 4)
    assert (s.split.train, s.split.val, s.split.test) == (0.7, 0.1, 0.2)
    assert yaml.safe_load(s.to_yaml())["augment"][0] == {
        "name": "flip", "params": {"axes": [0, 1], "prob": 0.5}}


def test_unknown_keys_are_errors_at_every_level_with_did_you_mean() -> None:
    with pytest.raises(ScenarioError, match=r"unknown key\(s\) 'trian' \(did you mean 'train'\?\); "
                                            r"known keys: name, seed"):
        Scenario.from_dict({"trian": {}})
    with pytest.raises(ScenarioError, match=r"'train.epoch' \(did you mean 'epochs'\?\); known "
                                            r"keys of train: epochs"):
        Scenario.from_dict({"train": {"epoch": 3}})
    with pytest.raises(ScenarioError, match=r"'preprocess.0.parms' \(did you mean 'params'"):
        Scenario.from_dict({"preprocess": [{"name": "resize", "parms": {}}]})
    with pytest.raises(ScenarioError, match=r"'data.synthetic.count'; known keys of"):
        Scenario.from_dict({"data": {"synthetic": {"count": 3}}})
    with pytest.raises(ScenarioError, match=r"override 'split.kfold': unknown key 'kfold' "
                                            r"\(did you mean 'fold'\?\)$"):
        Scenario().with_overrides({"split.kfold": 3})
    with pytest.raises(ScenarioError, match=r"override 'train.epocs': unknown key 'epocs' "
                                            r"\(did you mean 'epochs'\?\)"):
        Scenario().with_overrides({"train.epocs": 3})


def test_overrides_convert_by_type_hint_and_leave_original_unchanged() -> None:
    s = Scenario.preset("quick")
    s2 = s.with_overrides({"train.epochs": "25", "preprocess.0.params.high": "300",
                           "train.learning_rate": "1e-4", "data.root": "/data/x",
                           "preprocess.2.params.shape": "[64, 64, 64]"})
    assert s2.train.epochs == 25 and s.train.epochs == 12
    assert s2.preprocess[0].params["high"] == 300.0
    assert s2.train.learning_rate == 1e-4
    assert s2.data.root == "/data/x"
    assert s2.preprocess[2].params["shape"] == [64, 64, 64]
    assert Scenario.from_yaml(s2.to_yaml()) == s2


@pytest.mark.parametrize(("key", "value", "message"), [
    ("train.epochs", "many", "override train.epochs='many': expected int"),
    ("train.optimizer", "rmsprop", "expected 'adam' \\| 'sgd'"),
    ("train.epocs", "3", "override 'train.epocs': unknown key 'epocs'"),
    ("preprocess.9.params.low", "3", "no list item '9'"),
    ("train..epochs", "3", "bad override key"),
])
def test_bad_overrides(key: str, value: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.preset("quick").with_overrides({key: value})


def test_values_are_stored_as_given_and_checked_by_validate() -> None:
    s = Scenario(train=TrainSpec(epochs=-1))
    with pytest.raises(ScenarioError, match="train.epochs must be >= 1, got -1"):
        s.validate()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"model.name": "modified_3dcnm"}, "model: unknown model plugin 'modified_3dcnm'"),
    ({"preprocess.0.params.hgh": 3}, "preprocess.0: .*no parameter 'hgh'"),
    ({"augment.0.params.axes": [0, 1.5]}, "augment.0: .*'axes': expected tuple"),
    ({"split.train": 0.8}, "sum to 1, got 0.8/0.2/0.3"),
    ({"split.kind": "kfold", "split.fold": 5}, "k >= 2, 0 <= fold < k"),
    ({"split.kind": "kfold", "split.repeats": 0}, "split.repeats must be >= 1, got 0"),
    ({"split.repeats": 3}, "split.repeats=3 needs split.kind=kfold \\(repeated k-fold\\); a "
                           "holdout split is made once"),
    ({"split.val": 0.0, "split.train": 0.8}, "needs a validation part"),
    ({"data.labels": {"normal": ["CT-0"]}}, "at least 2 classes"),
    ({"data.labels": {"a": ["CT-0"], "b": ["CT-0"]}}, "'CT-0' is in both 'a' and 'b'"),
    ({"train.batch_size": 2.5}, "train.batch_size: expected int, got 2.5"),
    ({"model.params.input_shape": [1, 2, 3, 4]}, "no parameter 'input_shape'"),
])
def test_validate_reports_problems(overrides: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        Scenario.preset("quick").with_overrides(overrides).validate()


def test_file_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(ScenarioError, match="nope.yaml: scenario file not found"):
        Scenario.from_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: [\n")
    with pytest.raises(ScenarioError, match="bad.yaml: not valid YAML/JSON"):
        Scenario.from_file(bad)
    bad.write_text(json.dumps({"train": {"epoch": 1}}))
    with pytest.raises(ScenarioError, match="bad.yaml: unknown key"):
        Scenario.from_file(bad)
    with pytest.raises(ScenarioError, match="unknown preset 'thezis'; known: ct3d, quick, thesis"):
        Scenario.preset("thezis")


def test_distribution_keys_default_convert_and_validate() -> None:
    for preset in sorted(PRESETS):
        t = Scenario.preset(preset).train
        assert (t.strategy, t.mixed_precision, t.jit_compile) == ("auto", "auto", False)
        assert yaml.safe_load(Scenario.preset(preset).to_yaml())["train"]["strategy"] == "auto"
    s = Scenario.preset("quick").with_overrides({
        "train.strategy": "multi_worker", "train.mixed_precision": "mixed_bfloat16",
        "train.jit_compile": "true", "train.deterministic": "false"})
    assert (s.train.strategy, s.train.mixed_precision, s.train.jit_compile) == (
        "multi_worker", "mixed_bfloat16", True)
    assert Scenario.from_yaml(s.to_yaml()) == s.validate()
    with pytest.raises(ScenarioError, match="expected 'auto' \\| 'default' \\| 'mirrored'"):
        Scenario.preset("quick").with_overrides({"train.strategy": "mirored"})
    with pytest.raises(ScenarioError, match="'off' \\| 'mixed_float16' \\| 'mixed_bfloat16'"):
        Scenario.preset("quick").with_overrides({"train.mixed_precision": "fp16"})
    with pytest.raises(ScenarioError, match="jit_compile=true needs train.deterministic=false"):
        Scenario.preset("quick").with_overrides({"train.jit_compile": True}).validate()


SPECS = (Scenario, DataSpec, SyntheticSpec, SplitSpec, TrainSpec, EvalSpec, StepSpec)


def _flow_collections(text: str) -> list[yaml.Node]:
    """The mappings in flow style (``{a: 1}``) and the flow-style lists holding a collection
    (``[[0, 1]]``) of a YAML text; empty ones (``{}``, ``[]``) aside."""
    found, todo = [], [yaml.compose(text)]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            found += [node] * bool(node.flow_style and node.value)
            todo += [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            nested = any(not isinstance(item, yaml.ScalarNode) for item in node.value)
            found += [node] * bool(node.flow_style and nested)
            todo += node.value
    return found


def _commented(text: str, line: str) -> str:
    """The comment of the line of ``text`` that is ``line`` (spaces before the ``#`` aside)."""
    (comment,) = [t.split(" #", 1)[1].strip() for t in text.splitlines()
                  if t.split(" #", 1)[0].rstrip() == line]
    return comment


def test_every_field_of_the_scenario_classes_has_one_description() -> None:
    for spec in SPECS:
        docs = one_line_docs(spec, "Attributes")
        assert list(docs) == [f.name for f in dataclasses.fields(spec)], spec.__name__
        assert all(docs.values()), spec.__name__
    assert one_line_docs(TrainSpec, "Attributes")["jit_compile"] == (
        "compile each training step with XLA (needs deterministic false)")
    for spec in SPECS:  # a summary line, then the fields: no prose describing them again
        summary, fields = inspect.getdoc(spec).split("\n\n")
        assert "\n" not in summary and fields.startswith("Attributes:\n"), spec.__name__


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_commented_yaml_is_block_style_and_round_trips(preset: str, tmp_path) -> None:
    s = Scenario.preset(preset)
    text = s.to_yaml(tmp_path / "s.yaml", comments=True)
    assert Scenario.from_yaml(text) == s == Scenario.from_file(tmp_path / "s.yaml")
    assert _flow_collections(text) == []
    assert _flow_collections(s.to_yaml()) != []  # the default form is unchanged: flow labels
    assert "{" not in text and "\n    normal: [CT-0]\n    abnormal: [CT-23]\n" in text
    assert "shape: [" in text and "#" not in s.to_yaml()


def test_commented_yaml_puts_each_description_beside_its_key() -> None:
    s = Scenario.preset("thesis")
    text = s.to_yaml(comments=True)
    train_docs = one_line_docs(TrainSpec, "Attributes")
    for f in dataclasses.fields(TrainSpec):
        value = yaml.safe_dump(getattr(s.train, f.name)).splitlines()[0]
        assert _commented(text, f"  {f.name}: {value}") == train_docs[f.name]
    assert _commented(text, "  epochs: 25") == "passes over the training part, >= 1"
    assert _commented(text, "train:") == "training settings"
    assert _commented(text, "  labels:") == one_line_docs(DataSpec, "Attributes")["labels"]
    assert _commented(text, "    difficulty: easy") == (
        "lesion settings: easy, moderate or hard (fewer, smaller, fainter lesions); used when "
        "severity is none")
    assert _commented(text, "  - name: hu_window") == (
        "Clip HU to [low, high] and scale linearly to [0, 1] (float32)")
    assert _commented(text, "      low: -1000.0") == "lowest HU kept (lower values become 0)"
    assert _commented(text, "      shape: [128, 128, 64]") == (
        "output size (W, H, D) in voxels, each >= 1")
    assert _commented(text, "  name: modified_3dcnn").startswith("Thesis 3D CNN")
    assert _commented(text, "    weights: null").startswith("a local .weights.h5 file")
    assert "\n  params:\n    dropout: 0.1 " in text


def test_commented_yaml_of_third_party_and_unknown_plugins(monkeypatch) -> None:
    third_party = Registry("preprocess", "ct3d.test-none")

    @third_party.register("invert")
    def invert(top: float = 1.0, table: dict = {"air": -1000}) -> float:  # noqa: B006
        """Invert intensities: top - value (no Args section)."""
        return top

    monkeypatch.setitem(REGISTRIES, "preprocess", third_party)
    s = Scenario(
        name="a long name " * 12,
        preprocess=[StepSpec("invert", {"top": 2.0, "table": {"air": -1000, "fat": [-100]}})],
        augment=[],
        model=StepSpec("not_a_model", {"layers": [{"units": 8}], "none": {}}),
    )
    text = s.to_yaml(comments=True)
    assert Scenario.from_yaml(text) == s
    assert _flow_collections(text) == []
    assert _commented(text, "  - name: invert") == (
        "Invert intensities: top - value (no Args section)")
    assert "\n      top: 2.0\n      table:\n        air: -1000\n        fat: [-100]\n" in text
    assert "\n  name: not_a_model\n  params:\n    layers:\n    - units: 8\n    none: {}\n" in text
    assert "augment: []  # augmentation steps" in text
    assert text.startswith("# the scenario's name, shown in metrics and reports\nname: 'a long")

