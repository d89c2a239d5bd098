"""The training engine: a Scenario in, a run folder and a :class:`Result` out.

Modules, in the order a run uses them:

* :mod:`~ct3d.engine.runner`: :func:`run`, :func:`preprocess_cache` and :func:`find_scans`:
  checks, data, split, cache, folds (importing it does not import TensorFlow);
* :mod:`~ct3d.engine.rundir`: the run folder: its files, refusing to overwrite a run;
* :mod:`~ct3d.engine.devices`: logical CPUs, ``tf.distribute`` strategies, mixed precision;
* :mod:`~ct3d.engine.parts`: the train / val / test parts of one model;
* :mod:`~ct3d.engine.fit`: optimizer, schedule, compile, class weights, the fit loop;
* :mod:`~ct3d.engine.state`: best checkpoint, early stopping and resume state;
* :mod:`~ct3d.engine.pooling`: metrics of each model, k folds pooled, ``metrics.json``.

Example::

    from ct3d.engine import run
    result = run(Scenario.preset("quick"), out="runs/quick", force=True)
"""

from ct3d.engine.runner import Result, find_scans, preprocess_cache, run

__all__ = ["Result", "find_scans", "preprocess_cache", "run"]
