"""Apply a saved run to new scans with the run's own preprocessing, model(s) and threshold.

Nothing is re-typed: the run folder's ``scenario.yaml`` gives the preprocess chain and class
names, ``model.keras`` (or ``fold<i>/model.keras`` of a k-fold run, averaged) the model, and
``metrics.json`` the decision threshold chosen at training time. So a scan gets exactly the
preprocessing it would have had in training: no train/serve skew.

Example::

    import ct3d
    for p in ct3d.predict("runs/quick", ["new_scan.nii.gz", "more_scans/"]):
        print(p.scan, p.probability, p.label, p.error)
    ct3d.explain("runs/quick", "new_scan.nii.gz", out="new_scan_gradcam.nii.gz")
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ct3d.data.dataset import is_scan, scan_stem
from ct3d.errors import Ct3dError
from ct3d.io import is_series_folder, read_volume
from ct3d.preprocess import build_preprocess
from ct3d.scenario import Scenario


class RunError(Ct3dError, ValueError):
    """A folder that is not a usable ct3d run (no scenario, no model)."""


@dataclass
class Prediction:
    """One scan's result: class-1 probability (binary) and label, or the error that stopped it."""

    scan: str
    probability: float | None = None
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    saliency: str | None = None


@dataclass
class SavedRun:
    """What a run folder holds for applying it: scenario, model(s), classes, threshold."""

    scenario: Scenario
    models: list[Any]
    classes: list[str]
    threshold: float

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> SavedRun:
        """Read a run folder written by :func:`ct3d.run`."""
        import keras

        folder = Path(run_dir)
        if not (folder / "scenario.yaml").is_file():
            raise RunError(f"{folder}: not a ct3d run folder (no scenario.yaml)")
        scenario = Scenario.from_file(folder / "scenario.yaml")
        paths = ([folder / "model.keras"] if (folder / "model.keras").is_file()
                 else sorted(folder.glob("fold*/model.keras")))
        if not paths:
            raise RunError(f"{folder}: no model.keras (did the run finish?)")
        metrics_file = folder / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        return cls(scenario, [keras.models.load_model(p) for p in paths],
                   list(scenario.data.labels), float(metrics.get("threshold", 0.5)))

    def probabilities(self, array: np.ndarray) -> np.ndarray:
        """Class probabilities of one preprocessed array (mean over the run's models)."""
        x = array[None, ..., None]
        prob = np.mean([m.predict(x, verbose=0)[0] for m in self.models], axis=0)
        return np.array([1.0 - prob[0], prob[0]]) if prob.shape == (1,) else prob


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The scans ``paths`` stand for, each path in turn.

    A file, or a folder holding DICOM files (one series), is one scan; any other folder
    stands for every NIfTI scan (masks skipped) and DICOM series folder under it, sorted.

    Example:
        >>> expand_paths(["new_scan.nii.gz", "no/such/series"])
        [PosixPath('new_scan.nii.gz'), PosixPath('no/such/series')]
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not is_series_folder(p):
            out += sorted(f for f in p.rglob("*") if is_scan(f))
        else:
            out.append(p)
    return out


def predict(
    run_dir: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]],
    saliency_dir: str | os.PathLike[str] | None = None, progress: bool = True,
) -> list[Prediction]:
    """Predict every scan (folders expanded); a scan that fails carries its ``error``.

    With ``saliency_dir``, a Grad-CAM map of each scan is saved there as NIfTI on the
    scan's own grid and affine (``<scan>_gradcam.nii.gz``), ready to overlay.
    """
    run = SavedRun.load(run_dir)
    chain = build_preprocess(run.scenario.preprocess)
    results = []
    for path in tqdm(expand_paths(paths), desc="predict", unit="scan", disable=not progress):
        try:
            original = read_volume(path)
            prepared = chain(original)
            probs = run.probabilities(prepared.array)
        except (OSError, ValueError) as exc:
            results.append(Prediction(str(path), error=str(exc)))
            continue
        result = Prediction(str(path), probabilities=dict(zip(run.classes, map(float, probs),
                                                               strict=True)))
        if len(run.classes) == 2:
            result.probability = float(probs[1])
            result.label = run.classes[int(probs[1] >= run.threshold)]
        else:
            result.probability = float(probs.max())
            result.label = run.classes[int(np.argmax(probs))]
        if saliency_dir is not None:
            from ct3d.saliency import gradcam, save_nifti, to_original

            heat = gradcam(run.models[0], prepared.array)
            target = Path(saliency_dir) / f"{scan_stem(path)}_gradcam.nii.gz"
            result.saliency = str(save_nifti(to_original(heat, prepared, original), target))
        results.append(result)
    return results


def explain(
    run_dir: str | os.PathLike[str], path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None, layer: str | None = None,
) -> Any:
    """Grad-CAM of one scan under a saved run, on the scan's own grid (a Volume).

    ``layer``: the convolution layer to explain (default: the model's last one); ``out``:
    also save the map there as NIfTI.
    """
    from ct3d.saliency import explain_scan

    run = SavedRun.load(run_dir)
    return explain_scan(run.models[0], path, run.scenario.preprocess, layer=layer, out=out)
