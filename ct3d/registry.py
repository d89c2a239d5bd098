"""Registries of plugins: preprocessors, augmenters and model builders.

A plugin is a plain function registered under a name. Its keyword parameters (names, type
hints, defaults) and the first line of its docstring are its whole description: scenario
validation, CLI flags and widgets are derived from them.

Example:
    >>> from ct3d.registry import PREPROCESSORS
    >>> "hu_window" in PREPROCESSORS.names()
    True
    >>> PREPROCESSORS.describe("hu_window").params[0].name
    'low'
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from ct3d.params import ParamError, coerce, describe_type


class UnknownPlugin(KeyError):
    """A plugin name that no registry entry has; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


class PluginError(TypeError):
    """A plugin whose definition breaks the plugin contract (e.g. ``*args``, no default)."""


@dataclass(frozen=True)
class Param:
    """One keyword parameter of a plugin: name, type hint and default."""

    name: str
    annotation: Any
    default: Any

    @property
    def type_name(self) -> str:
        """The type hint written as in Python source, e.g. ``tuple[int, int, int]``."""
        return describe_type(self.annotation)


@dataclass(frozen=True)
class PluginInfo:
    """What a registry knows about one plugin."""

    name: str
    kind: str
    summary: str
    params: tuple[Param, ...]
    origin: str

    def defaults(self) -> dict[str, Any]:
        """Every parameter with its default value."""
        return {p.name: p.default for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (``ct3d plugins --json``)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "origin": self.origin,
            "params": [
                {"name": p.name, "type": p.type_name, "default": _jsonable(p.default)}
                for p in self.params
            ],
        }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _signature_params(
    func: Callable[..., Any], name: str, reserved: frozenset[str]
) -> tuple[Param, ...]:
    hints = typing.get_type_hints(func)
    params = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise PluginError(f"plugin {name!r}: *args/**kwargs are not allowed ({p})")
        if p.name in reserved:
            continue
        if p.default is p.empty:
            raise PluginError(f"plugin {name!r}: parameter {p.name!r} needs a default")
        if p.name not in hints:
            raise PluginError(f"plugin {name!r}: parameter {p.name!r} needs a type hint")
        params.append(Param(p.name, hints[p.name], p.default))
    return tuple(params)


class Registry:
    """Named plugins of one kind, with lazy discovery of third-party entry points.

    Args:
        kind: short name used in messages and listings (``"preprocess"``).
        group: the entry-point group third-party packages register under.
        reserved: parameter names the pipeline supplies itself (not user parameters).
    """

    def __init__(self, kind: str, group: str, reserved: frozenset[str] = frozenset()) -> None:
        self.kind = kind
        self.group = group
        self.reserved = reserved
        self._plugins: dict[str, tuple[Callable[..., Any], PluginInfo]] = {}
        self._discovered = False
        self.load_errors: dict[str, str] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``func`` under ``name``; returns ``func`` unchanged."""

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self._add(name, func, origin=func.__module__)
            return func

        return decorator

    def _add(self, name: str, func: Callable[..., Any], origin: str) -> None:
        if name in self._plugins and self._plugins[name][0] is not func:
            raise PluginError(
                f"{self.kind} plugin {name!r} is already registered by "
                f"{self._plugins[name][1].origin}"
            )
        doc = inspect.getdoc(func) or ""
        summary = doc.splitlines()[0] if doc else ""
        info = PluginInfo(name, self.kind, summary, _signature_params(func, name, self.reserved),
                          origin)
        self._plugins[name] = (func, info)

    def discover(self) -> None:
        """Load plugins from the entry-point group once; a broken one is reported, not fatal."""
        if self._discovered:
            return
        self._discovered = True
        for ep in metadata.entry_points(group=self.group):
            origin = f"{ep.dist.name if ep.dist else '?'}:{ep.value}"
            try:
                func = ep.load()
                if ep.name not in self._plugins:
                    self._add(ep.name, func, origin=origin)
            except Exception as exc:  # noqa: BLE001 - any third-party failure is reported
                self.load_errors[ep.name] = f"{origin}: {type(exc).__name__}: {exc}"
                warnings.warn(
                    f"ct3d: {self.kind} plugin {ep.name!r} from {origin} could not be loaded: "
                    f"{type(exc).__name__}: {exc}",
                    stacklevel=2,
                )

    def names(self, include: str = "*", exclude: str | None = None) -> list[str]:
        """Sorted plugin names matching the fnmatch pattern ``include`` and not ``exclude``."""
        self.discover()
        return sorted(
            n for n in self._plugins
            if fnmatch.fnmatch(n, include) and not (exclude and fnmatch.fnmatch(n, exclude))
        )

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._plugins

    def _lookup(self, name: str) -> tuple[Callable[..., Any], PluginInfo]:
        self.discover()
        if name not in self._plugins:
            known = sorted(self._plugins)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownPlugin(
                f"unknown {self.kind} plugin {name!r}{hint} known: {', '.join(known)}"
            )
        return self._plugins[name]

    def describe(self, name: str) -> PluginInfo:
        """The plugin's summary and parameters."""
        return self._lookup(name)[1]

    def validate(self, name: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """Check ``params`` against the plugin's signature; return them converted by type hint.

        ``None`` values mean "use the default" and are dropped.
        """
        info = self.describe(name)
        by_name = {p.name: p for p in info.params}
        checked: dict[str, Any] = {}
        for key, value in (params or {}).items():
            if key not in by_name:
                raise ParamError(
                    f"{self.kind} plugin {name!r} has no parameter {key!r}; "
                    f"parameters: {', '.join(by_name) or '(none)'}"
                )
            if value is None:
                continue
            try:
                checked[key] = coerce(by_name[key].annotation, value)
            except ParamError as exc:
                raise ParamError(
                    f"{self.kind} plugin {name!r}, parameter {key!r}: expected "
                    f"{by_name[key].type_name}, got {value!r} ({exc})"
                ) from None
        return checked

    def create(self, name: str, **params: Any) -> Any:
        """Call the plugin with validated parameters (plus any reserved ones passed through)."""
        func, _ = self._lookup(name)
        reserved = {k: params.pop(k) for k in list(params) if k in self.reserved}
        return func(**self.validate(name, params), **reserved)


PREPROCESSORS = Registry("preprocess", "ct3d.preprocessors")
AUGMENTERS = Registry("augment", "ct3d.augmenters")
MODELS = Registry("model", "ct3d.models", reserved=frozenset({"input_shape", "classes"}))

REGISTRIES: dict[str, Registry] = {
    "preprocess": PREPROCESSORS,
    "augment": AUGMENTERS,
    "model": MODELS,
}

preprocessor = PREPROCESSORS.register
augmenter = AUGMENTERS.register
model_builder = MODELS.register


def list_plugins(kind: str, include: str = "*", exclude: str | None = None) -> list[str]:
    """Sorted names of the ``kind`` registry (``preprocess``, ``augment``, ``model``).

    Example:
        >>> list_plugins("model")
        ['baseline_3dcnn', 'densenet3d', 'modified_3dcnn', 'resnet3d']
    """
    if kind not in REGISTRIES:
        raise UnknownPlugin(f"unknown registry {kind!r}; known: {', '.join(REGISTRIES)}")
    return REGISTRIES[kind].names(include, exclude)

