"""VolumeViewer: a scan in 3D, the way CT readers look at one, backed by NiiVue.

Axial, coronal and sagittal planes with a linked crosshair and a 3D rendering
(multiplanar layout), or one of them alone; overlays (lesion masks, lung masks, Grad-CAM
maps) each with its colour map and opacity; CT window presets (lung, mediastinum, bone)
and window/level; the position under the crosshair (voxel, mm) with the scan's HU and each
overlay's value there. NiiVue draws in the browser (WebGL) through ``ipyniivue``, which
ships its JavaScript in the wheel: it works offline. It is an extra::

    pip install "ct3d[viewer]"

Without it, :class:`VolumeViewer` shows the 2D :class:`~ct3d.widgets.ScanViewer` of the
same scan (with the first overlay) and says how to get the 3D one.

Scans and overlays are given as ct3d :class:`~ct3d.volume.Volume`\\ s, NIfTI, NRRD or
MetaImage files or DICOM series folders (read by :func:`ct3d.io.read_volume`, which puts
NRRD's and MetaImage's LPS geometry into RAS), or, for overlays, arrays on the
scan's grid. Each is sent to NiiVue as NIfTI with its own affine, so the real geometry
(spacing, orientation, a map on another grid) is kept: NiiVue places every volume in world
coordinates. The maps ``ct3d predict --saliency`` writes are on the original scan's grid
and open as they are.

Example::

    from ct3d.widgets import VolumeViewer
    VolumeViewer("scan.nii.gz", overlays={"lesions": "scan_lesion_mask.nii.gz",
                                          "Grad-CAM": "maps/scan_gradcam.nii.gz"})
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np

from ct3d.volume import Volume
from ct3d.widgets.display import INSTALL_HINT, WidgetView, viewer_available
from ct3d.widgets.viewer import ScanViewer
from ct3d.widgets.windows import PRESETS, Window

__all__ = ["COLORMAPS", "LAYOUTS", "Overlay", "VolumeViewer", "nifti_bytes"]

OverlaySource = Volume | np.ndarray | str | os.PathLike

COLORMAPS = ("red", "green", "warm", "blue", "hot", "viridis", "winter", "cool", "gray")
"""NiiVue colour maps offered for overlays; each new overlay takes the next one."""

LAYOUTS = {"planes + 3D": "MULTIPLANAR", "axial": "AXIAL", "coronal": "CORONAL",
           "sagittal": "SAGITTAL", "3D": "RENDER"}
"""The layout buttons and NiiVue's slice type for each."""

def _volume(source: OverlaySource, like: Volume | None = None) -> Volume:
    """``source`` as a Volume: read from a path (any format :func:`ct3d.io.read_volume` reads);
    an array takes the grid of ``like``."""
    from ct3d.io import read_volume

    if isinstance(source, Volume):
        return source
    if isinstance(source, np.ndarray):
        if like is None or source.shape != like.shape:
            raise ValueError(f"an overlay array must have the scan's shape "
                             f"{None if like is None else like.shape}; got {source.shape} "
                             f"(give a scan file or a Volume for another grid)")
        return like.replace(array=source, source="array")
    return read_volume(source, hu=False) if like is not None else read_volume(source)


def nifti_bytes(volume: Volume) -> bytes:
    """``volume`` as gzipped NIfTI-1 bytes with its affine: int16 for whole-number HU,
    uint8 for masks, float32 otherwise.

    Example:
        >>> v = Volume(np.zeros((4, 4, 2), np.float32), (1.0, 1.0, 2.0), np.eye(4), "x")
        >>> nifti_bytes(v)[:2] == b"\\x1f\\x8b"  # gzip
        True
    """
    import nibabel as nib

    array = np.asarray(volume.array)
    whole = bool(array.size) and np.array_equal(array, np.round(array))
    if whole and array.min() >= 0 and array.max() <= 255:
        array = array.astype(np.uint8)
    elif whole and array.min() >= -32768 and array.max() <= 32767:
        array = array.astype(np.int16)
    else:
        array = array.astype(np.float32)
    image = nib.Nifti1Image(array, np.asarray(volume.affine, np.float64))
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes(), compresslevel=1)


@dataclass
class Overlay:
    """One overlay: its name, volume, colour map, opacity and displayed value range."""

    name: str
    volume: Volume
    colormap: str
    opacity: float = 0.4

    @property
    def limits(self) -> tuple[float, float]:
        """Values below the first are transparent: masks show their 1s, maps their upper
        half (a Grad-CAM map is scaled to [0, 1]: what explains the score most)."""
        high = float(np.nanmax(self.volume.array)) if self.volume.array.size else 1.0
        values = np.unique(self.volume.array[::4, ::4, ::4])
        is_mask = values.size <= 2 and set(values.tolist()) <= {0.0, 1.0}
        return (0.5, 1.0) if is_mask else (0.5 * high, high)


class VolumeViewer(WidgetView):
    """A scan in three linked planes and 3D, with overlays and CT windows (NiiVue).

    Args:
        scan: a :class:`~ct3d.volume.Volume`, a NIfTI, NRRD or MetaImage file or a DICOM
            series folder.
        overlays: name -> mask or map (Volume, path, or array on the scan's grid).
        window: the first CT preset (``lung``, ``mediastinum``, ``bone``) or ``(low, high)``
            in HU.
        layout: one of :data:`LAYOUTS`.
        height: of the drawing, in pixels.

    Without ``ipyniivue`` it shows :class:`~ct3d.widgets.ScanViewer` instead (``fallback``
    is then True) with a line saying how to get the 3D viewer.
    """

    def __init__(
        self, scan: Volume | str | os.PathLike,
        overlays: Mapping[str, OverlaySource] | None = None, *,
        window: str | Window = "lung", layout: str = "planes + 3D", height: int = 520,
    ) -> None:
        self.scan = _volume(scan)
        self.overlays = [
            Overlay(name, _volume(source, self.scan), COLORMAPS[i % len(COLORMAPS)])
            for i, (name, source) in enumerate((overlays or {}).items())]
        self.fallback = not viewer_available()
        self.status = widgets.HTML()
        if self.fallback:
            first = self.overlays[0].volume.array if self.overlays else None
            self.status.value = f"<i>{INSTALL_HINT}; showing the 2D viewer</i>"
            self.widget = widgets.VBox([self.status, ScanViewer(self.scan, overlay=first).widget])
            return
        self._build(height, layout)
        self.set_window(window)

    def _build(self, height: int, layout: str) -> None:
        from ipyniivue import MultiplanarType, NiiVue, ShowRender, SliceType
        from ipyniivue import Volume as NiiVolume

        self.nv = NiiVue(height=height, multiplanar_show_render=ShowRender.ALWAYS,
                         multiplanar_layout=MultiplanarType.GRID,
                         slice_type=getattr(SliceType, LAYOUTS[layout]), is_colorbar=True,
                         show_3d_crosshair=True, back_color=(0.05, 0.05, 0.05, 1.0))
        volumes = [NiiVolume(data=nifti_bytes(self.scan), name="scan.nii.gz", colormap="gray")]
        for overlay in self.overlays:
            low, high = overlay.limits
            volumes.append(NiiVolume(data=nifti_bytes(overlay.volume),
                                     name=f"{overlay.name}.nii.gz", colormap=overlay.colormap,
                                     opacity=overlay.opacity, cal_min=low, cal_max=high))
        self.nv.load_volumes(volumes)
        self.nv.on_location_change(self.show_location)
        self.nv.on_image_loaded(self._loaded)
        self.presets = widgets.ToggleButtons(options=[*PRESETS, "custom"], description="window")
        self.level = widgets.FloatSlider(min=-1500, max=1500, step=10, description="level")
        self.width = widgets.FloatSlider(min=10, max=4000, step=10, description="width")
        self.layout_buttons = widgets.ToggleButtons(options=list(LAYOUTS), value=layout,
                                                    description="layout")
        self._sync = False
        self.presets.observe(self._preset_chosen, "value")
        for slider in (self.level, self.width):
            slider.observe(self._window_from_sliders, "value")
        self.layout_buttons.observe(
            lambda c: self.nv.set_slice_type(getattr(SliceType, LAYOUTS[c["new"]])), "value")
        rows = [self._overlay_row(v, o) for v, o in zip(volumes[1:], self.overlays, strict=True)]
        self.widget = widgets.VBox([
            widgets.HBox([self.layout_buttons]), widgets.HBox([self.presets]),
            widgets.HBox([self.level, self.width]), *rows, self.nv, self.status])

    def _overlay_row(self, volume: Any, overlay: Overlay) -> widgets.HBox:
        """Colour map and opacity controls of one overlay, linked to its NiiVue volume."""
        colormap = widgets.Dropdown(options=COLORMAPS, value=overlay.colormap,
                                    description=overlay.name,
                                    style={"description_width": "initial"})
        opacity = widgets.FloatSlider(value=overlay.opacity, min=0, max=1, step=0.05,
                                      description="opacity")
        widgets.dlink((colormap, "value"), (volume, "colormap"))
        widgets.dlink((opacity, "value"), (volume, "opacity"))
        return widgets.HBox([colormap, opacity])

    def set_window(self, window: str | Window) -> None:
        """Show the scan through a CT preset (:data:`~ct3d.widgets.windows.PRESETS`) or an
        HU ``(low, high)``."""
        low, high = PRESETS[window] if isinstance(window, str) else window
        with self._syncing():
            self.presets.value = window if isinstance(window, str) else "custom"
            self.level.value, self.width.value = (low + high) / 2, high - low
        self._set_limits(low, high)

    def _window_from_sliders(self, change: dict[str, Any]) -> None:
        if self._sync:
            return
        low = round(self.level.value - self.width.value / 2, 6)
        high = round(self.level.value + self.width.value / 2, 6)
        self._set_limits(low, high)
        with self._syncing():
            self.presets.value = next((k for k, v in PRESETS.items() if v == (low, high)),
                                      "custom")

    def _preset_chosen(self, change: dict[str, Any]) -> None:
        if not self._sync and change["new"] in PRESETS:
            self.set_window(change["new"])

    @contextmanager
    def _syncing(self) -> Iterator[None]:
        """A block whose control changes do not call back into the window."""
        self._sync = True
        try:
            yield
        finally:
            self._sync = False

    def _loaded(self, volume: Any) -> None:
        """Once the browser has loaded the scan, send it the window again: NiiVue listens
        for changes only from then on, and on loading sends back the window it started
        with, so a window set while it loaded (``set_window`` in the next cell) would be
        lost. A change it hears needs other values first."""
        if volume is self.nv.volumes[0]:
            low, high = self.window
            self._set_limits(low - 1.0, high + 1.0)
            self._set_limits(low, high)

    def _set_limits(self, low: float, high: float) -> None:
        scan = self.nv.volumes[0]
        scan.cal_min, scan.cal_max = float(low), float(high)
        self._window = float(low), float(high)

    @property
    def window(self) -> Window:
        """The scan's displayed HU range."""
        return self._window

    def show_location(self, location: Mapping[str, Any]) -> None:
        """Write what is under the crosshair into the status line (NiiVue calls this)."""
        values = list(location.get("values") or [])
        parts = [f"voxel {tuple(int(v) for v in location.get('vox', ()))}",
                 "(" + ", ".join(f"{v:.1f}" for v in location.get("mm", ())[:3]) + ") mm"]
        if values:
            parts.append(f"{_value(values[0]):.0f} HU")
        parts += [f"{o.name} {_value(v):.2f}" for o, v in zip(self.overlays, values[1:],
                                                              strict=False)]
        self.status.value = " · ".join(parts)


def _value(value: Any) -> float:
    """A crosshair value from NiiVue: a number, or a dict holding one under ``value``."""
    return float(value["value"] if isinstance(value, Mapping) else value)
