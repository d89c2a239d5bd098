"""Named grids of scenarios: the thesis' experiment grid, and ct3d's recipe against it.

A grid is a base preset plus, per scenario, overrides of it, and optionally ``paired``:
scenario -> the reference it is compared with on the same folds (paired AUC difference).
``quick`` shrinks data, input and epochs for a smoke run; ``data`` points every scenario at a
folder of scans instead of the synthetic cohort.

Example:
    >>> sorted(grid("thesis"))[:2]
    ['all-slices-aug-10', 'all-slices-aug-15']
    >>> grid("thesis", quick=True)["lung-only-aug-25"].train.epochs
    2
"""

from __future__ import annotations

from typing import Any

from ct3d.scenario import Scenario, ScenarioError

_LUNG_ONLY = {"name": "slice_trim", "params": {"mode": "replace", "head": 12, "tail": 8}}
_CROP_CHAIN = [
    {"name": "lung_crop", "params": {"margin_mm": 10.0}},
    {"name": "hu_window", "params": {"low": -1000.0, "high": 400.0}},
    {"name": "rotate90", "params": {"k": 1}},
    {"name": "resize", "params": {"shape": [128, 128, 64]}},
]

GRIDS: dict[str, dict[str, Any]] = {
    "thesis": {
        "base": "thesis",
        "scenarios": {
            "all-slices-aug-5": {"train.epochs": 5},
            "all-slices-aug-10": {"train.epochs": 10},
            "all-slices-aug-15": {"train.epochs": 15},
            "all-slices-aug-25": {"train.epochs": 25},
            "all-slices-noaug-5": {"train.epochs": 5, "augment": []},
            "lung-only-aug-25": {"train.epochs": 25, "preprocess": "+slice_trim"},
            "ct3d-lung-crop-25": {"train.epochs": 25, "preprocess": _CROP_CHAIN,
                                  "model.params.bn_momentum": 0.5},
        },
        "thesis_figures": {
            "all-slices-aug-5": {"train_accuracy": 0.63, "val_accuracy": 0.575,
                                 "precision": 0.60, "recall": 0.75, "f1": 0.6667,
                                 "time_per_epoch_s": 37.6, "train_loss": 0.6429,
                                 "val_loss": 0.7050, "train_mse": 0.2257,
                                 "val_mse": 0.2552},
            "all-slices-aug-10": {"train_accuracy": 0.7125, "val_accuracy": 0.65,
                                  "precision": 0.58, "recall": 0.90, "f1": 0.7054,
                                  "time_per_epoch_s": 37.6, "train_loss": 0.5589,
                                  "val_loss": 0.8343, "train_mse": 0.1904,
                                  "val_mse": 0.2593},
            "all-slices-aug-15": {"train_accuracy": 0.7188, "val_accuracy": 0.50,
                                  "precision": 0.6364, "recall": 0.70, "f1": 0.6667,
                                  "time_per_epoch_s": 38.66, "train_loss": 0.5478,
                                  "val_loss": 0.7154, "train_mse": 0.1851,
                                  "val_mse": 0.2514},
            "all-slices-aug-25": {"train_accuracy": 0.71, "val_accuracy": 0.71,
                                  "precision": 0.6463, "recall": 0.70, "f1": 0.6667,
                                  "time_per_epoch_s": 2.0, "train_loss": 0.6132,
                                  "val_loss": 0.6331, "train_mse": 0.1985,
                                  "val_mse": 0.2206},
            "lung-only-aug-25": {"train_accuracy": 0.70, "val_accuracy": 0.71},
        },
    },
}

_THESIS_RECIPE = {
    "preprocess": [
        {"name": "hu_window", "params": {"low": -1000.0, "high": 400.0}},
        {"name": "rotate90", "params": {"k": 1}},
        {"name": "resize", "params": {"shape": [128, 128, 64]}},
    ],
    "augment": [
        {"name": "flip", "params": {"axes": [0, 1]}},
        {"name": "rotate", "params": {"degrees": [-20.0, 20.0]}},
        {"name": "contrast", "params": {"low": 0.5, "high": 1.0}},
    ],
    "model": {"name": "modified_3dcnn", "params": {"bn_momentum": 0.99}},
    "train.epochs": 25, "train.batch_size": 4, "train.optimizer": "sgd",
    "train.learning_rate": 1e-3, "train.momentum": 0.9, "train.schedule": "exponential",
    "train.lr_decay_rate": 0.96, "train.lr_decay_steps": 100_000,
    "train.monitor": "val_accuracy", "train.patience": 15,
}
_CT23 = {"data.synthetic.severity": "CT-23",
         "data.labels": {"normal": ["CT-0"], "abnormal": ["CT-23"]}}
_CT1 = {"data.synthetic.severity": "CT-1",
        "data.labels": {"normal": ["CT-0"], "abnormal": ["CT-1"]}}
_GRADES = {"data.synthetic.severity": "all", "data.synthetic.normal": 60,
           "data.synthetic.abnormal": 60,
           "data.labels": {f"CT-{i}": [f"CT-{i}"] for i in range(5)}}

GRIDS["ct3d"] = {
    "base": "ct3d",
    "scenarios": {
        "ct23-ct3d-recipe": _CT23,
        "ct23-thesis-recipe": {**_CT23, **_THESIS_RECIPE},
        "ct1-ct3d-recipe": {**_CT1, "split.repeats": 3},
        "ct1-thesis-recipe": {**_CT1, **_THESIS_RECIPE},
        "ct1-no-lung-crop": {**_CT1, "preprocess": _CROP_CHAIN[1:3] + [
            {"name": "resize", "params": {"shape": [64, 64, 48], "antialias": True}}],
                             "preprocess.0.params.high": 200.0},
        "ct1-no-augment": {**_CT1, "augment": []},
        "grades-ct3d-recipe": _GRADES,
    },
    "paired": {
        "ct23-ct3d-recipe": "ct23-thesis-recipe",
        "ct1-ct3d-recipe": "ct1-thesis-recipe",
        "ct1-no-lung-crop": "ct1-ct3d-recipe",
        "ct1-no-augment": "ct1-ct3d-recipe",
    },
}
"""Grid name -> base preset, scenario overrides, the thesis' own reported figures and the
paired comparisons. ``ct3d``: the ``ct3d`` preset (the recommended recipe) against the
thesis' recipe on the same 5 folds of the MosMed-graded synthetic stand-in, CT-0 vs CT-23
(the thesis' task) and CT-0 vs CT-1 (mild disease), two ablations, and the five grades."""


def _model(name: str, **params: Any) -> dict[str, Any]:
    """A model step with the ``ct3d`` recipe's BatchNorm momentum (0.9: moving averages that
    keep up with 30 epochs of Adam; with Keras' 0.99 a slice model's validation predictions
    lag far behind its training ones)."""
    return {"model": {"name": name, "params": {"bn_momentum": 0.9, **params}}}


_UNLABELED = {"preset": "mosmed", "severity": "all", "scanner": "varied", "normal": 80,
              "abnormal": 80, "seed": 1, "difficulty": "easy"}   # 80 per grade CT-0..CT-4

_GENESIS = {"name": "genesis-400", "unlabeled": _UNLABELED, "train.epochs": 20}
_SCARCE = {f"{arm}-{n}-per-class": {**_CT1, "data.synthetic.normal": n,
                                    "data.synthetic.abnormal": n}
           for n in (20, 50) for arm in ("thesis-cnn", "ssl-thesis-cnn")}

GRIDS["dims"] = {
    "base": "ct3d",
    "scenarios": {
        "thesis-cnn": _CT1,
        "slice2d-small-attention": {**_CT1, **_model("slice2d", aggregation="attention")},
        "ssl-thesis-cnn": _CT1,
        **_SCARCE,
        "slice25d-small-attention": {**_CT1, **_model("slice25d", aggregation="attention")},
        "resnet3d": {**_CT1, **_model("resnet3d", depth=18)},
        "slice2d-small-mean": {**_CT1, **_model("slice2d", aggregation="mean")},
        "inflated3d-scratch": {**_CT1, **_model("inflated3d", stages=2)},
        "slice2d-resnet50-imagenet": {
            **_CT1, **_model("slice2d", backbone="ResNet50", aggregation="attention",
                             weights="imagenet"), "train.freeze_epochs": 5},
        "inflated3d-imagenet": {**_CT1, **_model("inflated3d", stages=3, weights="imagenet"),
                                "train.freeze_epochs": 5},
    },
    "pretrain": {n: _GENESIS for n in ("ssl-thesis-cnn", *_SCARCE) if n.startswith("ssl")},
    "paired": {**{f"ssl-thesis-cnn-{n}-per-class": f"thesis-cnn-{n}-per-class"
                  for n in (20, 50)},
               **{n: "thesis-cnn" for n in ("slice2d-small-attention", "ssl-thesis-cnn",
                                            "slice25d-small-attention", "resnet3d",
                                            "slice2d-small-mean", "inflated3d-scratch",
                                            "slice2d-resnet50-imagenet",
                                            "inflated3d-imagenet")}},
    "curves": {"labeled scans per class": {
        "thesis CNN from scratch": {20: "thesis-cnn-20-per-class",
                                    50: "thesis-cnn-50-per-class", 100: "thesis-cnn"},
        "thesis CNN pretrained (SSL)": {20: "ssl-thesis-cnn-20-per-class",
                                        50: "ssl-thesis-cnn-50-per-class",
                                        100: "ssl-thesis-cnn"}}},
}
"""``dims``: 2D, 2.5D or 3D, from scratch or pretrained, on CT-0 vs CT-1 (the subtle task)
with the ``ct3d`` recipe and the same 5 folds for every model: the thesis CNN, ResNet-18 3D,
the slice models with ct3d's small 2D backbone (attention-MIL or mean over slices; 2.5D:
three neighbouring slices as channels), the inflated 3D ResNet-50 from scratch, the thesis
CNN pretrained on 400 unlabeled scans of another cohort (``pretrain``: Models Genesis, run
before its scenario, see :func:`ct3d.pretrain.pretrain`; rows naming the same pretraining
share it) with and without pretraining at 20 and 50 labeled scans per class (``curves``: the
AUC against the labeled scans), and two ImageNet rows that need Keras' ImageNet weight files
(downloaded on first use, or already in ``~/.keras/models``; offline and without them, those
two reports fail at once, naming the missing file). ``paired``: every model against the
thesis CNN, each pretrained row against the same CNN from scratch on the same scans."""

_QUICK = {
    "data.synthetic.preset": "quick", "data.synthetic.normal": 12,
    "data.synthetic.abnormal": 12, "data.synthetic.difficulty": "easy", "split.repeats": 1,
    "evaluate.n_boot": 200,
}


def _apply(base: Scenario, name: str, overrides: dict[str, Any], quick: bool) -> Scenario:
    changes = {k: v for k, v in overrides.items() if k not in ("preprocess", "augment")}
    chain = overrides.get("preprocess")
    data = base.to_dict()
    if chain == "+slice_trim":
        data["preprocess"] = [*data["preprocess"], dict(_LUNG_ONLY)]
    elif chain is not None:
        data["preprocess"] = [dict(step) for step in chain]
    if "augment" in overrides:
        data["augment"] = [dict(step) for step in overrides["augment"]]
    scenario = Scenario.from_dict(data).with_overrides({"name": name, **changes})
    if quick:
        resize = next(i for i, s in enumerate(scenario.preprocess) if s.name == "resize")
        epochs = max(1, scenario.train.epochs // 10)
        scenario = scenario.with_overrides({
            **_QUICK, f"preprocess.{resize}.params.shape": [64, 64, 48], "train.epochs": epochs,
            "train.freeze_epochs": min(scenario.train.freeze_epochs, epochs - 1),
        })
    return scenario.with_plugin_defaults()


def grid(name: str, quick: bool = False, data: str | None = None) -> dict[str, Scenario]:
    """The scenarios of grid ``name`` (complete and validated), by scenario name.

    ``data``: a folder of class sub-folders to use instead of the synthetic cohort.
    """
    if name not in GRIDS:
        raise ScenarioError(f"unknown grid {name!r}; known: {', '.join(sorted(GRIDS))}")
    spec = GRIDS[name]
    base = Scenario.preset(spec["base"])
    if data is not None:
        base = base.with_overrides({"data.source": "folder", "data.root": data})
    return {n: _apply(base, n, o, quick).validate() for n, o in spec["scenarios"].items()}
