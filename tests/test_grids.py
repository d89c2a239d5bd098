"""Named grids: the ct3d grid's scenarios are what their names say, paired on the same folds."""

from __future__ import annotations

import dataclasses

import pytest

from ct3d.grids import GRIDS, grid
from ct3d.scenario import Scenario, ScenarioError


def test_ct3d_grid_scenarios_validate_and_name_their_task() -> None:
    scenarios = grid("ct3d")
    assert list(scenarios) == list(GRIDS["ct3d"]["scenarios"])
    for name, s in scenarios.items():
        task = name.split("-")[0]
        abnormal = {"ct23": ["CT-23"], "ct1": ["CT-1"]}.get(task)
        if abnormal is not None:
            assert s.data.labels == {"normal": ["CT-0"], "abnormal": abnormal}
            assert s.data.synthetic.severity == abnormal[0]
        else:
            assert list(s.data.labels) == ["CT-0", "CT-1", "CT-2", "CT-3", "CT-4"]
            assert s.data.synthetic.severity == "all"
        assert s.data.synthetic.scanner == "varied" and s.data.synthetic.preset == "mosmed"
        assert s.split.kind == "kfold" and s.split.k == 5


def test_thesis_recipe_is_the_thesis_preset_on_the_ct3d_folds() -> None:
    thesis = Scenario.preset("thesis")
    for name in ("ct23-thesis-recipe", "ct1-thesis-recipe"):
        s = grid("ct3d")[name]
        assert s.preprocess == thesis.preprocess and s.model == thesis.model
        assert dataclasses.asdict(s.train) == dataclasses.asdict(thesis.train)
        assert [step.name for step in s.augment] == ["flip", "rotate", "contrast"]
        assert s.augment == Scenario().with_plugin_defaults().augment


def test_paired_scenarios_share_data_split_and_seed() -> None:
    scenarios = grid("ct3d")
    for name, reference in GRIDS["ct3d"]["paired"].items():
        a, b = scenarios[name], scenarios[reference]
        assert a.data.synthetic == b.data.synthetic and a.data.labels == b.data.labels
        assert (a.split.k, a.split.val, a.seed) == (b.split.k, b.split.val, b.seed)
        assert min(a.split.repeats, b.split.repeats) >= 1


def test_recommended_recipe_repeats_the_hard_task_three_times() -> None:
    scenarios = grid("ct3d")
    assert scenarios["ct1-ct3d-recipe"].split.repeats == 3
    assert scenarios["ct23-ct3d-recipe"].split.repeats == 1
    assert scenarios["ct1-no-lung-crop"].preprocess[0].name == "hu_window"
    assert scenarios["ct1-no-augment"].augment == []


def test_quick_grid_is_a_single_small_repeat() -> None:
    for s in grid("ct3d", quick=True).values():
        assert s.split.repeats == 1 and s.train.epochs <= 3
        assert s.data.synthetic.preset == "quick" and s.data.synthetic.normal == 12


def test_unknown_grid_is_refused() -> None:
    with pytest.raises(ScenarioError, match="unknown grid 'x'; known: ct3d, dims, thesis"):
        grid("x")


def test_labels_naming_folders_the_synthetic_cohort_does_not_write_are_refused() -> None:
    s = Scenario.preset("ct3d").with_overrides({"data.synthetic.severity": "CT-1"})
    with pytest.raises(ScenarioError, match=(
            "data.labels name folder\\(s\\) CT-23 that the synthetic cohort \\(severity CT-1\\) "
            "does not write; it writes CT-0, CT-1")):
        s.validate()


def test_dims_grid_compares_every_model_with_the_thesis_cnn_on_the_same_folds() -> None:
    scenarios = grid("dims")
    reference = scenarios["thesis-cnn"]
    assert reference.model.name == "modified_3dcnn" and reference.model.params["weights"] is None
    full = [n for n in scenarios if not n.endswith("-per-class")]
    assert {n: GRIDS["dims"]["paired"][n] for n in full[1:]} == dict.fromkeys(full[1:],
                                                                          "thesis-cnn")
    for s in scenarios.values():
        assert s.data.labels == {"normal": ["CT-0"], "abnormal": ["CT-1"]}
        assert (s.seed, s.split, s.preprocess, s.augment) == (
            reference.seed, reference.split, reference.preprocess, reference.augment)
    assert all(scenarios[n].data.synthetic == reference.data.synthetic for n in full)
    models = {n: (s.model.name, s.model.params.get("aggregation")) for n, s in scenarios.items()}
    assert models["slice2d-small-mean"] == ("slice2d", "mean")
    assert models["slice25d-small-attention"] == ("slice25d", "attention")
    assert scenarios["slice2d-resnet50-imagenet"].model.params["weights"] == "imagenet"
    assert scenarios["inflated3d-imagenet"].train.freeze_epochs == 5


def test_dims_label_scarce_rows_pair_pretrained_and_scratch_on_the_same_scans() -> None:
    scenarios = grid("dims")
    for n in (20, 50):
        scratch, ssl = f"thesis-cnn-{n}-per-class", f"ssl-thesis-cnn-{n}-per-class"
        assert GRIDS["dims"]["paired"][ssl] == scratch
        assert scenarios[ssl] == scenarios[scratch].with_overrides({"name": ssl})
        synthetic = scenarios[scratch].data.synthetic
        assert (synthetic.normal, synthetic.abnormal) == (n, n)
    curves = GRIDS["dims"]["curves"]["labeled scans per class"]
    assert [sorted(points) for points in curves.values()] == [[20, 50, 100]] * 2
    assert all(name in scenarios for points in curves.values() for name in points.values())


def test_dims_ssl_row_pretrains_on_another_cohort_than_it_is_tested_on() -> None:
    ssl = grid("dims")["ssl-thesis-cnn"]
    spec = GRIDS["dims"]["pretrain"]["ssl-thesis-cnn"]
    assert all(s is spec for s in GRIDS["dims"]["pretrain"].values())     # pretrained once
    assert set(GRIDS["dims"]["pretrain"]) == {n for n in grid("dims") if n.startswith("ssl")}
    assert ssl.model == grid("dims")["thesis-cnn"].model      # same model, weights set at run
    unlabeled = spec["unlabeled"]
    assert unlabeled["seed"] != ssl.data.synthetic.seed
    assert unlabeled["severity"] == "all"                      # abnormal: per grade CT-1..4
    assert unlabeled["normal"] + 4 * unlabeled["abnormal"] == 400


def test_quick_grid_keeps_a_frozen_phase_shorter_than_its_epochs() -> None:
    quick = grid("dims", quick=True)
    assert all(s.train.freeze_epochs < s.train.epochs for s in quick.values()
               if s.train.freeze_epochs)
