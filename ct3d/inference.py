"""Apply a saved run to new scans with the run's own preprocessing, model(s) and threshold.

Nothing is re-typed: the run folder's ``scenario.yaml`` gives the preprocess chain and class
names, ``model.keras`` (or ``fold<i>/model.keras`` of a k-fold run, averaged) the model, and
``metrics.json`` the decision threshold chosen at training time. So a scan gets exactly the
preprocessing it would have had in training: no train/serve skew.

Example::

    import ct3d
    for p in ct3d.predict("runs/quick", ["new_scan.nii.gz", "more_scans/"]):
        print(p.scan, p.probability, p.label, p.error)
    ct3d.explain("runs/quick", "new_scan.nii.gz", out="new_scan_gradcam.nii.gz").layer
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ct3d.backend import import_keras
from ct3d.data.dataset import is_scan, scan_stem
from ct3d.errors import Ct3dError
from ct3d.io import is_series_folder, read_volume
from ct3d.models import load_model
from ct3d.preprocess import build_preprocess
from ct3d.scenario import Scenario

_MAP_SUFFIX = "_gradcam.nii.gz"


class RunError(Ct3dError, ValueError):
    """A folder that is not a usable ct3d run (no scenario, no model)."""


@dataclass
class Prediction:
    """One scan's result: class-1 probability (binary) and label, or the error that stopped it.

    With a Grad-CAM map: ``saliency`` is its path, ``saliency_layer`` the layer it was
    computed at (None: every layer's map was empty, the map is all zero) and
    ``saliency_note`` why layers were skipped (see :func:`ct3d.saliency.explain_volume`).
    For a slice model with attention (:mod:`ct3d.models.slices`): ``top_slices``, the
    slices that mattered most, as (slice number in the original scan, attention weight),
    heaviest first (weights of the model's slices sum to 1).
    """

    scan: str
    probability: float | None = None
    label: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    saliency: str | None = None
    saliency_layer: str | None = None
    saliency_note: str | None = None
    top_slices: list[tuple[int, float]] = field(default_factory=list)


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
        import_keras()

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
        return cls(scenario, [load_model(p, compile=False) for p in paths],
                   list(scenario.data.labels), float(metrics.get("threshold", 0.5)))

    def probabilities(self, array: np.ndarray) -> np.ndarray:
        """Class probabilities of one preprocessed array (mean over the run's models)."""
        x = array[None, ..., None]
        prob = np.mean([m.predict(x, verbose=0)[0] for m in self.models], axis=0)
        return np.array([1.0 - prob[0], prob[0]]) if prob.shape == (1,) else prob

    def slice_weights(self, array: np.ndarray) -> np.ndarray | None:
        """Attention weight of each slice of one preprocessed array (mean over the run's
        models; they sum to 1), or None for models without slice attention."""
        from ct3d.models.slices import slice_weights

        found = [slice_weights(m, array[None, ..., None]) for m in self.models]
        return None if found[0] is None else np.mean([w[0] for w in found], axis=0)


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The scans ``paths`` stand for, each path in turn.

    A file, or a folder holding DICOM files (one series), is one scan; any other folder
    stands for every scan file (NIfTI, NRRD, MetaImage; masks skipped) and DICOM series
    folder under it, sorted.

    Example:
        >>> expand_paths(["new_scan.nii.gz", "other.nrrd", "no/such/series"])
        [PosixPath('new_scan.nii.gz'), PosixPath('other.nrrd'), PosixPath('no/such/series')]
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not is_series_folder(p):
            out += sorted(f for f in p.rglob("*") if is_scan(f))
        else:
            out.append(p)
    return out


def _map_names(names: set[str]) -> dict[str, str]:
    """Map file name of each of the distinct scan names of one folder; never two alike.

    A scan's map is named after its stem unless that name is also another scan's stem or
    full name (``s.nii`` and ``s.nrrd``; a series folder ``s`` beside ``s.nii.gz``): then
    after its full name, which no other scan of the folder has.
    """
    stems = {name: scan_stem(name) for name in names}
    counts = Counter(base for name in names for base in {stems[name], name})
    return {name: f"{name if counts[stem] > 1 else stem}{_MAP_SUFFIX}"
            for name, stem in stems.items()}


def saliency_paths(
    scans: Sequence[str | os.PathLike[str]], folder: str | os.PathLike[str]
) -> list[Path]:
    """Where :func:`predict` saves each scan's Grad-CAM map under ``folder``.

    Each scan's path is mirrored below ``folder`` relative to the deepest folder holding all
    the scans (paths made absolute first), ``_gradcam.nii.gz`` replacing the scan's suffix
    (``.nii.gz``, ``.nrrd``, ``.mha``, ...; or appended to a DICOM series folder's name):
    distinct scans get distinct paths, and the same scan (even given once relative, once
    absolute) the same path. Where two scans of one folder share a stem (``s.nii`` and
    ``s.nii.gz`` or ``s.mha``, or a DICOM series folder ``s`` beside ``s.nii.gz``), their maps
    keep the full name instead (``s.nii_gradcam.nii.gz``, ``s.mha_gradcam.nii.gz``). Maps
    are NIfTI whatever the scan's format.

    Example:
        >>> scans = ["x/dicom/P0001/CT_CHEST", "x/dicom/P0002/CT_CHEST", "x/dicom/P0001/CT_CHEST"]
        >>> [p.as_posix() for p in saliency_paths(scans, "maps")]
        ['maps/P0001/CT_CHEST_gradcam.nii.gz', 'maps/P0002/CT_CHEST_gradcam.nii.gz',
         'maps/P0001/CT_CHEST_gradcam.nii.gz']
        >>> [p.name for p in saliency_paths(["s.nii", "s.mha", "t.nrrd", "u.mhd"], "maps")]
        ['s.nii_gradcam.nii.gz', 's.mha_gradcam.nii.gz', 't_gradcam.nii.gz', 'u_gradcam.nii.gz']
    """
    absolute = [Path(os.path.abspath(scan)) for scan in scans]
    if not absolute:
        return []
    common = Path(os.path.commonpath([path.parent for path in absolute]))
    folders: dict[Path, set[str]] = {}
    for path in absolute:
        folders.setdefault(path.parent, set()).add(path.name)
    names = {parent: _map_names(group) for parent, group in folders.items()}
    return [Path(folder) / path.parent.relative_to(common) / names[path.parent][path.name]
            for path in absolute]


def top_slices(weights: np.ndarray, prepared: Any, original: Any, n: int = 3
               ) -> list[tuple[int, float]]:
    """The ``n`` heaviest slices of ``prepared`` as (nearest slice of ``original``, weight).

    A preprocessed slice's centre is carried to the world and back onto the original grid
    through both affines, so the numbers are the slices a viewer shows for the original scan.

    Example:
        >>> from ct3d.volume import Volume
        >>> original = Volume(np.zeros((4, 4, 20)), (1.0, 1.0, 1.0), np.eye(4), "o")
        >>> prepared = Volume(np.zeros((2, 2, 5)), (2.0, 2.0, 4.0), np.diag([2, 2, 4, 1.0]), "p")
        >>> top_slices(np.array([0.1, 0.1, 0.5, 0.2, 0.1]), prepared, original, n=2)
        [(8, 0.5), (12, 0.2)]
    """
    order = np.argsort(-np.asarray(weights), kind="stable")[:n]
    w, h, _ = prepared.shape
    to_original = np.linalg.inv(original.affine) @ prepared.affine
    return [(int(np.rint((to_original @ [(w - 1) / 2, (h - 1) / 2, k, 1.0])[2])),
             round(float(weights[k]), 4)) for k in order]


def _predict_one(run: SavedRun, chain: Any, path: Path, saliency: Path | None,
                 layer: str | None = None) -> Prediction:
    """One scan's prediction, and its Grad-CAM map (at ``layer``, default the last
    convolution) saved at ``saliency`` if not None."""
    try:
        original = read_volume(path)
        prepared = chain(original)
        probs = run.probabilities(prepared.array)
    except (OSError, ValueError) as exc:
        return Prediction(str(path), error=str(exc))
    result = Prediction(str(path), probabilities=dict(zip(run.classes, map(float, probs),
                                                           strict=True)))
    if len(run.classes) == 2:
        result.probability = float(probs[1])
        result.label = run.classes[int(probs[1] >= run.threshold)]
    else:
        result.probability = float(probs.max())
        result.label = run.classes[int(np.argmax(probs))]
    weights = run.slice_weights(prepared.array)
    if weights is not None:
        result.top_slices = top_slices(weights, prepared, original)
    if saliency is not None:
        from ct3d.saliency import explain_volume, save_nifti

        heat = explain_volume(run.models[0], prepared, original, layer=layer)
        result.saliency = str(save_nifti(heat, saliency))
        result.saliency_layer, result.saliency_note = heat.layer, heat.note
    return result


def predict(
    run_dir: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]],
    saliency_dir: str | os.PathLike[str] | None = None, progress: bool = True,
    layer: str | None = None,
) -> list[Prediction]:
    """Predict every scan (folders expanded); a scan that fails carries its ``error``.

    With ``saliency_dir``, a Grad-CAM map of each scan is saved there as NIfTI on the
    scan's own grid and affine, ready to overlay. Its path mirrors the scan's path below
    the deepest folder holding all the scans, ``_gradcam.nii.gz`` replacing the scan's
    suffix: ``dicom/P0001/CT_CHEST`` and ``dicom/P0002/CT_CHEST`` give
    ``<saliency_dir>/P0001/CT_CHEST_gradcam.nii.gz`` and ``.../P0002/...``; distinct scans
    always get distinct paths (see :func:`saliency_paths`). A layer whose map is empty is
    skipped for a shallower one (:func:`ct3d.saliency.explain_volume`); the layer used is
    the prediction's ``saliency_layer``. ``layer``: the convolution to explain (default:
    the model's last; for slice models a 2D convolution of the backbone).

    Example:
        >>> for p in predict("runs/quick", ["dicom/"], saliency_dir="maps"):  # doctest: +SKIP
        ...     print(p.scan, p.label, p.saliency, p.saliency_layer)
        dicom/P0001/CT_CHEST abnormal maps/P0001/CT_CHEST_gradcam.nii.gz block4_conv
    """
    run = SavedRun.load(run_dir)
    chain = build_preprocess(run.scenario.preprocess)
    scans = expand_paths(paths)
    maps = (saliency_paths(scans, saliency_dir) if saliency_dir is not None
            else [None] * len(scans))
    return [_predict_one(run, chain, path, target, layer)
            for path, target in tqdm(list(zip(scans, maps, strict=True)), desc="predict",
                                     unit="scan", disable=not progress)]


def explain(
    run_dir: str | os.PathLike[str], path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None, layer: str | None = None,
) -> Any:
    """Grad-CAM of one scan under a saved run, on the scan's own grid.

    ``path``: a NIfTI, NRRD or MetaImage file or a DICOM series folder (anything
    :func:`ct3d.io.read_volume` reads). ``layer``: the convolution layer to explain
    (default: the model's last one); ``out``: also save the map there as NIfTI. Returns a
    :class:`ct3d.saliency.HeatMap` (a Volume): its ``layer`` is the layer used, shallower
    than asked where that layer's map was empty.
    """
    from ct3d.saliency import explain_scan

    run = SavedRun.load(run_dir)
    return explain_scan(run.models[0], path, run.scenario.preprocess, layer=layer, out=out)
