"""TensorBoard for every run (``train.tensorboard``, on by default): ``tensorboard --logdir
runs/`` shows every run under it, side by side.

What a run writes under ``RUN/tensorboard/`` (k-fold: each fold's curves under
``RUN/foldK/tensorboard/``):

* ``train/`` and ``validation/``: per epoch, every loss and metric of the epoch log (``val_``
  ones under ``validation/``, with the same tag as their training twin, so that TensorBoard
  draws the two in one chart), the learning rate and the epoch's wall time
  (:class:`EpochScalars`);
* ``summary/``, at the end (:func:`write_summary`): the evaluated part's metrics as scalars,
  the scenario as text, and the scenario's settings through the HParams plugin with those
  metrics, so that the HParams dashboard compares runs in one table; :func:`ct3d.run` then
  adds the confusion matrix and a Grad-CAM panel of held-out scans as images
  (:mod:`ct3d.report.tensorboard`, a layer above the engine).

The event files are written with ``tf.summary`` (TensorBoard's writer): on the JAX and
PyTorch backends without TensorFlow installed, nothing is written and the run says so once.

Example::

    callbacks = [EpochScalars(run_dir / "tensorboard")]
    model.fit(..., callbacks=callbacks)
    write_summary(run_dir, scenario, metrics)
"""

from __future__ import annotations

import importlib.util
import io
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from ct3d.scenario import Scenario

__all__ = ["LOG_DIR", "EpochScalars", "available", "hparams", "png_image", "summary_writer",
           "write_summary"]

LOG_DIR = "tensorboard"
"""The folder of a run (or fold) that holds its TensorBoard event files."""

SUMMARY_METRICS = ("auc", "accuracy", "sensitivity", "specificity", "f1", "loss")
"""The evaluated part's metrics written at the end, and shown in the HParams table."""


def available(warn: bool = True) -> bool:
    """Whether event files can be written here (TensorFlow and TensorBoard installed); if
    not and ``warn``, say so."""
    found = all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))
    if not found and warn:
        warnings.warn("train.tensorboard: TensorBoard's event files are written with "
                      "TensorFlow's tf.summary, which is not installed here: no TensorBoard "
                      "logs for this run (set train.tensorboard: false to silence this)",
                      stacklevel=2)
    return found


class EpochScalars(keras.callbacks.Callback):
    """Per epoch: the epoch log's losses and metrics, the learning rate and the wall time,
    into ``folder/train`` and ``folder/validation`` (step: the epoch, counted from 1)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        import tensorflow as tf

        self._train = tf.summary.create_file_writer(str(folder / "train"))
        self._val = tf.summary.create_file_writer(str(folder / "validation"))
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        import tensorflow as tf

        seconds = time.perf_counter() - self._start
        train = {k: float(v) for k, v in (logs or {}).items() if not k.startswith("val_")}
        val = {k[4:]: float(v) for k, v in (logs or {}).items() if k.startswith("val_")}
        train["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        train["time_s"] = seconds
        for writer, values in ((self._train, train), (self._val, val)):
            with writer.as_default(step=epoch + 1):
                for name, value in values.items():
                    tf.summary.scalar(f"epoch_{name}", value)
            writer.flush()


def hparams(scenario: Scenario) -> dict[str, Any]:
    """The scenario's settings as HParams values (numbers, strings, booleans): the data
    source, the preprocessing and augmentation chains by name, the model and its
    parameters, and every ``train`` key with a plain value.

    Example:
        >>> h = hparams(Scenario.preset("quick"))
        >>> h["model"], h["train.batch_size"], h["augment"]
        ('modified_3dcnn', 4, 'flip')
    """
    values: dict[str, Any] = {
        "data.source": scenario.data.source,
        "preprocess": " > ".join(step.name for step in scenario.preprocess),
        "augment": " > ".join(step.name for step in scenario.augment) or "none",
        "model": scenario.model.name,
        "seed": scenario.seed,
    }
    for key, value in scenario.model.params.items():
        values[f"model.{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    for key, value in vars(scenario.train).items():
        if isinstance(value, (bool, int, float, str)):
            values[f"train.{key}"] = value
    return values


def png_image(figure: Any) -> Any:
    """A Matplotlib figure as a ``(1, H, W, 4)`` uint8 image tensor for ``tf.summary.image``."""
    import tensorflow as tf

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return tf.expand_dims(tf.image.decode_png(buffer.getvalue(), channels=4), 0)


def summary_writer(run_dir: Path) -> Any:
    """The ``tf.summary`` writer of a run's end-of-run summary (``tensorboard/summary``)."""
    import tensorflow as tf

    return tf.summary.create_file_writer(str(run_dir / LOG_DIR / "summary"))


def write_summary(run_dir: Path, scenario: Scenario, metrics: Mapping[str, Any]) -> None:
    """Write the end-of-run summary into ``run_dir/tensorboard/summary``: scalars
    ``test/<metric>`` (or the evaluated part's name) of :data:`SUMMARY_METRICS`, the
    scenario's YAML as text, and :func:`hparams` with the run folder's name as trial id.
    (:func:`ct3d.run` adds the confusion matrix and a Grad-CAM panel as images:
    :func:`ct3d.report.tensorboard.write_images`.)"""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    part = metrics["evaluated_on"]
    writer = summary_writer(run_dir)
    with writer.as_default(step=0):
        hp.hparams(hparams(scenario), trial_id=run_dir.name)
        for name in SUMMARY_METRICS:
            value = metrics.get("recall" if name == "sensitivity" else name)
            if value is not None:
                tf.summary.scalar(f"{part}/{name}", float(value))
        tf.summary.text("scenario", "```yaml\n" + scenario.to_yaml() + "\n```")
    writer.flush()
