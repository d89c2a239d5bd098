"""Self-supervised pretraining: Models Genesis corruptions, restoration model, ct3d pretrain."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ct3d.cli import main
from ct3d.data.synthetic import generate_cohort
from ct3d.models import build_model
from ct3d.pretrain import PretrainError, restoration_model, unlabeled_scans
from ct3d.pretrain.genesis import corrupt, in_paint, out_paint
from ct3d.scenario import Scenario


@pytest.mark.parametrize(("name", "shape"), [("modified_3dcnn", (46, 46, 46, 1)),
                                             ("modified_3dcnn", (64, 64, 48, 1)),
                                             ("resnet3d", (32, 32, 40, 1))])
def test_the_restoration_model_returns_the_input_shape(name: str, shape: tuple) -> None:
    model = restoration_model(build_model(name, input_shape=shape))
    assert model.output_shape == (None, *shape)
    assert all(layer.name.startswith("decoder_") for layer in model.layers
               if layer.name not in {x.name for x in build_model(name, input_shape=shape).layers})
    with pytest.raises(PretrainError, match="needs a 3D model with a global pooling layer"):
        restoration_model(build_model("slice2d", input_shape=(32, 32, 4, 1)))


def test_painting_replaces_boxes_inside_or_around_and_corruption_is_seeded() -> None:
    x = np.full((20, 20, 20), 0.5, np.float32)
    inside = in_paint(x, np.random.default_rng(0))
    changed = inside != 0.5
    assert 0 < changed.mean() < 0.5  # a few boxes, each at most 1/3 of every side
    outside = out_paint(x, np.random.default_rng(0))
    kept = outside == 0.5
    assert 3 / 7 * 0.9 <= kept.mean() ** (1 / 3) <= 4 / 7 + 0.05  # one box of 3/7-4/7 a side
    a, b = (corrupt(x, np.random.default_rng([1, 2, 3])) for _ in range(2))
    assert np.array_equal(a, b) and not np.array_equal(a, corrupt(x, np.random.default_rng(4)))


def test_unlabeled_scans_come_from_a_folder_or_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.nii.gz", "a/b/two.nii.gz", "a/b/two_mask.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    assert [Path(p).name for p in unlabeled_scans(tmp_path / "a")] == ["two.nii.gz",
                                                                       "one.nii.gz"]
    manifest = tmp_path / "a" / "list.csv"
    manifest.write_text("path,note\nb/two.nii.gz,x\n/abs/three.nii.gz,y\n")
    assert unlabeled_scans(manifest) == [str(tmp_path / "a" / "b" / "two.nii.gz"),
                                         "/abs/three.nii.gz"]
    (tmp_path / "bad.csv").write_text("file\nx.nii.gz\n")
    with pytest.raises(PretrainError, match="bad.csv: a manifest needs a 'path' column"):
        unlabeled_scans(tmp_path / "bad.csv")
    with pytest.raises(PretrainError, match="nowhere: no such folder or manifest"):
        unlabeled_scans(tmp_path / "nowhere")


@pytest.mark.slow
def test_pretrain_writes_an_encoder_a_3d_model_starts_from_and_resumes(tmp_path: Path) -> None:
    generate_cohort(tmp_path / "unlabeled", normal=3, abnormal=3, preset="quick",
                    progress=False)
    scenario = Scenario.preset("quick").with_overrides({
        "data.cache": str(tmp_path / "cache"), "preprocess.2.params.shape": [46, 46, 46],
        "train.epochs": 1, "train.batch_size": 2})
    scenario.to_yaml(tmp_path / "s.yaml")
    out = tmp_path / "pretrained"
    args = ["pretrain", str(tmp_path / "s.yaml"), "--unlabeled", str(tmp_path / "unlabeled"),
            "--out", str(out)]
    assert main(args) == 0
    assert main([*args, "--set", "train.epochs=2"]) == 0  # resumes: one more epoch
    with (out / "history.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and all(float(r["loss"]) > 0 for r in rows)
    assert (out / "loss.png").stat().st_size > 0

    import keras

    saved = keras.saving.load_model(out / "pretrained.keras")
    start = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1),
                        weights=str(out / "pretrained.keras"))
    for name in ("block1_conv", "block4_bn"):
        for a, b in zip(start.get_layer(name).weights, saved.get_layer(name).weights,
                        strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    fresh = build_model("modified_3dcnn", input_shape=(46, 46, 46, 1))
    assert not np.array_equal(fresh.get_layer("block1_conv").kernel.numpy(),
                              start.get_layer("block1_conv").kernel.numpy())
