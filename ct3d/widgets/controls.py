"""One ipywidget per plugin parameter, chosen by its type hint and default.

:func:`param_control` is the only place that maps type hints to widgets, so a new plugin
needs no widget code: its :class:`~ct3d.registry.Param` descriptions are enough.

- ``bool``: Checkbox; ``int`` / ``float``: IntText / FloatText; ``Literal[...]``: Dropdown;
- fixed-length tuples of up to 4 numbers (``tuple[float, float]``, ``tuple[int, int, int]``):
  one IntText / FloatText per item, in a row;
- ``X | None``: a Text, empty meaning None;
- anything else (``str``, ``tuple[int, ...]``, lists, dicts, unions): a Text holding the
  value as YAML/JSON (``[0, 1]``).

Values read back are converted by :func:`ct3d.params.coerce`, so they are exactly what the
registry accepts; a text that does not convert raises :class:`~ct3d.params.ParamError`.

Example:
    >>> from ct3d.registry import PREPROCESSORS
    >>> control = param_control(PREPROCESSORS.describe("resize").params[0])
    >>> control.value
    (128, 128, 64)
    >>> control.value = [64, 64, 48]
    >>> [box.value for box in control.inputs]
    [64, 64, 48]
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

import ipywidgets as widgets
import yaml
from traitlets import TraitError

from ct3d.params import ParamError, coerce
from ct3d.registry import Param

__all__ = ["ParamControl", "param_control", "to_text"]

_MAX_BOXES = 4
"""Fixed-length number tuples up to this length get one box per item; longer ones a Text."""

_LABEL_WIDTH = "11em"


def to_text(value: Any) -> str:
    """A value as the text a Text control shows: ``""`` for None, JSON for the rest."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


class ParamControl:
    """The widget of one plugin parameter and the conversion of its value back.

    Attributes:
        param: the parameter described (name, type hint, default).
        inputs: the value-holding widgets (one, or one per tuple item).
        widget: the parameter's name and its inputs, in a row.

    Example:
        >>> from ct3d.registry import AUGMENTERS
        >>> axes = param_control(AUGMENTERS.describe("flip").params[0])
        >>> axes.inputs[0].value, axes.value
        ('[0, 1]', (0, 1))
        >>> axes.inputs[0].value = "[0, x"
        >>> axes.problem()
        "parameter 'axes': expected tuple[int, ...], got '[0, x' (not valid YAML: expected ...)"
    """

    def __init__(self, param: Param, inputs: list[widgets.ValueWidget],
                 read: Callable[[], Any], write: Callable[[Any], None]) -> None:
        self.param = param
        self.inputs = inputs
        self._read = read
        self._write = write
        tip = f"{param.doc} ({param.type_name} = {param.default!r})".strip()
        label = widgets.Label(param.name, tooltip=tip,
                              layout=widgets.Layout(width=_LABEL_WIDTH))
        self.widget = widgets.HBox([label, *inputs])

    @property
    def value(self) -> Any:
        """The current value, converted by the type hint; raises ParamError if it does not fit."""
        raw = self._read()
        try:
            return coerce(self.param.annotation, raw)
        except yaml.YAMLError as exc:
            detail = getattr(exc, "problem", None) or " ".join(str(exc).split())
            raise ParamError(f"not valid YAML: {detail}") from None

    @value.setter
    def value(self, value: Any) -> None:
        self._write(value)

    @property
    def raw(self) -> Any:
        """What the inputs hold, before conversion (the text of a Text control)."""
        return self._read()

    def problem(self) -> str | None:
        """Why the current value does not fit the type hint (naming the parameter), or None."""
        try:
            self.value  # noqa: B018 - reading the value converts and checks it
        except ParamError as exc:
            return (f"parameter {self.param.name!r}: expected {self.param.type_name}, "
                    f"got {self.raw!r} ({exc})")
        return None

    def observe(self, handler: Callable[[Any], None]) -> None:
        """Call ``handler(change)`` whenever any input's value changes."""
        for box in self.inputs:
            box.observe(handler, names="value")


def param_control(param: Param) -> ParamControl:
    """Build the control of ``param`` from its type hint, set to its default."""
    try:
        control = _typed_control(param)
    except (ParamError, TraitError):
        control = None
    return control or _text_control(param)


def _typed_control(param: Param) -> ParamControl | None:
    """A Checkbox, number box(es) or Dropdown for hints that have one; None for the rest."""
    hint = param.annotation
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_optional(hint):
        return None
    if hint in (bool, int, float):
        return _boxes_control(param, [hint], single=True)
    if origin is Literal:
        box = widgets.Dropdown(options=[(str(a), a) for a in args],
                               value=coerce(hint, param.default))
        return _single(param, box)
    if (origin is tuple and 0 < len(args) <= _MAX_BOXES and Ellipsis not in args
            and all(a in (int, float) for a in args)):
        return _boxes_control(param, list(args), single=False)
    return None


def _single(param: Param, box: widgets.ValueWidget) -> ParamControl:
    def write(value: Any) -> None:
        box.value = coerce(param.annotation, value)

    return ParamControl(param, [box], lambda: box.value, write)


def _number_box(hint: Any) -> widgets.ValueWidget:
    if hint is bool:
        return widgets.Checkbox(indent=False, layout=widgets.Layout(width="auto"))
    box = widgets.IntText if hint is int else widgets.FloatText
    return box(layout=widgets.Layout(width="8em"))


def _boxes_control(param: Param, hints: list[Any], single: bool) -> ParamControl:
    """One Checkbox/IntText/FloatText per item (one for a scalar, one per tuple item)."""
    boxes = [_number_box(h) for h in hints]
    if single:
        control = _single(param, boxes[0])
    else:
        def read() -> tuple[Any, ...]:
            return tuple(b.value for b in boxes)

        def write(value: Any) -> None:
            for b, v in zip(boxes, coerce(param.annotation, value), strict=True):
                b.value = v

        control = ParamControl(param, boxes, read, write)
    control.value = param.default
    return control


def _is_optional(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return origin in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def _text_control(param: Param) -> ParamControl:
    """A Text holding the value as YAML/JSON text (empty means None)."""
    placeholder = "empty = None" if _is_optional(param.annotation) else param.type_name
    box = widgets.Text(value=to_text(param.default), placeholder=placeholder,
                       layout=widgets.Layout(width="16em"))
    optional = _is_optional(param.annotation)

    def read() -> Any:
        return None if optional and not box.value.strip() else box.value

    def write(value: Any) -> None:
        box.value = to_text(value)

    return ParamControl(param, [box], read, write)
