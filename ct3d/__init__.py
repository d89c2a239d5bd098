"""ct3d: classify 3D medical volumes (chest CT first) with pluggable deep-learning pipelines.

Plugins (preprocessors, augmenters, model builders) are plain functions registered by name;
:func:`build_preprocess`, :func:`build_augment` and :func:`build_model` build them from the
steps a :class:`Scenario` lists; :func:`run` trains and evaluates a Scenario into a run
folder; :func:`predict` and :func:`explain` apply a finished run to new scans;
:func:`compare_runs` compares two runs on the same scans (paired bootstrap). Every error
meant for users is a :class:`Ct3dError` that names what is wrong.

Example:
    >>> import ct3d
    >>> ct3d.list_plugins("model")
    ['baseline_3dcnn', 'densenet3d', 'inflated3d', 'modified_3dcnn', 'resnet3d', 'slice25d',
     'slice2d']
    >>> s = ct3d.Scenario.preset("quick").with_overrides({"train.epochs": 2})
    >>> s.train.epochs
    2
    >>> ct3d.build_preprocess(s.preprocess)  # doctest: +ELLIPSIS
    Chain(hu_window(low=-1000.0, high=400.0), rotate90(k=1), resize(shape=(64, 64, 48), ...))
"""

from typing import Any

from ct3d.augment import build_augment
from ct3d.errors import Ct3dError
from ct3d.io import ScanError, read_volume, write_volume
from ct3d.models import build_model
from ct3d.preprocess import build_preprocess
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
from ct3d.version import __version__
from ct3d.volume import Step, Volume

__all__ = [
    "AUGMENTERS",
    "MODELS",
    "PREPROCESSORS",
    "Ct3dError",
    "ScanError",
    "Scenario",
    "ScenarioError",
    "Step",
    "Volume",
    "__version__",
    "augmenter",
    "build_augment",
    "build_model",
    "build_preprocess",
    "compare_runs",
    "explain",
    "list_plugins",
    "model_builder",
    "predict",
    "preprocess_cache",
    "preprocessor",
    "read_volume",
    "run",
    "write_volume",
]

_LAZY = {"run": "ct3d.workflow", "preprocess_cache": "ct3d.engine", "predict": "ct3d.inference",
         "explain": "ct3d.inference", "compare_runs": "ct3d.paired"}


def __getattr__(name: str) -> Any:
    """``run``, ``preprocess_cache``, ``predict``, ``explain`` and ``compare_runs`` are
    imported when first used (they bring in the data layer, pandas and scikit-learn;
    ``predict`` and ``explain`` TensorFlow)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ct3d' has no attribute {name!r}")
