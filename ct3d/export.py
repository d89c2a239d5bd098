"""Models others can load: a run's model as a Keras file, a TensorFlow SavedModel or ONNX,
with a sidecar JSON that says how to feed it and read it, and the run's model card.

``ct3d export RUN --format keras|savedmodel|onnx --out DIR`` writes into ``DIR``:

* the model: ``model.keras``, ``savedmodel/`` (serving function ``serve``) or
  ``model.onnx`` (input ``scan``). A k-fold run's fold models are exported as one model
  that averages them, as ``ct3d predict`` does;
* ``ct3d-model.json``: the preprocessing chain (ct3d's step names and parameters, in
  order), the input's shape, layout and dtype, the class names, what the output is and the
  decision threshold, and the run's evaluation (AUC with its interval);
* ``MODEL_CARD.md`` (:mod:`ct3d.model_card`).

The exported model takes the *preprocessed* scan (the chain's output with a channel axis)
and gives the probabilities ``ct3d predict`` gives for it. ONNX needs ``tf2onnx``, ``onnx``
(and ``onnxruntime`` to run it): ``pip install "ct3d[export]"``. SavedModel and ONNX are
written through TensorFlow (Keras' ``model.export``).

Example::

    from ct3d.export import export_run
    path = export_run("runs/quick", "onnx", "exported/quick")   # exported/quick/model.onnx
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ct3d.errors import Ct3dError
from ct3d.inference import SavedRun
from ct3d.model_card import CARD, model_card
from ct3d.version import __version__

__all__ = ["FORMATS", "SIDECAR", "ExportError", "export_run", "one_model", "sidecar"]

FORMATS = {"keras": "model.keras", "savedmodel": "savedmodel", "onnx": "model.onnx"}
"""Each export format and the name of what it writes."""

SIDECAR = "ct3d-model.json"

_NEEDS = {"savedmodel": ("tensorflow",), "onnx": ("tensorflow", "tf2onnx", "onnx")}


class ExportError(Ct3dError, ValueError):
    """An export that cannot be made: unknown format, missing package, a full out folder."""


def one_model(models: list[Any]) -> Any:
    """The run's model; several (a k-fold run's) as one model averaging their outputs.

    Example::

        merged = one_model(SavedRun.load("runs/kfold").models)
    """
    import keras

    if len(models) == 1:
        return models[0]
    scan = keras.Input(models[0].input_shape[1:], name="scan")
    mean = keras.layers.Average(name="fold_mean")([m(scan) for m in models])
    return keras.Model(scan, mean, name=f"{models[0].name}_mean_of_{len(models)}_folds")


def sidecar(saved: SavedRun, fmt: str, run_dir: Path) -> dict[str, Any]:
    """What ``ct3d-model.json`` holds for ``saved`` exported as ``fmt``."""
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    model = saved.models[0]
    binary = model.output_shape[-1] == 1
    ci = (metrics.get("ci") or {}).get("auc")
    return {
        "ct3d_version": __version__,
        "scenario": saved.scenario.name,
        "format": fmt,
        "model": FORMATS[fmt],
        "input": {"name": "scan", "shape": [None, *model.input_shape[1:]], "dtype": "float32",
                  "layout": "batch, then the preprocess chain's output axes, then channel"},
        "preprocess": [{"name": s.name, "params": s.params} for s in saved.scenario.preprocess],
        "classes": saved.classes,
        "output": (f"probability of class {saved.classes[1]!r} (sigmoid), shape (batch, 1)"
                   if binary else "probability of each class (softmax), shape (batch, "
                   f"{len(saved.classes)})"),
        "threshold": saved.threshold if binary else None,
        "models_averaged": len(saved.models),
        "evaluation": {"evaluated_on": metrics.get("evaluated_on"), "n": metrics.get("n"),
                       "auc": metrics.get("auc"), "auc_ci95": ci},
        "not_for_clinical_use": True,
    }


def _check(fmt: str, out: Path) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    missing = [m for m in _NEEDS.get(fmt, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"--format {fmt} needs {', '.join(missing)}, not installed here "
                          f"(pip install \"ct3d[export]\")")
    taken = [p.name for p in (out / FORMATS[fmt], out / SIDECAR) if p.exists()]
    if taken:
        raise ExportError(f"{out}: already holds {', '.join(taken)}; choose another --out or "
                          f"remove them")


def export_run(run_dir: str | os.PathLike[str], fmt: str = "keras",
               out: str | os.PathLike[str] = "exported") -> Path:
    """Export the run in ``run_dir`` as ``fmt`` (:data:`FORMATS`) into the folder ``out``,
    with :data:`SIDECAR` and ``MODEL_CARD.md``; return the model's path."""
    folder, out = Path(run_dir), Path(out)
    _check(fmt, out)
    saved = SavedRun.load(folder)
    model = one_model(saved.models)
    out.mkdir(parents=True, exist_ok=True)
    target = out / FORMATS[fmt]
    if fmt == "keras":
        model.save(target)
    else:
        model.predict(np.zeros((1, *model.input_shape[1:]), np.float32), verbose=0)  # built
        model.export(str(target), format="tf_saved_model" if fmt == "savedmodel" else "onnx",
                     verbose=False)
    (out / SIDECAR).write_text(json.dumps(sidecar(saved, fmt, folder), indent=2) + "\n")
    if (folder / "metrics.json").is_file():
        (out / CARD).write_text(model_card(folder))
    return target
