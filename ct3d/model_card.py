"""A run's model card: ``MODEL_CARD.md`` in the run folder (and beside an exported model).

It is written from the run folder alone (``scenario.yaml``, ``metrics.json``): the model
and its input, the data and its split, the preprocessing and augmentation, the metrics of
every part with their 95% intervals, the intended use and the limits. A model trained on
ct3d's synthetic cohort says so at the top: it is not for clinical use, and neither is any
other model ct3d trains (none has been validated for it).

Example::

    from ct3d.model_card import write_model_card
    write_model_card("runs/quick")   # runs/quick/MODEL_CARD.md
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ct3d.report.text import verdict
from ct3d.scenario import Scenario, StepSpec
from ct3d.version import __version__

__all__ = ["CARD", "model_card", "write_model_card"]

CARD = "MODEL_CARD.md"

_INTERVALS = (("auc", "AUC", "auc"), ("accuracy", "accuracy", "accuracy"),
              ("recall", "sensitivity", "sensitivity"),
              ("specificity", "specificity", "specificity"))


def _params(params: Mapping[str, Any]) -> str:
    """``low=-1000.0, high=400.0``."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _chain(steps: Sequence[StepSpec]) -> str:
    """``hu_window(low=-1000.0, high=400.0) > rotate90(k=1)``; ``none`` when empty."""
    return " > ".join(f"{s.name}({_params(s.params)})" for s in steps) or "none"


def _cell(part: Mapping[str, Any], key: str, ci_key: str) -> str:
    """A metric with its 95% interval when it has one: ``0.86 [0.70–0.97]``; ``-`` if None."""
    value = part.get(key)
    if value is None:
        return "-"
    interval = (part.get("ci") or {}).get(ci_key)
    return f"{value:.2f}" + (f" [{interval[0]:.2f}–{interval[1]:.2f}]" if interval else "")


def _parts_table(metrics: Mapping[str, Any], classes: Sequence[str]) -> list[str]:
    """A Markdown table: one row per part, its scans per class and metrics."""
    head = ["part", *(f"{c} scans" for c in classes), *(name for _, name, _ in _INTERVALS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, part in (metrics.get("parts") or {metrics["evaluated_on"]: metrics}).items():
        counts = [str(sum(row)) for row in part["confusion_matrix"]]
        cells = [_cell(part, key, ci) for key, _, ci in _INTERVALS]
        lines.append("| " + " | ".join([name, *counts, *cells]) + " |")
    return lines


def _split(scenario: Scenario) -> str:
    s = scenario.split
    if s.kind == "kfold":
        how = f"{s.k}-fold cross-validation" + (f", repeated {s.repeats} times"
                                                 if s.repeats > 1 else "")
    else:
        how = f"hold-out: train {s.train:.0%}, validation {s.val:.0%}, test {s.test:.0%}"
    return f"{how}, by patient (no patient in two parts), seed {scenario.seed}"


def _data(scenario: Scenario) -> str:
    d = scenario.data
    if d.source == "synthetic":
        g = d.synthetic
        return (f"ct3d's **synthetic** chest-CT cohort ({g.normal} normal, {g.abnormal} "
                f"abnormal scans, preset {g.preset}, difficulty {g.difficulty}, seed {g.seed}): "
                f"simulated volumes, no patient data")
    return f"{d.source} `{Path(d.root).name}`"


def model_card(run_dir: str | os.PathLike[str]) -> str:
    """The model card of a finished run, as Markdown.

    Example::

        print(model_card("runs/quick").splitlines()[0])   # '# Model card: quick'
    """
    folder = Path(run_dir)
    scenario = Scenario.from_file(folder / "scenario.yaml")
    metrics = json.loads((folder / "metrics.json").read_text())
    classes = list(scenario.data.labels)
    synthetic = scenario.data.source == "synthetic"
    cost = metrics.get("cost") or {}
    shape = cost.get("input_shape")
    binary = len(classes) == 2
    models = len(metrics.get("folds", [])) or 1
    warning = ("**Not for clinical use.** This model was trained and evaluated on ct3d's "
               "synthetic cohort, not on patients' scans: its numbers say how it does on "
               "simulated volumes, nothing about real CT."
               if synthetic else
               "**Not for clinical use.** A research model, evaluated on one dataset's "
               "held-out scans and not validated for diagnosis, triage or screening.")
    lines = [
        f"# Model card: {scenario.name}",
        "",
        f"> {warning}",
        "",
        f"*{verdict(metrics, synthetic)}*",
        "",
        "## Model",
        "",
        f"- Architecture: `{scenario.model.name}` ({_params(scenario.model.params) or 'defaults'})"
        + (f", {cost['parameters']:,} parameters" if cost.get("parameters") else ""),
        "- Input: " + (f"{' × '.join(map(str, shape[:-1]))} voxels, one channel, float32, "
                       if shape else "") + "after the preprocessing chain below",
        ("- Output: the probability of "
         f"**{classes[1]}** (sigmoid); decision threshold {metrics.get('threshold', 0.5):.3f} "
         f"(`evaluate.threshold: {scenario.evaluate.threshold}`)") if binary else
        f"- Output: one probability per class ({', '.join(classes)}; softmax)",
        f"- Models: {models}" + (" (one per fold, averaged by `ct3d predict` and in exports)"
                                 if models > 1 else ""),
        f"- Trained: {metrics.get('epochs_run', '?')} epochs, best epoch "
        f"{metrics.get('best_epoch', '?')} by `{scenario.train.monitor}`; "
        f"{metrics.get('trained_on', 'device not recorded')}; ct3d {__version__}",
        "",
        "## Data",
        "",
        f"- Source: {_data(scenario)}",
        "- Classes: " + "; ".join(f"{c} = {', '.join(v)}" for c, v in scenario.data.labels.items()),
        f"- Split: {_split(scenario)}",
        f"- Preprocessing: {_chain(scenario.preprocess)}",
        f"- Augmentation (training only): {_chain(scenario.augment)}",
        "",
        "## Evaluation",
        "",
        f"Evaluated on: {metrics['evaluated_on']} ({metrics['n']} scans). 95% intervals: "
        f"bootstrap over the scans ({scenario.evaluate.n_boot} resamples), for the evaluated "
        f"part only.",
        "",
        *_parts_table(metrics, classes),
        "",
        "## Intended use",
        "",
        "- Research on classifying chest CT volumes: reproducing, comparing and teaching "
        "recipes (preprocessing, augmentation, architectures, evaluation).",
        "- Not for any decision about a patient: not diagnosis, triage, screening or "
        "prioritisation of reading lists.",
        "",
        "## Limits",
        "",
        f"- {metrics['n']} evaluated scans: the intervals above show how little that pins "
        "down; a difference between two models needs a paired test (`ct3d compare`).",
        "- One data source and one split; performance on other scanners, protocols, "
        "populations or diseases is unknown.",
        *(["- Synthetic volumes: lesions and anatomy are simulated; results do not carry "
           "over to MosMedData or any patient data."] if synthetic else []),
        "",
    ]
    return "\n".join(lines)


def write_model_card(run_dir: str | os.PathLike[str],
                     out: str | os.PathLike[str] | None = None) -> Path:
    """Write :func:`model_card` to ``out`` (default: ``run_dir/MODEL_CARD.md``); its path."""
    path = Path(out) if out is not None else Path(run_dir) / CARD
    path.write_text(model_card(run_dir))
    return path
