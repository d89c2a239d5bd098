"""The Jupyter toolkit: browse scans, compose pipelines, and watch training.

- :class:`ScanViewer`: a scan (or batch) by plane and slice, with window presets, an
  overlay, raw / preprocessed / augmented panels side by side, and an 8x8 montage;
- :class:`VolumeViewer`: a scan in three linked planes and 3D (NiiVue, the ``viewer``
  extra), with overlays of masks and Grad-CAM maps, CT windows and the HU under the
  crosshair; without the extra, the ScanViewer of the same scan;
- :class:`PipelineBuilder`: every registered plugin (third-party ones included) in
  dropdowns, controls built from their signatures, a preview, and the Scenario as YAML;
- :class:`TrainingMonitor`: a Keras callback with live curves and progress bars, then the
  confusion matrix and metrics table of the result.

Only this package imports ipywidgets. Each object displays as its ``widget``. In a
notebook::

    import ct3d
    from ct3d.widgets import PipelineBuilder, ScanViewer, TrainingMonitor

    builder = PipelineBuilder(ct3d.Scenario.preset("quick")); builder   # edit, preview, save
    ScanViewer("scan.nii.gz", scenario=builder.scenario())             # raw | prep. | aug.
    monitor = TrainingMonitor(); display(monitor)
    result = ct3d.run(builder.scenario(), callbacks=[monitor])
    monitor.show_result(result)
"""

from typing import Any

from ct3d.backend import import_keras
from ct3d.widgets.builder import PipelineBuilder
from ct3d.widgets.viewer import ScanViewer
from ct3d.widgets.volume3d import VolumeViewer

__all__ = ["PipelineBuilder", "ScanViewer", "TrainingMonitor", "VolumeViewer"]


def __getattr__(name: str) -> Any:
    """``TrainingMonitor`` (a Keras callback) imports Keras when first used."""
    if name == "TrainingMonitor":
        import_keras()
        from ct3d.widgets.monitor import TrainingMonitor

        return TrainingMonitor
    raise AttributeError(f"module 'ct3d.widgets' has no attribute {name!r}")
