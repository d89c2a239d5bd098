"""Typed parameter values: check and convert a value against a type hint.

One set of rules serves plugin parameters, Scenario fields and CLI ``--set`` strings, so a
parameter is described once, by its type hint.

Example:
    >>> coerce(tuple[int, int, int], [128, 128, 64])
    (128, 128, 64)
    >>> coerce(float, "1e-4")
    0.0001
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

import yaml

from ct3d.errors import Ct3dError


class ParamError(Ct3dError, ValueError):
    """A value that does not fit its parameter's type hint."""


def describe_type(annotation: Any) -> str:
    """Write a type hint as in source code: ``tuple[int, int, int]``, ``'adam' | 'sgd'``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(describe_type(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else describe_type(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _accepts_str(annotation: Any) -> bool:
    if annotation is str or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return any(isinstance(a, str) for a in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return any(_accepts_str(a) for a in typing.get_args(annotation))
    return False


def coerce(annotation: Any, value: Any) -> Any:
    """Return ``value`` converted to ``annotation``, or raise :class:`ParamError`.

    Strings are parsed (as YAML) when the hint does not take strings, so CLI text such as
    ``"3"``, ``"[1, 2]"`` or ``"1e-4"`` converts by the parameter's type hint. Lists become
    tuples where the hint is a tuple; ints are accepted for floats; bools are never numbers.
    """
    if isinstance(value, str) and not _accepts_str(annotation):
        parsed = yaml.safe_load(value) if value.strip() else value
        value = parsed if not isinstance(parsed, str) or annotation is not float else value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is Literal:
        if value in args:
            return value
        raise ParamError(f"must be one of {describe_type(annotation)}")
    if origin in (Union, types.UnionType):
        return _coerce_union(args, value)
    if origin is tuple:
        return _coerce_tuple(args, value)
    if origin is list:
        _require(isinstance(value, (list, tuple)), "must be a list")
        return [coerce(args[0], v) for v in value] if args else list(value)
    if origin is dict:
        _require(isinstance(value, dict), "must be a mapping")
        return {coerce(args[0], k): coerce(args[1], v) for k, v in value.items()} if args else value
    return _coerce_scalar(annotation, value)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ParamError(message)


def _coerce_union(args: tuple[Any, ...], value: Any) -> Any:
    if value is None:
        _require(type(None) in args, "must not be None")
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(arg, value)
        except ParamError as exc:
            errors.append(str(exc))
    raise ParamError("; ".join(errors))


def _coerce_tuple(args: tuple[Any, ...], value: Any) -> tuple[Any, ...]:
    _require(isinstance(value, (list, tuple)), "must be a list")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(args[0], v) for v in value)
    if args:
        _require(len(value) == len(args), f"must have {len(args)} items, got {len(value)}")
        return tuple(coerce(a, v) for a, v in zip(args, value, strict=True))
    return tuple(value)


def _coerce_scalar(annotation: Any, value: Any) -> Any:
    if annotation is bool:
        _require(isinstance(value, bool), "must be true or false")
        return value
    if annotation is int:
        _require(isinstance(value, int) and not isinstance(value, bool), "must be an integer")
        return value
    if annotation is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ParamError("must be a number") from None
        _require(isinstance(value, (int, float)) and not isinstance(value, bool),
                 "must be a number")
        return float(value)
    if annotation is str:
        _require(isinstance(value, str), "must be a string")
        return value
    if isinstance(annotation, type):
        _require(isinstance(value, annotation), f"must be a {annotation.__name__}")
        return value
    raise ParamError(f"unsupported type hint {annotation!r}")
