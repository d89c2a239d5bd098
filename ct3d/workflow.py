"""``ct3d.run``: train and evaluate a scenario into a run folder (:func:`ct3d.engine.run`),
then finish the folder with what needs the layers above the engine: its model card
(:mod:`ct3d.model_card`) and the images of its TensorBoard summary
(:mod:`ct3d.report.tensorboard`).

Example::

    result = ct3d.run(ct3d.Scenario.preset("quick"))
    print(result.run_dir / "MODEL_CARD.md")
"""

from __future__ import annotations

import os
from typing import Any

from ct3d.engine import Result
from ct3d.engine import run as train_and_evaluate
from ct3d.scenario import Scenario

__all__ = ["run"]


def run(
    scenario: Scenario | None = None, out: str | os.PathLike[str] | None = None,
    verbose: int = 1, resume: str | os.PathLike[str] | None = None,
    callbacks: list[Any] | None = None, force: bool = False,
) -> Result:
    """Train and evaluate ``scenario`` as :func:`ct3d.engine.run` does (same arguments),
    then write the run folder's ``MODEL_CARD.md`` and, with ``train.tensorboard``, add the
    confusion matrix and a Grad-CAM panel to its TensorBoard summary."""
    result = train_and_evaluate(scenario, out, verbose, resume, callbacks, force)
    if result.chief:  # imported only now: the checks before training start no TensorFlow
        from ct3d.engine.tensorboard import available
        from ct3d.model_card import write_model_card

        write_model_card(result.run_dir)
        if result.scenario.train.tensorboard and available(warn=False):
            from ct3d.report.tensorboard import write_images

            write_images(result.run_dir, result.scenario, result.model)
    return result
