"""The images of a run's TensorBoard summary: its confusion matrix and a Grad-CAM panel of
held-out scans (the engine writes the curves, metrics, scenario and HParams:
:mod:`ct3d.engine.tensorboard`).

Example::

    write_images(result.run_dir, result.scenario, result.model)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ct3d.engine.tensorboard import png_image, summary_writer
from ct3d.io import read_volume
from ct3d.report.figures import confusion_figure
from ct3d.report.images import gradcam_figure
from ct3d.report.runs import Run, held_out_scans, read_run, scan_titles
from ct3d.scenario import Scenario

__all__ = ["write_images"]


def _gradcam_panel(run: Run, scenario: Scenario, model: Any) -> Any:
    """Grad-CAM of ``model`` on the first held-out scan of each class, on each scan's own
    grid, as the report page shows it."""
    from ct3d.preprocess import build_preprocess
    from ct3d.saliency import explain_volume

    rows = held_out_scans(run, 1)
    chain = build_preprocess(scenario.preprocess)
    originals = [read_volume(path) for path in rows["scan"]]
    heats = [explain_volume(model, chain(v), v).array for v in originals]
    return gradcam_figure([v.array for v in originals], heats, scan_titles(rows, run.classes))


def write_images(run_dir: str | Path, scenario: Scenario, model: Any) -> None:
    """Add the confusion matrix of the evaluated part and a Grad-CAM panel (of ``model``,
    the run's last model) to ``run_dir/tensorboard/summary``. A Grad-CAM that fails is left
    out with a warning; the confusion matrix is still written."""
    import tensorflow as tf

    folder = Path(run_dir)
    run = read_run(folder)
    metrics = run.metrics
    part = metrics["evaluated_on"]
    writer = summary_writer(folder)
    with writer.as_default(step=0):
        tf.summary.image("confusion_matrix", png_image(confusion_figure(
            {part: metrics["confusion_matrix"]},
            list(metrics.get("class_names") or scenario.data.labels))))
        try:
            panel = _gradcam_panel(run, scenario, model)
        except Exception as exc:  # noqa: BLE001 - a missing picture must not lose the rest
            warnings.warn(f"TensorBoard: no Grad-CAM panel ({type(exc).__name__}: {exc})",
                          stacklevel=2)
        else:
            tf.summary.image("gradcam_held_out", png_image(panel))
    writer.flush()
