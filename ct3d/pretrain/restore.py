"""Self-supervised pretraining on unlabeled scans: restore Models Genesis corruptions.

:func:`pretrain` takes a scenario (its preprocessing, cache, model and training settings)
and a folder or manifest of unlabeled scans, preprocesses them through the scenario's cache,
and trains the scenario's model's feature extractor (every layer before its global pooling,
:func:`ct3d.engine.phases.feature_extractor`) with a small decoder to restore each scan
from its corrupted copy (:func:`ct3d.pretrain.genesis.corrupt`, seeded per scan and
epoch). The output folder holds ``pretrained.keras`` (the restoration model with the lowest
loss; its encoder layers keep the builder's names), ``history.csv``, ``loss.png`` and
``pretrain.json``. Any 3D model of the same builder and input starts from it with
``model.params.weights: <out>/pretrained.keras`` (weights copied by layer name; the decoder
is dropped, the head starts fresh). A killed run resumes where it stopped.

Example::

    scenario = ct3d.Scenario.preset("ct3d")
    pretrain(scenario, "unlabeled/", "pretrained/modified")   # -> pretrained/modified/...
    scenario.with_overrides({"model.params.weights": "pretrained/modified/pretrained.keras"})
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ct3d.backend import import_keras
from ct3d.data.cache import Cache
from ct3d.data.dataset import Scan, scan_stem
from ct3d.errors import Ct3dError
from ct3d.pretrain.genesis import corrupt

keras = import_keras()

__all__ = ["GenesisBatches", "PretrainError", "pretrain", "restoration_model", "unlabeled_scans"]

RESULT = "pretrained.keras"


class PretrainError(Ct3dError, ValueError):
    """Unlabeled data or a model that pretraining cannot use; the message says why."""


def unlabeled_scans(source: str | os.PathLike[str]) -> list[str]:
    """The scans of a folder (searched recursively: NIfTI files and DICOM series folders,
    masks skipped) or of a manifest CSV with a ``path`` column (relative paths are relative
    to the manifest's folder)."""
    from ct3d.inference import expand_paths

    path = Path(source)
    if path.is_file() and path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "path" not in rows[0]:
            raise PretrainError(f"{path}: a manifest needs a 'path' column and one row per scan")
        return [str(p if Path(p).is_absolute() else path.parent / p)
                for p in (row["path"] for row in rows)]
    if not path.is_dir():
        raise PretrainError(f"{path}: no such folder or manifest (.csv) of unlabeled scans")
    scans = [str(p) for p in expand_paths([path])]
    if not scans:
        raise PretrainError(f"{path}: no NIfTI, NRRD or MetaImage scans nor DICOM series found")
    return scans


def restoration_model(model: Any) -> Any:
    """``model``'s feature extractor followed by a decoder back to the input's shape.

    The decoder upsamples the feature map by 2 along each axis still smaller than the
    input (a 3x3x3 convolution with ReLU after each step), crops to the input's shape and
    ends in a linear 1x1x1 convolution ``restored``. Its layers are named ``decoder_*``, so
    loading the result into a classifier by layer name leaves them out.

    Raises:
        PretrainError: the model has no global pooling (a slice model, or another head).
    """
    from keras import layers

    from ct3d.engine.phases import POOLING

    pooling = next((layer for layer in model.layers if isinstance(layer, POOLING)), None)
    if pooling is None:
        raise PretrainError(f"model {model.name!r}: self-supervised pretraining needs a 3D "
                            f"model with a global pooling layer (its encoder ends there)")
    x = pooling.input
    target = tuple(int(n) for n in model.inputs[0].shape[1:4])
    size = np.array(x.shape[1:4], dtype=int)
    filters = int(x.shape[-1])
    step = 0
    while (size < target).any():
        factor = tuple(2 if n < t else 1 for n, t in zip(size, target, strict=True))
        filters = max(8, filters // 2)
        step += 1
        x = layers.UpSampling3D(factor, name=f"decoder_up{step}")(x)
        x = layers.Conv3D(filters, 3, padding="same", activation="relu",
                          name=f"decoder_conv{step}")(x)
        size = size * np.array(factor)
    crop = tuple((0, int(s - t)) for s, t in zip(size, target, strict=True))
    if any(c for _, c in crop):
        x = layers.Cropping3D(crop, name="decoder_crop")(x)
    x = layers.Conv3D(1, 1, name="decoder_restored", dtype="float32")(x)
    return keras.Model(model.inputs, x, name=f"{model.name}_genesis")


class GenesisBatches(keras.utils.PyDataset):
    """(corrupted, original) batches of cached scans, for epochs ``initial_epoch`` on.

    Epoch ``e`` visits the scans in an order drawn with seed ``(seed, e)``; scan ``i`` in
    epoch ``e`` is corrupted with seed ``(seed, e, i)``: a resumed run sees the batches an
    uninterrupted one would.
    """

    def __init__(self, paths: list[Path], batch_size: int, seed: int, initial_epoch: int = 0
                 ) -> None:
        super().__init__()
        self.paths, self.batch_size, self.seed = paths, batch_size, seed
        self.epoch = initial_epoch
        self._order = self._shuffle()

    def _shuffle(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.paths))

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch_size)

    def __getitem__(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self._order[j * self.batch_size:(j + 1) * self.batch_size]
        originals = [np.load(self.paths[i]).astype(np.float32) for i in chosen]
        corrupted = [corrupt(x, np.random.default_rng([self.seed, self.epoch, int(i)]))
                     for x, i in zip(originals, chosen, strict=True)]
        return np.stack(corrupted)[..., None], np.stack(originals)[..., None]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._shuffle()


def _loss_figure(history: dict[str, list[float]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    ax.plot(history["epoch"], history["loss"], marker="o", markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("restoration loss (MSE)")
    ax.set_title("self-supervised pretraining")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def pretrain(scenario: Any, unlabeled: str | os.PathLike[str], out: str | os.PathLike[str],
             verbose: int = 1) -> Path:
    """Pretrain ``scenario``'s model on the unlabeled scans (see the module docstring).

    Uses the scenario's preprocess chain and cache (``data.cache``, ``data.workers``), its
    model, seed and ``train.epochs``, ``train.batch_size``, ``train.learning_rate`` (Adam).
    Returns the path of ``pretrained.keras``.
    """
    from ct3d.data import pipeline
    from ct3d.engine.state import EpochState
    from ct3d.models import build_model

    scenario.validate()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    scans = [Scan(p, 0, "unlabeled", scan_stem(p)) for p in unlabeled_scans(unlabeled)]
    cache = Cache(scenario.data.cache, scenario.resolved("preprocess"))
    report = cache.fill(scans, workers=scenario.data.workers, progress=bool(verbose))
    paths = [p for p in report.paths if p is not None]
    if not paths:
        raise PretrainError(f"no unlabeled scan could be preprocessed:\n{report.summary()}")
    shape = pipeline.input_shape(paths)
    t = scenario.train
    state = EpochState(folder, "loss", patience=t.epochs)
    if not state.finished(t.epochs):
        keras.utils.set_random_seed(scenario.seed)
        model = state.load_last()
        if model is None:
            classifier = build_model(scenario.model, input_shape=(*shape, 1), classes=2)
            model = restoration_model(classifier)
            model.compile(keras.optimizers.Adam(t.learning_rate), "mse")
        batches = GenesisBatches(paths, t.batch_size, scenario.seed, state.epoch)
        model.fit(batches, epochs=t.epochs, initial_epoch=state.epoch, callbacks=[state],
                  verbose=1 if verbose else 0)
    result = folder / RESULT
    state.export_best(result)
    history = state.history()
    _loss_figure(history, folder / "loss.png")
    (folder / "pretrain.json").write_text(json.dumps({
        "model": scenario.resolved("model")[0].to_dict(), "input_shape": list(shape),
        "scans": len(paths), "failed": report.failures, "epochs": len(history["loss"]),
        "best_loss": min(history["loss"]), "result": RESULT,
        "use": f"model.params.weights: {result}"}, indent=2) + "\n")
    return result
