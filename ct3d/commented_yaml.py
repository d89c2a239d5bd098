"""A dataclass (a Scenario) as block-style YAML, each key with its one-line meaning.

The form of a scenario to edit by hand (``ct3d scenario new``): every mapping in block style
(only lists of scalars stay in flow style, ``shape: [128, 128, 64]``, one line to edit), and
beside each key, as a YAML comment, its description from the ``Attributes:`` section of its
class's docstring; a plugin step (a field named after a registry, holding ``name`` and
``params``) gets its plugin's summary and each parameter its ``Args:`` line. The comments
change nothing: the text parses back to the same data.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Train:
    ...     '''Training settings.
    ...
    ...     Attributes:
    ...         epochs: passes over the training part.
    ...     '''
    ...     epochs: int = 12
    >>> print(commented_yaml(Train()), end="")
    epochs: 12  # passes over the training part
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import yaml

from ct3d.docs import one_line_docs
from ct3d.registry import REGISTRIES, NamedStep

__all__ = ["commented_yaml"]


def commented_yaml(obj: Any) -> str:
    """The dataclass ``obj`` as commented, block-style YAML text (see the module)."""
    return "".join(f"{line}\n" for line in _aligned(_dataclass_rows(obj)))


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML with every mapping in block style; a list of scalars stays in flow style."""


_BlockDumper.add_representer(
    dict, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data,
                                                        flow_style=False))

_Row = tuple[str, str]
"""One line of commented YAML: its text (indentation included) and its comment (or "")."""

_COMMENT_COLUMN_MAX = 48
"""Comments of sibling keys line up, at a column no further right than this."""


def _dataclass_rows(obj: Any) -> list[_Row]:
    """The fields of a scenario dataclass, described by its ``Attributes:``, in block style."""
    docs = one_line_docs(type(obj), "Attributes")
    rows: list[_Row] = []
    for f in dataclasses.fields(obj):
        value, doc = getattr(obj, f.name), docs.get(f.name, "")
        if _is_step(value):
            rows += [(f"{f.name}:", doc), *_indented(_step_rows(value, f.name))]
        elif dataclasses.is_dataclass(value):
            rows += [(f"{f.name}:", doc), *_indented(_dataclass_rows(value))]
        elif value and isinstance(value, list) and all(map(_is_step, value)):
            rows.append((f"{f.name}:", doc))
            for step in value:
                (text, comment), *rest = _step_rows(step, f.name)
                rows += _indented([(f"- {text}", comment), *_indented(rest)])
        else:
            rows += _value_rows(f.name, value, doc)
    return rows


def _is_step(value: Any) -> bool:
    """A plugin step: a ``name`` and its ``params`` (a scenario's ``StepSpec``)."""
    return isinstance(getattr(value, "name", None), str) and isinstance(
        getattr(value, "params", None), dict)


def _step_rows(step: NamedStep, kind: str) -> list[_Row]:
    """A step's plugin name with the plugin's summary, and its parameters with theirs (none
    for a plugin or parameter that the registry does not know or that is undocumented)."""
    registry = REGISTRIES[kind]
    info = registry.describe(step.name) if step.name in registry else None
    docs = {p.name: p.doc for p in info.params} if info else {}
    params = [row for key, value in step.params.items()
              for row in _value_rows(key, value, docs.get(key, ""))]
    return [*_value_rows("name", step.name, info.summary.removesuffix(".") if info else ""),
            ("params:", "") if params else ("params: {}", ""), *_indented(params)]


def _value_rows(key: str, value: Any, comment: str) -> list[_Row]:
    """``key: value`` in block style with ``comment`` at the end of the key's line, or on a
    line of its own above it when the value starts on that line and goes on over others (a
    long text)."""
    first, *rest = yaml.dump({key: value}, Dumper=_BlockDumper, sort_keys=False,
                             default_flow_style=None, allow_unicode=True).splitlines()
    if rest and not first.endswith(":"):
        return [("", comment)] * bool(comment) + [(line, "") for line in (first, *rest)]
    return [(first, comment), *((line, "") for line in rest)]


def _indented(rows: list[_Row]) -> list[_Row]:
    return [("  " + text, comment) for text, comment in rows]


def _aligned(rows: list[_Row]) -> list[str]:
    """The rows as lines, the comments of consecutive ``key: value`` lines at one indentation
    lined up (those of section headers, ``key:``, stay beside their key)."""
    lines: list[str] = []
    for (_, header), group in itertools.groupby(rows, key=_indent_and_header):
        rows_of_group = list(group)
        column = 0 if header else max(
            (len(t) for t, c in rows_of_group if c and t.strip() and len(t) < _COMMENT_COLUMN_MAX),
            default=0)
        for text, comment in rows_of_group:
            if not comment:
                lines.append(text)
            elif not text.strip():
                lines.append(f"{text}# {comment}")
            else:
                lines.append(f"{text.ljust(column)}  # {comment}")
    return lines


def _indent_and_header(row: _Row) -> tuple[int, bool]:
    text = row[0]
    return len(text) - len(text.lstrip()), text.endswith(":")
