"""Editors of plugin steps: one step's controls, and an ordered list of steps of one kind.

Everything comes from the registries (:meth:`~ct3d.registry.Registry.describe`), so
third-party plugins get editors like the built-in ones; what an editor gives is the step's
resolved form (:class:`~ct3d.registry.ResolvedStep`), as the cache and run folders use it.

Example:
    >>> steps = StepList("preprocess")
    >>> steps.add("hu_window"), steps.add("resize")
    (0, 1)
    >>> steps.editors[0].controls["high"].value = 300
    >>> steps.move(1, -1)
    >>> steps.specs()
    [resize(shape=(128, 128, 64), order=1, antialias=False), hu_window(low=-1000.0, high=300.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from ct3d.params import ParamError
from ct3d.registry import REGISTRIES, NamedStep, ResolvedStep
from ct3d.widgets.controls import ParamControl, param_control

__all__ = ["StepEditor", "StepList"]

Listener = Callable[[], None]


class StepEditor:
    """The controls of one plugin step (or of the model), built from the plugin's signature.

    Example:
        >>> editor = StepEditor("augment", "flip", {"prob": 1.0})
        >>> editor.spec()
        flip(axes=(0, 1), prob=1.0)
    """

    def __init__(self, kind: str, name: str, params: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.name = name
        self.info = REGISTRIES[kind].describe(name)
        self.controls: dict[str, ParamControl] = {
            p.name: param_control(p) for p in self.info.params}
        for key, value in (params or {}).items():
            if key not in self.controls:
                raise ParamError(f"{kind} plugin {name!r} has no parameter {key!r}; "
                                 f"parameters: {', '.join(self.controls) or '(none)'}")
            self.controls[key].value = value
        self.header = widgets.HTML()
        self.buttons = widgets.HBox()
        body = [c.widget for c in self.controls.values()]
        self.widget = widgets.VBox([widgets.HBox([self.header, self.buttons]), *body],
                                   layout=widgets.Layout(border="1px solid #ccc",
                                                         padding="2px 6px", margin="2px 0"))
        self.set_title(name)

    def set_title(self, title: str) -> None:
        """Show ``title`` and the plugin's summary above the controls."""
        self.header.value = f"<b>{title}</b> <i>{self.info.summary}</i>"

    def observe(self, listener: Listener) -> None:
        """Call ``listener()`` whenever a parameter changes."""
        for control in self.controls.values():
            control.observe(lambda _change: listener())

    def spec(self) -> ResolvedStep:
        """The step with every parameter's value, resolved; raises ParamError for a value
        that does not fit."""
        return REGISTRIES[self.kind].resolve(self.name, {n: c.value
                                                         for n, c in self.controls.items()})

    def problems(self, where: str) -> list[str]:
        """Every parameter that does not fit its type hint, named with ``where`` and the plugin.

        When all fit, the plugin is also built (preprocessors and augmenters), so that its own
        checks (e.g. ``hu_window`` needs high > low) are reported too.
        """
        found = [f"{where} {self.name!r}, {problem}" for c in self.controls.values()
                 if (problem := c.problem())]
        if found or self.kind == "model":
            return found
        try:
            self.spec().build()
        except Exception as exc:  # noqa: BLE001 - any plugin's refusal is shown, not raised
            found.append(f"{where} {self.name!r}: {exc}")
        return found


class StepList:
    """An ordered chain of steps of one kind (``preprocess`` or ``augment``), with its widget.

    Each step shows its controls and buttons to move it up or down and to remove it; a
    dropdown of every registered plugin of the kind and an "add" button append steps.
    ``listener()`` is called after every change (steps or parameters).

    Example:
        >>> from ct3d.registry import resolve_step
        >>> flip = resolve_step("augment", {"name": "flip", "params": {"axes": [0]}})
        >>> chain = StepList("augment", [flip])
        >>> chain.add("gamma")
        1
        >>> chain.remove(0)
        >>> [s.name for s in chain.specs()]
        ['gamma']
    """

    def __init__(self, kind: str, steps: Sequence[NamedStep] | None = None,
                 listener: Listener | None = None) -> None:
        self.kind = kind
        self.listener = listener or (lambda: None)
        self.editors: list[StepEditor] = []
        self.dropdown = widgets.Dropdown(options=REGISTRIES[kind].names(),
                                         description=f"{kind} step")
        self.add_button = widgets.Button(description="add step", icon="plus")
        self.add_button.on_click(lambda _b: self.add(self.dropdown.value))
        self.box = widgets.VBox()
        self.widget = widgets.VBox([self.box, widgets.HBox([self.dropdown, self.add_button])])
        for step in steps or []:
            self._append(StepEditor(kind, step.name, step.params))
        self._layout()

    def _append(self, editor: StepEditor) -> None:
        editor.observe(self.listener)
        self.editors.append(editor)

    def _buttons(self, editor: StepEditor) -> list[widgets.Button]:
        def button(icon: str, tip: str, action: Callable[[int], None]) -> widgets.Button:
            b = widgets.Button(icon=icon, tooltip=tip, layout=widgets.Layout(width="2.5em"))
            b.on_click(lambda _b: action(self.editors.index(editor)))
            return b

        return [button("arrow-up", "move up", lambda i: self.move(i, -1)),
                button("arrow-down", "move down", lambda i: self.move(i, 1)),
                button("trash", "remove", self.remove)]

    def _layout(self) -> None:
        for i, editor in enumerate(self.editors):
            editor.set_title(f"{i + 1}. {editor.name}")
            editor.buttons.children = self._buttons(editor)
        self.box.children = [e.widget for e in self.editors]
        self.listener()

    def add(self, name: str, params: dict[str, Any] | None = None) -> int:
        """Append the plugin ``name`` with its defaults (or ``params``); return its index."""
        self._append(StepEditor(self.kind, name, params))
        self._layout()
        return len(self.editors) - 1

    def editor(self, index: int) -> StepEditor:
        """The editor of the step at ``index`` (IndexError naming the chain if none)."""
        if not 0 <= index < len(self.editors):
            raise IndexError(f"{self.kind} has {len(self.editors)} step(s); no step {index}")
        return self.editors[index]

    def remove(self, index: int) -> None:
        """Remove the step at ``index``."""
        self.editors.remove(self.editor(index))
        self._layout()

    def move(self, index: int, delta: int) -> None:
        """Move the step at ``index`` by ``delta`` places (clamped to the chain's ends)."""
        editor = self.editor(index)
        target = min(max(index + delta, 0), len(self.editors) - 1)
        self.editors.remove(editor)
        self.editors.insert(target, editor)
        self._layout()

    def specs(self) -> list[ResolvedStep]:
        """The chain's steps; raises ParamError for a parameter that does not fit."""
        return [e.spec() for e in self.editors]

    def problems(self) -> list[str]:
        """Every invalid parameter of the chain, each naming its step, plugin and parameter."""
        return [p for i, e in enumerate(self.editors)
                for p in e.problems(f"{self.kind} step {i + 1}")]
