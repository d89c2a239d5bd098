"""PipelineBuilder: compose a Scenario's chains and model from the registered plugins.

Every registered preprocessor, augmenter and model (third-party plugins included) is
offered; each step's controls are built from the plugin's signature. Invalid values are
listed in an error label (naming the step, plugin and parameter) instead of raising in the
UI; the Scenario's YAML is shown as it is edited and can be saved.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from traitlets import TraitError

from ct3d.params import ParamError
from ct3d.registry import MODELS
from ct3d.scenario import Scenario, ScenarioError
from ct3d.widgets.display import WidgetView
from ct3d.widgets.panels import ScanInput
from ct3d.widgets.steps import StepEditor, StepList
from ct3d.widgets.viewer import ScanViewer

__all__ = ["CHAINS", "PipelineBuilder"]

CHAINS = ("preprocess", "augment")
"""The step lists a builder edits (the model is a single step)."""


class PipelineBuilder(WidgetView):
    """Edit the preprocessing and augmentation chains and the model of a Scenario.

    Args:
        scenario: the starting point (default: the ``quick`` preset); its other sections
            (data, split, training, ...) are kept unchanged.
        scan: the scan previews show (a Volume, array or path); by default the path typed
            in the preview tab, or a synthetic abnormal scan.

    Attributes:
        chains: the :class:`~ct3d.widgets.steps.StepList` of ``preprocess`` and ``augment``.
        model: the :class:`~ct3d.widgets.steps.StepEditor` of the model.
        problems: the current invalid values, as shown in ``error_label``.
        viewer: the last preview's :class:`~ct3d.widgets.viewer.ScanViewer` (or None).

    Example:
        >>> builder = PipelineBuilder()
        >>> builder.add_step("preprocess", "lung_crop")
        3
        >>> builder.set_param("preprocess", 3, "margin_mm", 5)
        >>> builder.move_step("preprocess", 3, -3)
        >>> builder.scenario().preprocess[0]
        StepSpec(name='lung_crop', params={'margin_mm': 5.0, 'threshold_hu': -400.0})
        >>> builder.set_param("preprocess", 1, "high", -2000.0)
        >>> print(*builder.problems)
        preprocess step 2 'hu_window': hu_window needs high > low; received low=-1000.0, ...
    """

    def __init__(self, scenario: Scenario | None = None, scan: ScanInput | None = None) -> None:
        self.base = scenario or Scenario.preset("quick")
        self.scan = scan
        self.viewer: ScanViewer | None = None
        self.problems: list[str] = []
        self._ready = False
        self.chains = {kind: StepList(kind, getattr(self.base, kind), self._update)
                       for kind in CHAINS}
        self.model_dropdown = widgets.Dropdown(options=MODELS.names(), description="model",
                                               value=self.base.model.name)
        self.model = self._model_editor(self.base.model.name, self.base.model.params)
        self.model_box = widgets.VBox([self.model.widget])
        self.model_dropdown.observe(lambda change: self.set_model(change.new), names="value")
        self.error_label = widgets.HTML()
        self.status = widgets.Label()
        self.yaml = widgets.Textarea(disabled=True,
                                     layout=widgets.Layout(width="100%", height="28em"))
        self.filename = widgets.Text(value=f"{self.base.name}.yaml", description="file")
        self.save_button = widgets.Button(description="save", icon="save")
        self.save_button.on_click(lambda _b: self._report(self.save))
        self.scan_path = widgets.Text(description="scan", placeholder="scan path; empty: "
                                      "a synthetic abnormal scan")
        self.preview_button = widgets.Button(description="preview", icon="eye")
        self.preview_button.on_click(lambda _b: self._report(self.preview))
        self.preview_box = widgets.VBox()
        self.tabs = widgets.Tab(children=[
            self.chains["preprocess"].widget, self.chains["augment"].widget,
            widgets.VBox([self.model_dropdown, self.model_box]),
            widgets.VBox([widgets.HBox([self.scan_path, self.preview_button]),
                          self.preview_box]),
            widgets.VBox([self.yaml, widgets.HBox([self.filename, self.save_button])]),
        ], titles=["preprocess", "augment", "model", "preview", "scenario"])
        self.widget = widgets.VBox([self.error_label, self.status, self.tabs])
        self._ready = True
        self._update()

    # -- editing ----------------------------------------------------------------------
    def _chain(self, kind: str) -> StepList:
        if kind not in self.chains:
            raise ValueError(f"kind must be one of {', '.join(CHAINS)}, got {kind!r}")
        return self.chains[kind]

    def _editor(self, kind: str, index: int) -> StepEditor:
        if kind == "model":
            if index != 0:
                raise IndexError(f"the model is step 0, not {index}")
            return self.model
        return self._chain(kind).editor(index)

    def _model_editor(self, name: str, params: dict[str, Any] | None = None) -> StepEditor:
        editor = StepEditor("model", name, params)
        editor.observe(self._update)
        return editor

    def add_step(self, kind: str, name: str) -> int:
        """Append plugin ``name`` (with its defaults) to the ``kind`` chain; return its index."""
        return self._chain(kind).add(name)

    def remove_step(self, kind: str, index: int) -> None:
        """Remove step ``index`` of the ``kind`` chain."""
        self._chain(kind).remove(index)

    def move_step(self, kind: str, index: int, delta: int) -> None:
        """Move step ``index`` of the ``kind`` chain by ``delta`` places (-1: up)."""
        self._chain(kind).move(index, delta)

    def set_model(self, name: str) -> None:
        """Use model plugin ``name``, with its default parameters."""
        if self.model.name != name:
            self.model = self._model_editor(name)
            self.model_box.children = [self.model.widget]
            self.model_dropdown.value = name
            self._update()

    def set_param(self, kind: str, index: int, name: str, value: Any) -> None:
        """Set the control of parameter ``name`` of a step (``kind="model"``: index 0).

        A value that the control cannot hold (e.g. two numbers for three boxes) raises
        :class:`~ct3d.params.ParamError` naming the step, plugin and parameter; a value it
        holds but that is invalid (a text that does not convert, ``high < low``) is listed
        in ``problems`` and the error label.
        """
        editor = self._editor(kind, index)
        where = "model" if kind == "model" else f"{kind} step {index + 1}"
        if name not in editor.controls:
            raise ParamError(f"{where} {editor.name!r} has no parameter {name!r}; "
                             f"parameters: {', '.join(editor.controls) or '(none)'}")
        control = editor.controls[name]
        try:
            control.value = value
        except (ParamError, TraitError) as exc:
            message = (f"{where} {editor.name!r}, parameter {name!r}: expected "
                       f"{control.param.type_name}, got {value!r} ({exc})")
            self._show([message, *self.problems])
            raise ParamError(message) from None

    # -- result -----------------------------------------------------------------------
    def _compose(self) -> Scenario:
        data = self.base.to_dict()
        for kind, chain in self.chains.items():
            data[kind] = [s.to_dict() for s in chain.specs()]
        data["model"] = self.model.spec().to_dict()
        return Scenario.from_dict(data)

    def _problems(self) -> list[str]:
        found = [p for chain in self.chains.values() for p in chain.problems()]
        found += self.model.problems("model")
        if found:
            return found
        try:
            self._compose().validate()
        except ScenarioError as exc:
            return [line.strip().removeprefix("- ") for line in str(exc).splitlines()[1:]]
        return []

    def _show(self, problems: list[str]) -> None:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
        self.error_label.value = (f"<div style='color:#b00020'><ul>{items}</ul></div>"
                                  if problems else "")

    def _update(self) -> None:
        """Check every value; show the problems, or the Scenario's YAML when there are none."""
        if not self._ready:
            return
        self.problems = self._problems()
        self._show(self.problems)
        if not self.problems:
            self.yaml.value = self._compose().to_yaml()

    def scenario(self) -> Scenario:
        """The edited Scenario, validated; ScenarioError lists every problem."""
        self._update()
        if self.problems:
            raise ScenarioError("invalid scenario:\n" + "\n".join(
                f"  - {p}" for p in self.problems))
        return self._compose().validate()

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the Scenario as YAML to ``path`` (default: the file name in the widget)."""
        target = Path(path if path is not None else self.filename.value)
        self.scenario().to_yaml(target)
        self.status.value = f"saved {target}"
        return target

    def preview(self, scan: ScanInput | None = None) -> ScanViewer:
        """Show raw / preprocessed / augmented views of a scan through the current chains."""
        scenario = self.scenario()
        source = next((s for s in (scan, self.scan, self.scan_path.value.strip() or None)
                       if s is not None), None)
        if source is None:
            from ct3d.data.synthetic import generate_scan

            source = generate_scan(0, abnormal=True)[0]
        self.viewer = ScanViewer(source, scenario=scenario)
        self.preview_box.children = [self.viewer.widget]
        self.status.value = ""
        return self.viewer

    def _report(self, action: Any) -> None:
        """Run a button's action; show its failure in the status line instead of raising."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; shown, not raised
            self.status.value = f"{type(exc).__name__}: {exc}"
