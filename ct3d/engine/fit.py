"""The fit loop of one model: optimizer and schedule, compile, class weights, ``fit`` with
resumable state, fine-tuning phases (:mod:`~ct3d.engine.phases`), and the best checkpoint's
predictions.

The model and its optimizer are built and compiled inside the strategy's scope, in the
precision of ``train.mixed_precision``, with ``train.jit_compile``; Keras splits every global
batch of ``train.batch_size`` scans between the replicas. With more than one replica the
BatchNormalization layers are synchronized (statistics of the global batch, as on one
device).

Example::

    result = train_fold(scenario, parts, fold_dir, classes=2, fold=0, verbose=1,
                        extra_callbacks=[], strategy=devices.make_strategy("default"))
    result.model, result.history["val_loss"], result.probs["test"]
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from ct3d.augment import build_augment
from ct3d.augment.device import AUGMENT_LAYER, with_augment
from ct3d.data import inputs, pipeline
from ct3d.data.order import Share, epoch_batches
from ct3d.engine import devices, phases, tensorboard
from ct3d.engine.parts import FoldResult, Part
from ct3d.engine.state import EpochState
from ct3d.models import build_model, load_model
from ct3d.models.loading import walk_layers
from ct3d.scenario import Scenario, TrainSpec

__all__ = ["PaddedValLoss", "check_batch", "class_weights", "compiled_model", "make_optimizer",
           "predict_part", "share", "train_fold", "unfrozen"]


def make_optimizer(train: TrainSpec, total_steps: int, scale: float = 1.0) -> Any:
    """The optimizer of ``train`` (Adam or SGD with momentum) with its learning-rate
    schedule (``constant``, ``exponential``, ``cosine`` over ``total_steps``; ``plateau`` is
    a callback and keeps the rate constant here), starting at ``scale`` times
    ``train.learning_rate``."""
    lr: Any = train.learning_rate * scale
    if train.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=train.lr_decay_steps, decay_rate=train.lr_decay_rate,
            staircase=True)
    elif train.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps)
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=train.momentum)
    return keras.optimizers.Adam(learning_rate=lr)


def compiled_model(
    scenario: Scenario, shape: tuple[int, ...], classes: int, steps: int, frozen: bool = False,
    augment_seed: int | None = None,
) -> Any:
    """The scenario's model for scans of ``shape``, compiled, in the current strategy's
    scope and the scenario's precision; ``steps``: training steps per epoch; ``frozen``:
    its feature extractor frozen for the first ``train.freeze_epochs`` epochs (the
    schedule then spans those epochs); ``augment_seed``: not None to augment inside the
    train step with that seed (:func:`ct3d.augment.device.with_augment`)."""
    t = scenario.train
    with devices.dtype_policy(devices.resolve_precision(t.mixed_precision)):
        model = build_model(scenario.model, input_shape=(*shape, 1), classes=classes)
        if augment_seed is not None:
            model = with_augment(model, scenario.augment, augment_seed)
        if devices.replicas_now() > 1:
            for layer in walk_layers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        if frozen:
            phases.set_frozen(model, True)
        _compile(model, t, classes, steps * (t.freeze_epochs if frozen else t.epochs))
    return model


def _compile(model: Any, t: TrainSpec, classes: int, total_steps: int, scale: float = 1.0
             ) -> None:
    if classes == 2:
        loss = "binary_crossentropy"
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy"),
                   keras.metrics.AUC(name="auc"), keras.metrics.MeanSquaredError(name="mse")]
    else:
        loss = "sparse_categorical_crossentropy"
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    # Under JAX's data parallelism, evaluation batches are filled up with copies weighed 0
    # (see ct3d.data.batches): the metrics must heed sample weights to leave them out.
    spread = keras.distribution.distribution() is not None
    model.compile(optimizer=make_optimizer(t, total_steps, scale), loss=loss,
                  **{"weighted_metrics" if spread else "metrics": metrics},
                  jit_compile=devices.jit_compile(t.jit_compile))


def unfrozen(model: Any, scenario: Scenario, classes: int, steps: int, epoch: int) -> Any:
    """``model`` with its feature extractor unfrozen and recompiled for the epochs from
    ``epoch`` on, at ``train.finetune_lr_scale`` times the learning rate."""
    t = scenario.train
    with devices.dtype_policy(devices.resolve_precision(t.mixed_precision)):
        phases.set_frozen(model, False)
        _compile(model, t, classes, steps * (t.epochs - epoch), t.finetune_lr_scale)
    return model




def class_weights(rule: str, labels: np.ndarray, classes: int) -> dict[int, float] | None:
    """``train.class_weight``: None for ``none``; for ``balanced`` each class weighed
    inversely to its count in ``labels`` (1.0 for a class absent there).

    Example:
        >>> class_weights("balanced", np.array([0, 0, 0, 1]), 2)
        {0: 0.6666666666666666, 1: 2.0}
    """
    if rule == "none":
        return None
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    by_class = dict(zip(present.tolist(), weights.tolist(), strict=True))
    return {c: by_class.get(c, 1.0) for c in range(classes)}


def share(strategy: Any) -> Share:
    """How each batch is split under ``strategy``: between the devices and processes of
    JAX's :class:`~ct3d.engine.devices.DataParallel`; not at all on one device and under
    ``tf.distribute`` (which splits batches itself)."""
    if isinstance(strategy, devices.DataParallel):
        return Share(strategy.num_replicas_in_sync, strategy.process, strategy.processes)
    return Share()


def check_batch(scans: int, batch_size: int, strategy: Any) -> None:
    """Check how ``scans`` training scans in batches of ``batch_size`` split between the
    replicas of ``strategy``.

    ``tf.distribute``: warn when the replicas get unequal parts of the first batch; on
    several workers, refuse (Keras builds the model from the first batch, which must have
    one shape everywhere). JAX's data parallelism (equal parts only): refuse a
    ``batch_size`` that is not a multiple of the replicas, and warn when each epoch leaves
    scans out to cut its last batch down to one (:func:`~ct3d.data.order.epoch_batches`).
    """
    replicas = strategy.num_replicas_in_sync
    if isinstance(strategy, devices.DataParallel):
        if batch_size % replicas:
            raise devices.DeviceError(
                f"train.batch_size={batch_size} is not a multiple of the {replicas} devices; "
                f"JAX splits every batch evenly between them: use a multiple of {replicas}")
        left = scans - sum(b.stop - b.start for b in epoch_batches(scans, batch_size, replicas))
        if left:
            warnings.warn(f"{scans} training scans in batches of {batch_size} split evenly "
                          f"between {replicas} devices: each epoch leaves {left} scan(s) out "
                          f"(other ones each epoch: the order changes)", stacklevel=3)
        return
    first = min(batch_size, scans)
    if first % replicas == 0:
        return
    problem = (f"the first training batch ({first} scans: train.batch_size, or fewer "
               f"training scans) is not a multiple of the {replicas} replicas")
    if devices.num_workers(strategy) > 1:
        raise devices.DeviceError(f"{problem}; with train.strategy=multi_worker it must be")
    warnings.warn(f"{problem}: the replicas get unequal parts of it", stacklevel=3)


def train_fold(
    scenario: Scenario, data: dict[str, Part], fold_dir: Path, classes: int, fold: int,
    verbose: int, extra_callbacks: list[Any], strategy: Any,
) -> FoldResult:
    """Train one model under ``strategy`` (resuming its saved state in ``fold_dir`` if
    any); the best checkpoint's predictions, made on this process' default device."""
    t = scenario.train
    fold_dir.mkdir(parents=True, exist_ok=True)
    state = EpochState(fold_dir, t.monitor, t.patience,
                       devices.resolve_precision(t.mixed_precision))
    train = data["train"]
    split = share(strategy)
    check_batch(len(train.cached), t.batch_size, strategy)
    steps = len(epoch_batches(len(train.cached), t.batch_size, split.devices))
    if not state.finished(t.epochs):
        keras.utils.set_random_seed(scenario.seed + fold)
        shape = pipeline.input_shape([p for part in data.values() for p in part.cached])
        augment = build_augment(scenario.augment)
        val_ds = (inputs.evaluation_input(data["val"].cached, data["val"].labels, t.batch_size,
                                          split) if "val" in data else None)
        callbacks: list[Any] = [state, *extra_callbacks]
        if t.tensorboard and tensorboard.available(warn=False):
            callbacks.append(tensorboard.EpochScalars(fold_dir / tensorboard.LOG_DIR))
        if t.schedule == "plateau":
            callbacks.insert(0, keras.callbacks.ReduceLROnPlateau(
                monitor=t.monitor, factor=t.plateau_factor, patience=t.plateau_patience,
                mode=state.mode, verbose=0))
        if getattr(val_ds, "padding", 0):  # first: the others see the true val_loss
            callbacks.insert(0, PaddedValLoss(len(data["val"].cached), val_ds.padding))
        seed = scenario.seed + fold
        with strategy.scope():
            model = state.load_last()
            place = devices.augment_place(t.augment_on, strategy, t.jit_compile)
            on_device = bool(augment) and (
                place == "device" if model is None
                else AUGMENT_LAYER in {layer.name for layer in model.layers})
            for end, frozen in phases.phases(t.epochs, t.freeze_epochs):
                if state.epoch >= end:
                    continue
                if model is None:
                    model = compiled_model(scenario, shape, classes, steps, frozen,
                                           seed if on_device else None)
                elif not frozen and phases.is_frozen(model):
                    model = unfrozen(model, scenario, classes, steps, state.epoch)
                    state.new_phase()
                state.can_stop = not frozen
                if on_device:
                    model.get_layer(AUGMENT_LAYER).batches.assign(state.epoch * steps)
                train_ds = inputs.training_input(
                    train.cached, train.labels, t.batch_size, seed,
                    None if on_device else augment or None, end, state.epoch, split)
                _build_compiled(model, train_ds)
                model.fit(train_ds, epochs=end, initial_epoch=state.epoch,
                          steps_per_epoch=steps, validation_data=val_ds, callbacks=callbacks,
                          class_weight=class_weights(t.class_weight, train.labels, classes),
                          shuffle=False, verbose=2 if verbose else 0)
    state.export_best(fold_dir / "model.keras")
    best = load_model(fold_dir / "model.keras")
    probs = {name: predict_part(best, part, t.batch_size) for name, part in data.items()}
    return FoldResult(best, state.history(), data, probs)


def _build_compiled(model: Any, batches: Any) -> None:
    """Build the compiled loss and metrics on one scan before ``fit`` (not on TensorFlow).

    On JAX and PyTorch, Keras builds them in ``fit`` on the first batch it draws from its own
    iterator, which then goes on from the second: the run would start at batch 1, unlike
    ``tf.data`` on TensorFlow, and unlike ``train.augment_on: device``, whose batch count
    starts at 0. Evaluating one scan (one per device) first builds them (no weight
    changes).
    """
    if keras.backend.backend() == "tensorflow" or not isinstance(batches, keras.utils.PyDataset):
        return
    x, y = batches[0]
    scans = batches.share.devices // batches.share.processes  # this process' devices
    model.evaluate(x[:scans], y[:scans], batch_size=scans, verbose=0)


class PaddedValLoss(keras.callbacks.Callback):
    """``val_loss`` over the ``scans`` validation scans alone, where the evaluation batches
    were filled up with ``padding`` copies weighed 0 (metrics are exact; Keras' mean loss
    divides by every scan of a batch, copies included)."""

    def __init__(self, scans: int, padding: int) -> None:
        super().__init__()
        self.factor = (scans + padding) / scans

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs and "val_loss" in logs:
            logs["val_loss"] = float(logs["val_loss"]) * self.factor


def predict_part(model: Any, part: Part, batch_size: int) -> np.ndarray:
    """The model's probabilities for a part's scans, in order: (n,) binary, (n, k) else."""
    prob = model.predict(inputs.evaluation_input(part.cached, part.labels, batch_size),
                         verbose=0)
    return prob.reshape(-1) if prob.shape[-1] == 1 else prob
