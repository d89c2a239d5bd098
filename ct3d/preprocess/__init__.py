"""Preprocessing: registered plugins mapping a :class:`~ct3d.volume.Volume` to a Volume.

A preprocessor plugin is a function of keyword parameters returning a :data:`Step`
(numpy/scipy, run once per scan before training); it may declare its ``output_shape`` rule
when registered, so that a chain's output shape is known before any scan is read.
:func:`build_preprocess` resolves and builds a chain once; the chain is applied per scan.

Modules: :mod:`~ct3d.preprocess.chain` (building and shapes), :mod:`~ct3d.preprocess.intensity`
(``hu_window``, ``standardize``), :mod:`~ct3d.preprocess.geometry` (``rotate90``, ``resize``,
``slice_trim``, ``resample``), :mod:`~ct3d.preprocess.lung` (lung and body masks,
``lung_crop``) and :mod:`~ct3d.preprocess.recipes` (``keras_example``).

Example:
    >>> import numpy as np
    >>> from ct3d.volume import Volume
    >>> chain = build_preprocess([{"name": "hu_window", "params": {"low": -1000, "high": 400}}])
    >>> v = Volume(np.full((2, 2, 2), -300, np.float32), (1.0, 1.0, 1.0), np.eye(4), "demo")
    >>> float(chain(v).array[0, 0, 0])
    0.5
"""

from ct3d.preprocess import geometry, intensity, lung, recipes
from ct3d.preprocess.chain import Chain, build_preprocess, output_shape
from ct3d.volume import Step

__all__ = ["Chain", "Step", "build_preprocess", "geometry", "intensity", "lung",
           "output_shape", "recipes"]
