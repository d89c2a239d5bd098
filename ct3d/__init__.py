"""ct3d: classify 3D medical volumes (chest CT first) with pluggable deep-learning pipelines.

Plugins (preprocessors, augmenters, model builders) are plain functions registered by name;
a :class:`Scenario` describes a run; :func:`run` trains and evaluates it.

Example:
    >>> import ct3d
    >>> ct3d.list_plugins("model")
    ['baseline_3dcnn', 'densenet3d', 'modified_3dcnn', 'resnet3d']
    >>> s = ct3d.Scenario.preset("quick").with_overrides({"train.epochs": 2})
    >>> s.train.epochs
    2
"""

from typing import Any

from ct3d import augment, models, preprocess
from ct3d.io import ScanError, read_volume, write_volume
from ct3d.registry import (
    AUGMENTERS,
    MODELS,
    PREPROCESSORS,
    augmenter,
    list_plugins,
    model_builder,
    preprocessor,
)
from ct3d.scenario import Scenario, ScenarioError
from ct3d.volume import Step, Volume

__version__ = "0.1.0"

__all__ = [
    "AUGMENTERS",
    "MODELS",
    "PREPROCESSORS",
    "ScanError",
    "Scenario",
    "ScenarioError",
    "Step",
    "Volume",
    "augment",
    "augmenter",
    "list_plugins",
    "model_builder",
    "models",
    "preprocess",
    "preprocessor",
    "read_volume",
    "run",
    "write_volume",
    "explain",
    "predict",
]


def __getattr__(name: str) -> Any:
    """``ct3d.run``, ``ct3d.predict`` and ``ct3d.explain`` import TensorFlow when first used."""
    if name == "run":
        from ct3d.train import run

        return run
    if name in ("predict", "explain"):
        from ct3d import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'ct3d' has no attribute {name!r}")
