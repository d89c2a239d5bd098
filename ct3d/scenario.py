"""The Scenario: one plain-data description of a run, round-tripping dict / JSON / YAML.

Parameters are stored as given and checked by :meth:`Scenario.validate` (scikit-learn's
habit), against the field type hints and the plugin registries, before any data is touched:
also the files it names and whether the model accepts what the preprocessing chain gives.
Unknown keys are errors, with a did-you-mean. Validation never imports TensorFlow.

Example:
    >>> s = Scenario.preset("quick").with_overrides({"train.epochs": "3"})
    >>> s.train.epochs
    3
    >>> Scenario.from_yaml(s.to_yaml()) == s
    True
    >>> Scenario(train=TrainSpec(epochs=-1)).validate()
    Traceback (most recent call last):
    ...
    ct3d.scenario.ScenarioError: invalid scenario: train.epochs must be >= 1, got -1
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ct3d.commented_yaml import commented_yaml
from ct3d.errors import Ct3dError
from ct3d.models import min_input
from ct3d.params import ParamError, coerce, describe_type
from ct3d.preprocess import output_shape
from ct3d.registry import REGISTRIES, ResolvedStep, UnknownPlugin, plain, resolve_step


class ScenarioError(Ct3dError, ValueError):
    """A scenario with unknown keys or invalid values; the message lists every problem."""

    @classmethod
    def listing(cls, problems: list[str]) -> ScenarioError:
        """One line for one problem; a header and one indented line each for several."""
        if len(problems) == 1:
            return cls(f"invalid scenario: {problems[0]}")
        return cls("invalid scenario:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class StepSpec:
    """One chain step or model: a registered plugin name and its keyword parameters.

    Attributes:
        name: a registered plugin's name (``ct3d plugins`` lists them).
        params: the plugin's keyword parameters by name; one left out takes its default.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyntheticSpec:
    """Cohort generated when ``data.source`` is ``synthetic`` (see :mod:`ct3d.data.synthetic`).

    Attributes:
        normal: number of normal scans, >= 1.
        abnormal: number of scans with COVID-19-like lesions, >= 1.
        preset: scan geometry: quick (128 x 128 in-plane, fast) or mosmed (MosMedData-like).
        difficulty: lesion settings: easy, moderate or hard (fewer, smaller, fainter lesions);
            used when severity is none.
        severity: MosMedData grade of the abnormal scans, by the share of lung affected: none
            (use difficulty), CT-1 (<= 25%), CT-2 (25-50%), CT-3 (50-75%), CT-4 (>= 75%), CT-23
            (CT-2 and CT-3 as in MosMedData) or all (folders CT-0 to CT-4, abnormal scans each).
        scanner: uniform (the preset's geometry) or varied (slice thickness 1-10 mm, noise,
            kernel, patient size, inspiration and field of view vary per scan).
        seed: cohort seed; the same seed gives the same scans.
    """

    normal: int = 24
    abnormal: int = 24
    preset: Literal["quick", "mosmed"] = "quick"
    difficulty: Literal["easy", "moderate", "hard"] = "easy"
    severity: Literal["none", "CT-1", "CT-2", "CT-3", "CT-4", "CT-23", "all"] = "none"
    scanner: Literal["uniform", "varied"] = "uniform"
    seed: int = 0


@dataclass
class DataSpec:
    """Where the scans come from and how folder names map to classes.

    Attributes:
        source: the kind of data: synthetic, folder or manifest. ``synthetic``:
            generated on first use into its own folder under ``root``; ``folder``: class
            sub-folders under ``root``; ``manifest``: ``root`` is a CSV with
            path,label[,patient].
        root: the data folder, or the manifest CSV file.
        labels: class name -> folder names (or manifest labels); the first class is label 0.
        synthetic: the cohort generated when source is synthetic.
        cache: folder of preprocessed arrays.
        workers: preprocessing processes (0 = one per CPU core).
        strict: stop the run at a scan that fails to preprocess (false: skip and report it).
    """

    source: Literal["synthetic", "folder", "manifest"] = "synthetic"
    root: str = "data"
    labels: dict[str, list[str]] = field(
        default_factory=lambda: {"normal": ["CT-0"], "abnormal": ["CT-23"]}
    )
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    cache: str = "cache"
    workers: int = 0
    strict: bool = False


@dataclass
class SplitSpec:
    """Seeded, stratified split by patient into training, validation and test parts.

    Attributes:
        kind: holdout (train, val and test fractions) or kfold (cross-validation). ``kfold``:
            one model per fold, each fold the test part once.
        train: fraction of the patients for training (holdout); train + val + test = 1.
        val: fraction of the patients for validation (kfold: of the other folds).
        test: fraction of the patients for testing (holdout).
        k: number of folds (kfold), >= 2.
        fold: the one fold to run (kfold), 0 to k - 1; null runs every fold.
        repeats: number of k-fold splits (repeated k-fold), >= 1; repeat r is seeded seed + r,
            so repeat 0 is the split of repeats 1. Metrics are the mean over the repeats of
            each repeat's out-of-fold metrics.
    """

    kind: Literal["holdout", "kfold"] = "holdout"
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    k: int = 5
    fold: int | None = None
    repeats: int = 1


@dataclass
class TrainSpec:
    """How the model is trained: optimizer, learning rate, stopping, devices and precision.

    Attributes:
        epochs: passes over the training part, >= 1.
        batch_size: scans per step in the global batch. With several devices each gets
            ``batch_size / replicas`` scans of every batch.
        optimizer: adam, or sgd (with momentum).
        learning_rate: (initial) learning rate for the global batch, > 0. Unchanged with
            several devices.
        momentum: SGD momentum (optimizer sgd).
        schedule: learning rate over the run: constant, exponential, cosine or plateau.
            ``exponential``: times ``lr_decay_rate`` every ``lr_decay_steps`` steps,
            staircase, as in the thesis; ``cosine``: to 0 over the run; ``plateau``: times
            ``plateau_factor`` after ``plateau_patience`` epochs without improvement of
            ``monitor``.
        lr_decay_rate: factor per lr_decay_steps steps (schedule exponential), in (0, 1].
        lr_decay_steps: steps per decay (schedule exponential), >= 1.
        plateau_factor: rate factor after plateau_patience stalled epochs (schedule plateau),
            in (0, 1).
        plateau_patience: epochs without improvement of monitor before the rate drops
            (schedule plateau).
        class_weight: none, or balanced (classes weighed inversely to their training counts).
        monitor: metric that picks the best checkpoint and drives early stopping.
        patience: epochs without improvement of monitor before training stops early, >= 0.
            It counts again from 0 when a frozen phase ends.
        freeze_epochs: epochs at the start with the model's feature extractor frozen (a slice
            model's per-slice encoder; for 3D models the layers before the global pooling):
            only the head trains. Then everything trains. 0: no frozen phase.
        finetune_lr_scale: learning-rate factor once the frozen phase ends, in (0, 1]; the
            schedule restarts over the remaining epochs.
        deterministic: TensorFlow op determinism (same seed, same result on CPU).
        strategy: devices: auto, default, mirrored or multi_worker. ``auto``: ``mirrored``
            when more than one GPU is visible, else ``default``; ``default``: one device;
            ``mirrored``: every GPU of this machine, or every logical CPU of
            ``CT3D_LOGICAL_CPUS``; ``multi_worker``: the hosts in ``TF_CONFIG``.
        mixed_precision: auto, off, mixed_float16 or mixed_bfloat16 (the output layer stays
            float32). ``auto``: ``mixed_float16`` on GPUs with compute capability >= 7.0,
            else ``off``.
        jit_compile: compile each training step with XLA (needs deterministic false). Keras
            turns XLA off under TensorFlow op determinism, also when an earlier run in the
            same process turned determinism on.
        augment_on: where training batches are augmented: input (the input pipeline, on
            the CPU), device (inside the compiled train step, on the GPU when there is one;
            one replica only; on TensorFlow not with jit_compile) or auto (device when
            training on one GPU where it can, else input). Both places give the same
            augmented batches.
        tensorboard: write TensorBoard logs into the run folder (``tensorboard/``: the
            curves per epoch, the confusion matrix, a Grad-CAM panel, the scenario and its
            settings for the HParams dashboard); they need TensorFlow installed.
    """

    epochs: int = 8
    batch_size: int = 4
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    schedule: Literal["constant", "exponential", "cosine", "plateau"] = "constant"
    lr_decay_rate: float = 0.96
    lr_decay_steps: int = 100_000
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    class_weight: Literal["none", "balanced"] = "none"
    monitor: Literal["val_loss", "val_accuracy", "val_auc", "loss", "accuracy"] = "val_loss"
    patience: int = 15
    freeze_epochs: int = 0
    finetune_lr_scale: float = 0.1
    deterministic: bool = True
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["auto", "off", "mixed_float16", "mixed_bfloat16"] = "auto"
    jit_compile: bool = False
    augment_on: Literal["auto", "input", "device"] = "auto"
    tensorboard: bool = True


@dataclass
class EvalSpec:
    """Evaluation: the decision threshold and the bootstrap confidence intervals.

    Attributes:
        threshold: decision threshold on the predicted probability, in (0, 1), or youden.
            ``youden``: chosen on the validation part by Youden's J, then applied unchanged
            to the test part.
        n_boot: bootstrap resamples for the 95% confidence intervals, >= 0.
    """

    threshold: float | Literal["youden"] = 0.5
    n_boot: int = 1000


def _default_preprocess() -> list[StepSpec]:
    return [
        StepSpec("hu_window", {"low": -1000.0, "high": 400.0}),
        StepSpec("rotate90", {"k": 1}),
        StepSpec("resize", {"shape": [64, 64, 48]}),
    ]


def _default_augment() -> list[StepSpec]:
    return [
        StepSpec("flip", {"axes": [0, 1]}),
        StepSpec("rotate", {"degrees": [-20.0, 20.0]}),
        StepSpec("contrast", {"low": 0.5, "high": 1.0}),
    ]


@dataclass
class Scenario:
    """Everything that defines a run: data, split, chains, model, training, seed, output.

    Attributes:
        name: the scenario's name, shown in metrics and reports.
        seed: seed of the split, the initial weights, the augmentations and the bootstrap.
        out: run folder (``ct3d train --out`` overrides it).
        data: where the scans come from and how folder names map to classes.
        split: how patients are split into training, validation and test parts.
        preprocess: preprocessing steps, in order, applied once per scan (cached).
        augment: augmentation steps, in order, applied to each training batch.
        model: the model builder and its parameters.
        train: training settings.
        evaluate: decision threshold and confidence intervals.
    """

    name: str = "quick"
    seed: int = 0
    out: str = "runs/quick"
    data: DataSpec = field(default_factory=DataSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    preprocess: list[StepSpec] = field(default_factory=_default_preprocess)
    augment: list[StepSpec] = field(default_factory=_default_augment)
    model: StepSpec = field(default_factory=lambda: StepSpec("modified_3dcnn"))
    train: TrainSpec = field(default_factory=TrainSpec)
    evaluate: EvalSpec = field(default_factory=EvalSpec)

    # -- conversion -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts/lists (a deep copy)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        """Build from nested dicts; unknown keys raise :class:`ScenarioError`."""
        return _build(cls, data, "")

    def to_json(self) -> str:
        """JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        """Parse JSON text."""
        return cls.from_dict(json.loads(text))

    def to_yaml(self, path: str | os.PathLike[str] | None = None, comments: bool = False) -> str:
        """YAML text, also written to ``path`` when given.

        ``comments``: the form to edit by hand (``ct3d scenario new``): block style (only
        lists of scalars stay in flow style, ``shape: [128, 128, 64]``, one line to edit)
        with each key's one-line description as a comment: the ``Attributes:`` of the
        scenario's classes, each plugin's summary and its parameters' descriptions. A
        description that does not fit beside a value of several lines goes on the line above.

        Example:
            >>> text = Scenario.preset("quick").to_yaml(comments=True)
            >>> epochs = next(line for line in text.splitlines() if "epochs:" in line)
            >>> " ".join(epochs.split())
            'epochs: 12 # passes over the training part, >= 1'
            >>> Scenario.from_yaml(text) == Scenario.preset("quick")
            True
        """
        if comments:
            text = commented_yaml(self)
        else:
            text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, text: str) -> Scenario:
        """Parse YAML text."""
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ScenarioError(f"a scenario must be a mapping, got {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Scenario:
        """Read a ``.yaml``/``.yml``/``.json`` scenario file."""
        p = Path(path)
        if not p.is_file():
            raise ScenarioError(f"{p}: scenario file not found")
        try:
            if p.suffix == ".json":
                return cls.from_json(p.read_text())
            return cls.from_yaml(p.read_text())
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ScenarioError(f"{p}: not valid YAML/JSON: {exc}") from None
        except ScenarioError as exc:
            raise ScenarioError(f"{p}: {exc}") from None

    @classmethod
    def preset(cls, name: str) -> Scenario:
        """A named, complete scenario (see :data:`PRESETS`) with every default written out."""
        if name not in PRESETS:
            raise ScenarioError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
        return cls.from_dict(_merge(cls().to_dict(), PRESETS[name])).with_plugin_defaults()

    # -- changes ----------------------------------------------------------------------
    def with_overrides(self, overrides: dict[str, Any]) -> Scenario:
        """A copy with dotted keys set (``train.epochs``, ``preprocess.0.params.high``).

        String values convert by the type hint of the field or plugin parameter they set.
        """
        data = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(data, key, _convert_for(self, key, value))
        return Scenario.from_dict(data)

    def with_plugin_defaults(self) -> Scenario:
        """A copy in which every step lists every plugin parameter (its resolved form)."""
        data = self.to_dict()
        data["preprocess"] = [s.to_dict() for s in self.resolved("preprocess")]
        data["augment"] = [s.to_dict() for s in self.resolved("augment")]
        data["model"] = self.resolved("model")[0].to_dict()
        return Scenario.from_dict(data)

    def resolved(self, kind: Literal["preprocess", "augment", "model"]) -> list[ResolvedStep]:
        """The steps of one chain (``model``: a list of one), each resolved: checked,
        converted by type hint, every default filled in. Raises ``UnknownPlugin`` or
        ``ParamError`` for a bad step.

        Example:
            >>> Scenario().resolved("model")
            [modified_3dcnn(dropout=0.1, head_dropout=0.2, bn_momentum=0.99, weights=None)]
        """
        steps = [self.model] if kind == "model" else getattr(self, kind)
        return [resolve_step(kind, step) for step in steps]

    # -- checks -----------------------------------------------------------------------
    def validate(self) -> Scenario:
        """Raise :class:`ScenarioError` listing every problem; return ``self`` when valid.

        Checked, in this order (a later check runs only when the earlier ones pass): the
        type of every field; the values and the plugins (names and parameters); the files
        and folders the scenario reads (``data.root``, model ``weights``); the model's
        smallest input against the preprocessing chain's output shape, when the chain's
        steps declare it. Nothing is read or written, and TensorFlow is not imported.
        """
        problems = _type_problems(self, "") or _value_problems(self)
        if not problems:
            chain, (model,) = self.resolved("preprocess"), self.resolved("model")
            problems = _path_problems(self.data, model) or _shape_problems(chain, model)
        if problems:
            raise ScenarioError.listing(problems)
        return self


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        is_section = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if is_section and key != "labels" else value
    return out


def _build(cls: type, data: Any, where: str) -> Any:
    """Recursively build dataclass ``cls`` from ``data``, refusing unknown keys."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where or 'scenario'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ScenarioError(
            f"unknown key(s) {', '.join(_unknown_key(where, k, names) for k in unknown)}; "
            f"known keys{' of ' + where.rstrip('.') if where else ''}: {', '.join(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}{key}.")
        elif typing.get_origin(hint) is list and typing.get_args(hint)[0] is StepSpec:
            if not isinstance(value, list):
                raise ScenarioError(f"{where}{key} must be a list of steps, got {value!r}")
            kwargs[key] = [_build(StepSpec, v, f"{where}{key}.{i}.") for i, v in enumerate(value)]
        else:
            kwargs[key] = copy.deepcopy(value)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ScenarioError(f"{where or 'scenario'}: {exc}") from None


def _unknown_key(where: str, key: str, names: list[str]) -> str:
    """``'train.epocs'`` and, when a known key is close, ``(did you mean 'epochs'?)``."""
    close = difflib.get_close_matches(str(key), names, n=1)
    return repr(where + str(key)) + (f" (did you mean {close[0]!r}?)" if close else "")


def _type_problems(obj: Any, where: str) -> list[str]:
    problems: list[str] = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(hint):
            problems += _type_problems(value, f"{where}{f.name}.")
        elif typing.get_origin(hint) is list and typing.get_args(hint)[0] is StepSpec:
            for i, step in enumerate(value):
                problems += _type_problems(step, f"{where}{f.name}.{i}.")
        else:
            try:
                coerce(hint, value)
            except ParamError as exc:
                problems.append(f"{where}{f.name}: expected {describe_type(hint)}, got "
                                f"{value!r} ({exc})")
    return problems


def _value_problems(s: Scenario) -> list[str]:
    p: list[str] = []
    t, sp = s.train, s.split
    for key in ("epochs", "batch_size", "lr_decay_steps"):
        if getattr(t, key) < 1:
            p.append(f"train.{key} must be >= 1, got {getattr(t, key)}")
    if t.learning_rate <= 0:
        p.append(f"train.learning_rate must be > 0, got {t.learning_rate}")
    if not 0 < t.lr_decay_rate <= 1 or not 0 < t.plateau_factor < 1:
        p.append(f"train.lr_decay_rate must be in (0, 1] and train.plateau_factor in (0, 1), "
                 f"got {t.lr_decay_rate} and {t.plateau_factor}")
    if s.evaluate.n_boot < 0 or (isinstance(s.evaluate.threshold, float)
                                 and not 0 < s.evaluate.threshold < 1):
        p.append(f"evaluate.threshold must be in (0, 1) or 'youden' and evaluate.n_boot >= 0, "
                 f"got {s.evaluate.threshold!r} and {s.evaluate.n_boot}")
    if s.evaluate.threshold == "youden" and sp.val == 0:
        p.append("evaluate.threshold='youden' needs a validation part (split.val > 0)")
    if len(s.data.labels) > 2 and (t.monitor.endswith("auc") or s.evaluate.threshold == "youden"):
        p.append(f"{len(s.data.labels)} classes: train.monitor cannot be 'val_auc' and "
                 f"evaluate.threshold cannot be 'youden' (binary only)")
    if t.patience < 0:
        p.append(f"train.patience must be >= 0, got {t.patience}")
    if not 0 <= t.freeze_epochs <= max(t.epochs, 0) or not 0 < t.finetune_lr_scale <= 1:
        p.append(f"train.freeze_epochs must be in [0, train.epochs] and "
                 f"train.finetune_lr_scale in (0, 1], got {t.freeze_epochs} and "
                 f"{t.finetune_lr_scale}")
    if t.jit_compile and t.deterministic:
        p.append("train.jit_compile=true needs train.deterministic=false (Keras turns XLA "
                 "off under TensorFlow op determinism)")
    fractions = (sp.train, sp.val, sp.test)
    if sp.kind == "holdout":
        if min(fractions) < 0 or sp.train <= 0 or abs(sum(fractions) - 1) > 1e-6:
            p.append(f"split fractions train/val/test must be >= 0 (train > 0) and sum to 1, "
                     f"got {sp.train}/{sp.val}/{sp.test}")
    elif sp.k < 2 or not (sp.fold is None or 0 <= sp.fold < sp.k) or not 0 <= sp.val < 1:
        p.append(f"kfold split needs k >= 2, 0 <= fold < k and 0 <= val < 1, got k={sp.k}, "
                 f"fold={sp.fold}, val={sp.val}")
    if sp.repeats < 1:
        p.append(f"split.repeats must be >= 1, got {sp.repeats}")
    elif sp.repeats > 1 and sp.kind != "kfold":
        p.append(f"split.repeats={sp.repeats} needs split.kind=kfold (repeated k-fold); a "
                 f"{sp.kind} split is made once")
    if t.monitor.startswith("val_") and sp.val == 0:
        p.append(f"train.monitor={t.monitor!r} needs a validation part (split.val > 0)")
    if s.data.workers < 0:
        p.append(f"data.workers must be >= 0 (0 = one per CPU core), got {s.data.workers}")
    if min(s.data.synthetic.normal, s.data.synthetic.abnormal) < 1:
        p.append("data.synthetic.normal/abnormal must be >= 1")
    if s.data.source == "synthetic":
        p += _synthetic_label_problems(s.data.synthetic, s.data.labels)
    p += _label_problems(s.data.labels)
    for kind, steps in (("preprocess", s.preprocess), ("augment", s.augment),
                        ("model", [s.model])):
        for i, step in enumerate(steps):
            where = kind if kind == "model" else f"{kind}.{i}"
            try:
                resolve_step(kind, step)
            except (UnknownPlugin, ParamError) as exc:
                p.append(f"{where}: {exc}")
    if "input_shape" in s.model.params:
        p.append("model.params.input_shape is set from the preprocessed data; remove it")
    return p


def _path_problems(data: DataSpec, model: ResolvedStep) -> list[str]:
    """Files and folders the scenario reads that are not there (the synthetic cohort is
    generated on first use, so its ``data.root`` need not exist, but must not be a folder
    of class folders: that is ``data.source: folder``)."""
    p: list[str] = []
    root = Path(data.root)
    scan_folders = sorted(f for names in data.labels.values() for f in names
                          if (root / f).is_dir())
    if data.source == "synthetic" and scan_folders:
        p.append(f"{root}: holds class folders of scans ({', '.join(scan_folders)}), but "
                 f"data.source=synthetic generates its own cohort under data.root; set "
                 f"data.source=folder to train on these scans (or choose another data.root)")
    if data.source == "folder" and not root.is_dir():
        p.append(f"{root}: data folder not found (data.root, data.source=folder)")
    if data.source == "manifest" and not root.is_file():
        p.append(f"{root}: manifest file not found (data.root, data.source=manifest)")
    weights = model.params.get("weights")
    if weights not in (None, "imagenet") and not Path(weights).expanduser().is_file():
        p.append(f"{weights}: weights file not found (model.params.weights; nothing is "
                 f"downloaded)")
    return p


def _shape_problems(chain: list[ResolvedStep], model: ResolvedStep) -> list[str]:
    """The model's smallest input against the chain's output, when both are declared."""
    shape = output_shape(chain)
    smallest = min_input(model)
    if shape is None or smallest is None or min(shape) >= smallest:
        return []
    return [f"model {model.name!r} needs every side of its input >= {smallest} voxels, but "
            f"the preprocess chain gives {shape}: raise the resize shape (or the chain's last "
            f"fixed-shape step) or choose another model"]


def _synthetic_label_problems(synth: SyntheticSpec, labels: dict[str, list[str]]) -> list[str]:
    """Label folders the synthetic cohort does not write."""
    from ct3d.data.sources import synthetic_classes

    made = synthetic_classes(dataclasses.asdict(synth))
    missing = [f for folders in labels.values() for f in folders if f not in made]
    if not missing:
        return []
    return [f"data.labels name folder(s) {', '.join(missing)} that the synthetic cohort "
            f"(severity {synth.severity}) does not write; it writes {', '.join(made)}"]


def _label_problems(labels: dict[str, list[str]]) -> list[str]:
    if len(labels) < 2:
        return [f"data.labels needs at least 2 classes, got {list(labels)}"]
    seen: dict[str, str] = {}
    problems = []
    for cls, folders in labels.items():
        if not folders:
            problems.append(f"data.labels.{cls} lists no folder")
        for folder in folders:
            if folder in seen:
                problems.append(f"data.labels: {folder!r} is in both {seen[folder]!r} and {cls!r}")
            seen[folder] = cls
    return problems


def _split_key(key: str) -> list[str]:
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise ScenarioError(f"bad override key {key!r}: use dotted names like train.epochs")
    return parts


def _walk(data: Any, parts: list[str], key: str) -> Any:
    for part in parts:
        if isinstance(data, list):
            if not part.isdigit() or int(part) >= len(data):
                raise ScenarioError(f"override {key!r}: no list item {part!r}")
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            known = list(data) if isinstance(data, dict) else []
            raise ScenarioError(f"override {key!r}: unknown key {_unknown_key('', part, known)}")
    return data


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *head, last = _split_key(key)
    parent = _walk(data, head, key)
    if isinstance(parent, list):
        if not last.isdigit() or int(last) >= len(parent):
            raise ScenarioError(f"override {key!r}: no list item {last!r}")
        parent[int(last)] = value
    elif isinstance(parent, dict):
        is_free = head and head[-1] in ("params", "labels")
        if last not in parent and not is_free:
            raise ScenarioError(f"override {key!r}: unknown key "
                                f"{_unknown_key('', last, list(parent))}")
        parent[last] = value
    else:
        raise ScenarioError(f"override {key!r}: {'.'.join(head)} is not a section")


def _hint_for(s: Scenario, parts: list[str]) -> Any:
    """The type hint of the field or plugin parameter at a dotted path (Any if unknown)."""
    obj: Any = s
    for i, part in enumerate(parts):
        if isinstance(obj, StepSpec) and part == "params" and i + 1 < len(parts):
            try:
                info = REGISTRIES[parts[0]].describe(obj.name)
            except UnknownPlugin:
                return Any
            by_name = {p.name: p.annotation for p in info.params}
            return by_name.get(parts[i + 1], Any) if i + 2 == len(parts) else Any
        if isinstance(obj, list):
            obj = obj[int(part)] if part.isdigit() and int(part) < len(obj) else None
            continue
        if not dataclasses.is_dataclass(obj) or part not in typing.get_type_hints(type(obj)):
            return Any
        hint = typing.get_type_hints(type(obj))[part]
        obj = getattr(obj, part)
        if i + 1 == len(parts):
            return hint
    return Any


def _convert_for(s: Scenario, key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    hint = _hint_for(s, _split_key(key))
    if hint is Any:
        return yaml.safe_load(value) if value.strip() else value
    try:
        return plain(coerce(hint, value))
    except ParamError as exc:
        raise ScenarioError(
            f"override {key}={value!r}: expected {describe_type(hint)} ({exc})"
        ) from None


PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "data": {"synthetic": {"normal": 30, "abnormal": 30}},
        "split": {"train": 0.5, "val": 0.2, "test": 0.3},
        "augment": [{"name": "flip", "params": {"axes": [0, 1]}}],
        "model": {"name": "modified_3dcnn", "params": {"bn_momentum": 0.5}},
        "train": {"epochs": 12},
    },
    "thesis": {
        "name": "thesis",
        "out": "runs/thesis",
        "data": {
            "synthetic": {"normal": 100, "abnormal": 100, "preset": "mosmed",
                          "severity": "CT-23", "scanner": "varied"},
        },
        "preprocess": [
            {"name": "hu_window", "params": {"low": -1000.0, "high": 400.0}},
            {"name": "rotate90", "params": {"k": 1}},
            {"name": "resize", "params": {"shape": [128, 128, 64]}},
        ],
        "train": {"epochs": 25, "batch_size": 4, "optimizer": "sgd", "learning_rate": 1e-3,
                  "momentum": 0.9, "schedule": "exponential", "lr_decay_rate": 0.96,
                  "lr_decay_steps": 100_000, "monitor": "val_accuracy", "patience": 15},
    },
    "ct3d": {
        "name": "ct3d",
        "out": "runs/ct3d",
        "data": {
            "synthetic": {"normal": 100, "abnormal": 100, "preset": "mosmed",
                          "severity": "CT-23", "scanner": "varied"},
        },
        "split": {"kind": "kfold", "k": 5, "val": 0.15},
        "preprocess": [
            {"name": "lung_crop", "params": {"margin_mm": 10.0}},
            {"name": "hu_window", "params": {"low": -1000.0, "high": 200.0}},
            {"name": "rotate90", "params": {"k": 1}},
            {"name": "resize", "params": {"shape": [64, 64, 48], "antialias": True}},
        ],
        "augment": [{"name": "flip", "params": {"axes": [0]}},
                    {"name": "rotate", "params": {"degrees": [-10.0, 10.0]}}],
        "model": {"name": "modified_3dcnn", "params": {"bn_momentum": 0.9}},
        "train": {"epochs": 30, "batch_size": 8, "optimizer": "adam", "learning_rate": 1e-3,
                  "schedule": "cosine", "monitor": "val_loss", "patience": 30},
    },
}
"""Named scenarios, as overrides of the :class:`Scenario` defaults.

``quick`` learns an easy synthetic cohort in well under a minute on 2 CPU cores: flips only
(rotation and contrast cut its held-out AUC at this data size) and a faster BatchNorm moving
average (``bn_momentum`` 0.5; with the thesis' Keras default 0.99 the moving statistics lag
far behind the weights over a few hundred steps, so inference-mode predictions are off).
``thesis`` is the thesis' set-up on a MosMed-sized synthetic cohort."""
