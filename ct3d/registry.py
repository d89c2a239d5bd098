"""Registries of plugins: preprocessors, augmenters and model builders.

A plugin is a plain function registered under a name. Its keyword parameters (names, type
hints, defaults), the first line of its docstring and the one-line description of each
parameter in its ``Args:`` section are its whole description: scenario validation, CLI
flags, widgets and commented scenario files are derived from them. An undocumented
parameter is allowed (its description is empty).

A step of a chain (or the model) is *resolved* once, :func:`resolve_step`: its name looked
up, its parameters checked and converted by type hint, every default filled in. That
:class:`ResolvedStep` is the one form the cache key, the preprocessing workers, the widgets
and the run folder use; building it (``step.build()``) calls the plugin.

Example:
    >>> from ct3d.registry import PREPROCESSORS
    >>> "hu_window" in PREPROCESSORS.names()
    True
    >>> PREPROCESSORS.describe("hu_window").params[0].name
    'low'
    >>> PREPROCESSORS.describe("hu_window").params[0].doc
    'lowest HU kept (lower values become 0)'
    >>> resolve_step("preprocess", {"name": "hu_window", "params": {"high": "300"}})
    hu_window(low=-1000.0, high=300.0)
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from ct3d.docs import one_line_docs
from ct3d.errors import Ct3dError
from ct3d.params import ParamError, coerce, describe_type


class UnknownPlugin(Ct3dError, KeyError):
    """A plugin name that no registry entry has; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


class PluginError(Ct3dError, TypeError):
    """A plugin whose definition breaks the plugin contract (e.g. ``*args``, no default)."""


@dataclass(frozen=True)
class Param:
    """One keyword parameter of a plugin: name, type hint, default and one-line description.

    ``doc``: the first sentence of the parameter's entry in the ``Args:`` section of the
    plugin's docstring (:func:`ct3d.docs.one_line_docs`); ``""`` when it has none.
    """

    name: str
    annotation: Any
    default: Any
    doc: str = ""

    @property
    def type_name(self) -> str:
        """The type hint written as in Python source, e.g. ``tuple[int, int, int]``."""
        return describe_type(self.annotation)


@dataclass(frozen=True)
class PluginInfo:
    """What a registry knows about one plugin.

    ``declared``: what the plugin declared when it was registered besides its signature,
    by name (see :class:`Registry`'s ``declarations``), e.g. a preprocessor's
    ``output_shape`` rule or a model builder's ``min_input``.
    """

    name: str
    kind: str
    summary: str
    params: tuple[Param, ...]
    origin: str
    declared: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (``ct3d plugins --json``)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "origin": self.origin,
            "params": [
                {"name": p.name, "type": p.type_name, "default": plain(p.default), "doc": p.doc}
                for p in self.params
            ],
        }


def plain(value: Any) -> Any:
    """``value`` with tuples turned into lists, recursively (as YAML and JSON hold them).

    Example:
        >>> plain({"shape": (64, 64, 48), "axes": [(0, 1)]})
        {'shape': [64, 64, 48], 'axes': [[0, 1]]}
    """
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, repr=False)
class ResolvedStep:
    """A plugin step checked once: registry ``kind``, ``name`` and every parameter.

    ``params`` holds every keyword parameter of the plugin, converted by its type hint, with
    the defaults filled in. ``repr`` reads like the call that builds it; :meth:`to_dict` is
    the ``{"name", "params"}`` form of scenario files, cache keys and run folders.

    Example:
        >>> step = resolve_step("augment", {"name": "flip", "params": {"axes": [0]}})
        >>> step
        flip(axes=(0,), prob=0.5)
        >>> step.to_dict()
        {'name': 'flip', 'params': {'axes': [0], 'prob': 0.5}}
    """

    kind: str
    name: str
    params: Mapping[str, Any]
    function: Callable[..., Any] = field(compare=False)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}`` with tuples as lists (a fresh copy)."""
        return {"name": self.name, "params": plain(dict(self.params))}

    def build(self, **reserved: Any) -> Any:
        """Call the plugin with the parameters (plus reserved ones, e.g. a model's
        ``input_shape``): a preprocessing step, an augmentation step or a model."""
        return self.function(**self.params, **reserved)


class BuiltSteps:
    """Resolved steps of one kind, built once, kept in order; subclasses apply them.

    ``steps``: the resolved steps (their ``repr`` reads like the plugin call); ``built``:
    what each plugin returned for them. An empty chain is falsy.
    """

    def __init__(self, steps: Sequence[ResolvedStep]) -> None:
        self.steps = tuple(steps)
        self.built = [step.build() for step in self.steps]

    def __iter__(self) -> Iterator[ResolvedStep]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.steps))})"


class NamedStep(Protocol):
    """Anything with a plugin ``name`` and its ``params`` (a scenario's ``StepSpec``)."""

    name: str
    params: Mapping[str, Any]


StepLike = ResolvedStep | NamedStep | Mapping[str, Any] | str
"""A step as users write it: a plugin name, ``{"name", "params"}``, an object with ``name``
and ``params`` attributes (a scenario's ``StepSpec``), or an already resolved step."""


def _signature_params(
    func: Callable[..., Any], name: str, reserved: frozenset[str]
) -> tuple[Param, ...]:
    hints = typing.get_type_hints(func)
    docs = one_line_docs(func, "Args")
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
        params.append(Param(p.name, hints[p.name], p.default, docs.get(p.name, "")))
    return tuple(params)


class Registry:
    """Named plugins of one kind, with lazy discovery of third-party entry points.

    Args:
        kind: short name used in messages and listings (``"preprocess"``).
        group: the entry-point group third-party packages register under.
        reserved: parameter names the pipeline supplies itself (not user parameters).
        declarations: what a plugin of this kind may declare when registered, besides its
            signature (each a function of the resolved parameters, see
            :attr:`PluginInfo.declared`).
    """

    def __init__(self, kind: str, group: str, reserved: frozenset[str] = frozenset(),
                 declarations: frozenset[str] = frozenset()) -> None:
        self.kind = kind
        self.group = group
        self.reserved = reserved
        self.declarations = declarations
        self._plugins: dict[str, tuple[Callable[..., Any], PluginInfo]] = {}
        self._discovered = False
        self.load_errors: dict[str, str] = {}

    def register(
        self, name: str, **declared: Callable[..., Any]
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``func`` under ``name``; returns ``func`` unchanged.

        ``declared``: the kind's optional declarations (e.g. ``output_shape=...``).
        """
        unknown = sorted(set(declared) - self.declarations)
        if unknown:
            raise PluginError(f"{self.kind} plugin {name!r}: unknown declaration(s) "
                              f"{', '.join(unknown)}; a {self.kind} plugin may declare: "
                              f"{', '.join(sorted(self.declarations)) or '(nothing)'}")

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self._add(name, func, origin=func.__module__, declared=declared)
            return func

        return decorator

    def _add(self, name: str, func: Callable[..., Any], origin: str,
             declared: Mapping[str, Callable[..., Any]] | None = None) -> None:
        if name in self._plugins and self._plugins[name][0] is not func:
            raise PluginError(
                f"{self.kind} plugin {name!r} is already registered by "
                f"{self._plugins[name][1].origin}"
            )
        doc = inspect.getdoc(func) or ""
        summary = doc.splitlines()[0] if doc else ""
        info = PluginInfo(name, self.kind, summary, _signature_params(func, name, self.reserved),
                          origin, dict(declared or {}))
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

    def resolve(self, name: str, params: Mapping[str, Any] | None = None) -> ResolvedStep:
        """The step ``name`` with ``params`` checked, converted by type hint and completed
        with the defaults. ``None`` values mean "use the default".

        Raises :class:`UnknownPlugin` (with a did-you-mean) or :class:`ParamError` naming
        the plugin, the parameter and the expected type.
        """
        function, info = self._lookup(name)
        given = self._checked(name, info, params)
        return ResolvedStep(self.kind, name, {p.name: given.get(p.name, p.default)
                                              for p in info.params}, function)

    def _checked(self, name: str, info: PluginInfo,
                 params: Mapping[str, Any] | None) -> dict[str, Any]:
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


PREPROCESSORS = Registry("preprocess", "ct3d.preprocessors",
                         declarations=frozenset({"output_shape"}))
AUGMENTERS = Registry("augment", "ct3d.augmenters")
MODELS = Registry("model", "ct3d.models", reserved=frozenset({"input_shape", "classes"}),
                  declarations=frozenset({"min_input"}))

REGISTRIES: dict[str, Registry] = {
    "preprocess": PREPROCESSORS,
    "augment": AUGMENTERS,
    "model": MODELS,
}

preprocessor = PREPROCESSORS.register
augmenter = AUGMENTERS.register
model_builder = MODELS.register


def resolve_step(kind: str, step: StepLike) -> ResolvedStep:
    """``step`` of registry ``kind`` resolved (see :class:`ResolvedStep`); an already
    resolved step of that kind is returned as it is, not checked again.

    Example:
        >>> resolve_step("model", "modified_3dcnn").params["dropout"]
        0.1
    """
    registry = _registry(kind)
    if isinstance(step, ResolvedStep):
        if step.kind != kind:
            raise PluginError(f"{step!r} is a step of the {step.kind} registry, not of {kind}")
        return step
    if isinstance(step, str):
        return registry.resolve(step)
    if isinstance(step, Mapping):
        unknown = sorted(set(step) - {"name", "params"})
        if "name" not in step or unknown:
            raise ParamError(f"a {kind} step is {{'name': ..., 'params': {{...}}}}; got "
                             f"{dict(step)!r}")
        return registry.resolve(step["name"], step.get("params"))
    return registry.resolve(step.name, step.params)


def _registry(kind: str) -> Registry:
    if kind not in REGISTRIES:
        raise UnknownPlugin(f"unknown registry {kind!r}; known: {', '.join(REGISTRIES)}")
    return REGISTRIES[kind]


def list_plugins(kind: str, include: str = "*", exclude: str | None = None) -> list[str]:
    """Sorted names of the ``kind`` registry (``preprocess``, ``augment``, ``model``).

    Example:
        >>> list_plugins("model")
        ['baseline_3dcnn', 'densenet3d', 'inflated3d', 'modified_3dcnn', 'resnet3d', 'slice25d',
         'slice2d']
    """
    return _registry(kind).names(include, exclude)

