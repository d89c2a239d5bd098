"""ScanViewer: browse a CT scan (or a batch) by plane and slice, with windows and overlays.

Given a Scenario (or chains), the viewer shows the raw scan, the preprocessed scan and an
augmented draw of it side by side, at the same anatomical slice; the montage mode shows 64
slices of one of them in an 8x8 grid (the thesis' figure). Rendering is matplotlib into an
``ipywidgets.Image``; :meth:`ScanViewer.render` returns the Figure, so what is drawn can be
checked in code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ct3d.augment import build_augment
from ct3d.preprocess import build_preprocess
from ct3d.registry import StepLike
from ct3d.scenario import Scenario
from ct3d.volume import Volume
from ct3d.widgets.display import INSTALL_HINT, WidgetView, png, viewer_available
from ct3d.widgets.panels import ScanInput, View, as_volumes, pipeline_views
from ct3d.widgets.slices import (
    PLANES,
    Plane,
    matching_index,
    montage_indices,
    plane_aspect,
    plane_image,
)
from ct3d.widgets.windows import (
    PRESETS,
    Window,
    default_training_window,
    is_hu,
    panel_limits,
    training_window,
)

__all__ = ["MONTAGE_GRID", "ScanViewer"]

MONTAGE_GRID = (8, 8)
"""Rows and columns of the montage (64 slices, as in the thesis)."""

_HIDDEN = "none"
_LEVEL_RANGE = (-2000.0, 2000.0)
_WIDTH_RANGE = (1.0, 5000.0)

Steps = Sequence[StepLike]


def _display(shown: bool) -> widgets.Layout:
    return widgets.Layout(display=None if shown else _HIDDEN)


class ScanViewer(WidgetView):
    """Show a scan (Volume, array or scan path) or a batch, slice by slice.

    Args:
        scan: a scan (a Volume, an array, or the path of a NIfTI, NRRD or MetaImage file or
            a DICOM series folder), or a batch (list, or array ``(B, W, H, D[, C])``).
        scenario: take ``preprocess`` and ``augment`` from it: panels raw / preprocessed /
            augmented side by side, and its ``hu_window`` as the ``training`` window.
        preprocess: a preprocessing chain (steps as a scenario lists them, or dicts),
            instead of the scenario's.
        augment: an augmentation chain, instead of the scenario's.
        overlay: an array of the shape of one panel's volume (lesion or lung mask,
            Grad-CAM map; a Volume such as :func:`ct3d.explain`'s), or of the batch.
        window: initial preset (``lung``, ``mediastinum``, ``training``); by default
            ``lung`` for HU scans, ``training`` for preprocessed ones.
        plane: ``axial``, ``coronal`` or ``sagittal``.
        seed: the augmentation seed (the same seed, the same augmented draw).
        panel_size: inches per panel.

    State is held in the widgets and read or set through attributes: ``plane``, ``index``
    (slice), ``batch_index``, ``preset``, ``window`` (HU ``(low, high)``), ``opacity``,
    ``mode`` (``slices`` or ``montage``), ``montage_of`` (a panel name) and ``seed``.
    ``figure`` is the Figure last drawn into the widget; ``scale_window`` the HU range that
    a preprocessed panel's [0, 1] stands for (the chain's ``hu_window``; None for a chain
    without one).

    Example:
        >>> from ct3d.data.synthetic import generate_scan
        >>> volume, lesions = generate_scan(0, abnormal=True)
        >>> viewer = ScanViewer(volume, overlay=lesions)
        >>> viewer.plane, viewer.index == volume.shape[2] // 2, viewer.window
        ('axial', True, (-1350.0, 150.0))
        >>> viewer.plane = "coronal"
        >>> viewer.index == volume.shape[1] // 2, viewer.slice_slider.max + 1 == volume.shape[1]
        (True, True)
        >>> len(viewer.render().axes[0].images)      # the slice and the lesion overlay
        2
    """

    def __init__(
        self, scan: ScanInput, *, scenario: Scenario | None = None,
        preprocess: Steps | None = None, augment: Steps | None = None,
        overlay: np.ndarray | Volume | None = None, window: str | None = None,
        plane: Plane = "axial", seed: int = 0, panel_size: float = 4.0,
    ) -> None:
        self.volumes = as_volumes(scan)
        if scenario is not None:
            preprocess = scenario.preprocess if preprocess is None else preprocess
            augment = scenario.augment if augment is None else augment
        self.preprocess = build_preprocess(preprocess or [])
        self.augment = build_augment(augment or [])
        self.scale_window = (training_window(self.preprocess) if self.preprocess
                             else default_training_window())
        self.panel_size = panel_size
        self._views: dict[tuple[int, int], list[View]] = {}
        self._overlay: np.ndarray | None = None
        self._busy = 0
        self.figure: Figure | None = None
        self._build_widgets(plane, seed)
        with self._updating():
            self.set_overlay(overlay)
            views = self.views()
            self.montage_dropdown.options = [v.name for v in views]
            self.montage_dropdown.value = views[-1].name
            if len(views) > 1:
                self.montage_dropdown.layout.display = None
            self._reset_slider()
            self.preset = window or ("lung" if is_hu(views[0].volume.array) else "training")

    # -- widgets ----------------------------------------------------------------------
    def _build_widgets(self, plane: str, seed: int) -> None:
        self.plane_buttons = widgets.ToggleButtons(options=list(PLANES), value=plane)
        self.mode_buttons = widgets.ToggleButtons(options=["slices", "montage"])
        self.montage_dropdown = widgets.Dropdown(description="montage of",
                                                 layout=_display(False))
        self.slice_slider = widgets.IntSlider(description="slice", continuous_update=False)
        self.batch_slider = widgets.IntSlider(
            description="scan", max=len(self.volumes) - 1, continuous_update=False,
            layout=_display(len(self.volumes) > 1))
        self.preset_dropdown = widgets.Dropdown(
            description="window", options=[*PRESETS, "training", "custom"], value="custom")
        self.level_slider = widgets.FloatSlider(
            description="level", min=_LEVEL_RANGE[0], max=_LEVEL_RANGE[1], step=1.0,
            continuous_update=False)
        self.width_slider = widgets.FloatSlider(
            description="width", min=_WIDTH_RANGE[0], max=_WIDTH_RANGE[1], step=1.0,
            value=400.0, continuous_update=False)
        self.opacity_slider = widgets.FloatSlider(
            description="overlay", min=0.0, max=1.0, step=0.05, value=0.4,
            continuous_update=False, layout=_display(False))
        self.seed_box = widgets.IntText(description="aug. seed", value=seed,
                                        layout=_display(bool(self.augment)))
        self.image = widgets.Image(format="png")
        self.widget = widgets.VBox([
            widgets.HBox([self.plane_buttons, self.mode_buttons, self.montage_dropdown]),
            widgets.HBox([self.slice_slider, self.batch_slider, self.seed_box]),
            widgets.HBox([self.preset_dropdown, self.level_slider, self.width_slider]),
            self.opacity_slider, self.image,
            *([] if viewer_available() else [widgets.HTML(
                f"<small>Three linked planes and a 3D rendering: {INSTALL_HINT}, then "
                f"<code>ct3d.widgets.VolumeViewer</code>.</small>")]),
        ])
        self.plane_buttons.observe(self._on_plane, names="value")
        self.preset_dropdown.observe(self._on_preset, names="value")
        for w in (self.level_slider, self.width_slider):
            w.observe(self._on_level_width, names="value")
        for w in (self.mode_buttons, self.montage_dropdown, self.slice_slider,
                  self.batch_slider, self.opacity_slider, self.seed_box):
            w.observe(self._changed, names="value")

    @contextmanager
    def _updating(self) -> Iterator[None]:
        """Change several widgets, then render once."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
        if not self._busy:
            self.refresh()

    def _changed(self, _change: Any = None) -> None:
        if not self._busy:
            self.refresh()

    def _reset_slider(self) -> None:
        n = self.views()[0].volume.shape[PLANES[self.plane]]
        self.slice_slider.max = n - 1
        self.slice_slider.value = n // 2

    def _on_plane(self, _change: Any) -> None:
        with self._updating():
            self._reset_slider()

    def _on_preset(self, change: Any) -> None:
        if change.new == "custom":
            return
        low, high = self.presets()[change.new]
        with self._updating():
            self.level_slider.value = (low + high) / 2
            self.width_slider.value = high - low

    def _on_level_width(self, _change: Any) -> None:
        if not self._busy:
            self.preset_dropdown.value = "custom"
        self._changed()

    # -- state ------------------------------------------------------------------------
    @property
    def plane(self) -> str:
        """``axial``, ``coronal`` or ``sagittal``; setting it moves to the middle slice."""
        return self.plane_buttons.value

    @plane.setter
    def plane(self, value: str) -> None:
        self.plane_buttons.value = value

    @property
    def index(self) -> int:
        """The slice shown (of the first panel; the others show the matching slice)."""
        return self.slice_slider.value

    @index.setter
    def index(self, value: int) -> None:
        self.slice_slider.value = value

    @property
    def batch_index(self) -> int:
        """Which scan of the batch is shown."""
        return self.batch_slider.value

    @batch_index.setter
    def batch_index(self, value: int) -> None:
        self.batch_slider.value = value

    @property
    def preset(self) -> str:
        """The window preset, or ``custom`` after the level/width were moved."""
        return self.preset_dropdown.value

    @preset.setter
    def preset(self, value: str) -> None:
        self.preset_dropdown.value = value

    @property
    def window(self) -> Window:
        """The display window ``(low, high)`` in HU."""
        level, width = self.level_slider.value, self.width_slider.value
        return level - width / 2, level + width / 2

    @window.setter
    def window(self, value: Window) -> None:
        with self._updating():
            self.preset_dropdown.value = "custom"
            self.level_slider.value = (value[0] + value[1]) / 2
            self.width_slider.value = value[1] - value[0]

    @property
    def opacity(self) -> float:
        """Opacity of the overlay, 0 to 1."""
        return self.opacity_slider.value

    @opacity.setter
    def opacity(self, value: float) -> None:
        self.opacity_slider.value = value

    @property
    def mode(self) -> str:
        """``slices`` (panels side by side) or ``montage`` (8x8 slices of one panel)."""
        return self.mode_buttons.value

    @mode.setter
    def mode(self, value: str) -> None:
        self.mode_buttons.value = value

    @property
    def montage_of(self) -> str:
        """The panel the montage shows (default: the last, what the model is fed)."""
        return self.montage_dropdown.value

    @montage_of.setter
    def montage_of(self, value: str) -> None:
        self.montage_dropdown.value = value

    @property
    def seed(self) -> int:
        """The augmentation seed."""
        return self.seed_box.value

    @seed.setter
    def seed(self, value: int) -> None:
        self.seed_box.value = value

    def presets(self) -> dict[str, Window]:
        """Every named window in HU, ``training`` included."""
        return {**PRESETS, "training": self.scale_window or default_training_window()}

    # -- data -------------------------------------------------------------------------
    def views(self) -> list[View]:
        """The panels of the current scan: raw, then preprocessed and augmented if chained."""
        key = (self.batch_index, self.seed if self.augment else 0)
        if key not in self._views:
            self._views[key] = pipeline_views(self.volumes[key[0]], self.preprocess,
                                              self.augment, key[1])
        return self._views[key]

    def set_overlay(self, overlay: np.ndarray | Volume | None) -> None:
        """Draw ``overlay`` over the first panel of its shape (None: no overlay)."""
        if overlay is None:
            self._overlay = None
        else:
            array = np.asarray(overlay.array if isinstance(overlay, Volume) else overlay)
            self._overlay = array.astype(np.uint8) if array.dtype == bool else array
            if self._overlay_view() is None:
                shapes = ", ".join(f"{v.name} {v.volume.shape}" for v in self.views())
                self._overlay = None
                raise ValueError(f"overlay of shape {array.shape} fits no panel ({shapes})")
        self.opacity_slider.layout.display = None if self._overlay is not None else "none"
        self._changed()

    def _overlay_view(self) -> tuple[View, np.ndarray] | None:
        """The panel the overlay is drawn on, and the overlay for the current scan."""
        if self._overlay is None:
            return None
        overlay = self._overlay
        if overlay.ndim == 4 and len(overlay) == len(self.volumes):
            overlay = overlay[self.batch_index]
        view = next((v for v in self.views() if v.volume.shape == overlay.shape), None)
        return None if view is None else (view, overlay)

    def limits(self, view: View) -> Window:
        """Grey limits ``(vmin, vmax)`` of a panel for the current window."""
        return panel_limits(self.window, self.scale_window, view.volume.array)

    # -- drawing ----------------------------------------------------------------------
    def render(self) -> Figure:
        """Draw the current state: one axes per panel, or the montage's 64 axes."""
        views = self.views()
        if self.mode == "montage":
            return self._montage(next(v for v in views if v.name == self.montage_of))
        axis = PLANES[self.plane]
        fig = Figure(figsize=(self.panel_size * len(views), self.panel_size))
        for ax, view in zip(fig.subplots(1, len(views), squeeze=False)[0], views, strict=True):
            index = (self.index if view is views[0]
                     else matching_index(views[0].volume, view.volume, axis, self.index))
            self._draw(ax, view, index)
            ax.set_title(f"{view.name} {view.volume.shape}\n{self.plane} {index}", fontsize=9)
        return fig

    def _montage(self, view: View) -> Figure:
        rows, cols = MONTAGE_GRID
        fig = Figure(figsize=(cols * 1.2, rows * 1.2))
        axes = fig.subplots(rows, cols).ravel()
        indices = montage_indices(view.volume.shape[PLANES[self.plane]], rows * cols)
        for ax, index in zip(axes, indices, strict=False):
            self._draw(ax, view, index)
            ax.set_title(str(index), fontsize=6, pad=1)
        for ax in axes[len(indices):]:
            ax.axis("off")
        fig.suptitle(f"{view.name} {view.volume.shape}, {self.plane}")
        fig.subplots_adjust(wspace=0.02, hspace=0.2)
        return fig

    def _draw(self, ax: Axes, view: View, index: int) -> None:
        """One slice of a panel, in grey with its window, and the overlay if it is on it."""
        aspect = plane_aspect(view.volume.spacing, self.plane)
        vmin, vmax = self.limits(view)
        ax.imshow(plane_image(view.volume.array, self.plane, index), cmap="gray", vmin=vmin,
                  vmax=vmax, aspect=aspect, interpolation="nearest")
        ax.set_axis_off()
        found = self._overlay_view()
        if found is None or found[0] is not view:
            return
        layer = plane_image(found[1], self.plane, index)
        if layer.dtype.kind in "biu":
            ax.imshow(np.ma.masked_equal(layer, 0), cmap="autumn", alpha=self.opacity,
                      vmin=0, vmax=max(1, int(found[1].max())), aspect=aspect,
                      interpolation="nearest")
        else:
            ax.imshow(layer, cmap="jet", alpha=self.opacity, vmin=float(np.nanmin(found[1])),
                      vmax=float(np.nanmax(found[1])), aspect=aspect, interpolation="nearest")

    def refresh(self) -> None:
        """Render into the image widget; the Figure drawn is kept as ``figure``."""
        self.figure = self.render()
        self.image.value = png(self.figure)
