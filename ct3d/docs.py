"""One-line descriptions of parameters and fields, read from Google-style docstrings.

A plugin documents its keyword parameters in an ``Args:`` section and a dataclass its fields
in an ``Attributes:`` section, one entry each: ``name: text``, continued on deeper-indented
lines (joined with single spaces). The entry's first sentence, without inline markup
(backquotes and roles such as ``:mod:`` dropped, their text kept), is its *one-line
description*: what the registry, ``ct3d plugins``, the widgets and the commented scenario
YAML show.

Example:
    >>> def window(low: float = -1000.0, high: float = 400.0) -> None:
    ...     '''Clip HU to [low, high].
    ...
    ...     Args:
    ...         low: lowest HU kept; lower values become ``low``.
    ...         high (float): highest HU kept. Must be above
    ...             low, or the step refuses to build.
    ...     '''
    >>> docstring_section(window.__doc__, "Args")["high"]
    'highest HU kept. Must be above low, or the step refuses to build.'
    >>> one_line_docs(window, "Args")
    {'low': 'lowest HU kept; lower values become low', 'high': 'highest HU kept'}
"""

from __future__ import annotations

import inspect
import re

_ENTRY = re.compile(r"(\w+)\s*(?:\([^)]*\))?\s*:(?:\s+(.*))?$")
"""``name: text`` or ``name (type): text``; the text may start on the next line."""

_MARKUP = re.compile(r"(?::[\w:]+:)?`{1,2}~?([^`]+)`{1,2}")
"""Inline markup: text in single or double backquotes, with or without a role (``:mod:``)."""

_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z`(])")
"""A full stop followed by the start of another sentence (not ``e.g. x`` nor ``1.5``)."""


def docstring_section(doc: str | None, title: str) -> dict[str, str]:
    """The entries of the section ``title`` (``"Args"``, ``"Attributes"``) of ``doc``: name
    -> text, continuation lines joined by single spaces; ``{}`` when there is no such section.

    The section runs from its ``Title:`` line to the next line indented no deeper than it
    (blank lines aside); entries are its least-indented lines.

    Example:
        >>> entries = docstring_section('''Summary.
        ...
        ... Attributes:
        ...     epochs: passes over the training part.
        ...     batch_size: scans per step,
        ...         over all devices.
        ...
        ... Returns:
        ...     nothing.
        ... ''', "Attributes")
        >>> list(entries), entries["batch_size"]
        (['epochs', 'batch_size'], 'scans per step, over all devices.')
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    headers = [i for i, line in enumerate(lines) if line.strip() == f"{title}:"]
    if not headers:
        return {}
    start = headers[0]
    base = _indent(lines[start])
    body: list[str] = []
    for line in lines[start + 1:]:
        if line.strip() and _indent(line) <= base:
            break
        body.append(line)
    entry_indent = min((_indent(line) for line in body if line.strip()), default=0)
    entries: dict[str, list[str]] = {}
    for line in body:
        match = _ENTRY.match(line.strip())
        if line.strip() and _indent(line) == entry_indent and match:
            entries[match.group(1)] = [match.group(2) or ""]
        elif line.strip() and entries:
            entries[list(entries)[-1]].append(line.strip())
    return {name: " ".join(part for part in parts if part) for name, parts in entries.items()}


def first_sentence(text: str) -> str:
    """``text`` up to the end of its first sentence, without the final full stop.

    Example:
        >>> first_sentence("spacing in mm, e.g. 1.5. Applied per axis.")
        'spacing in mm, e.g. 1.5'
        >>> first_sentence("lowest HU kept")
        'lowest HU kept'
    """
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].removesuffix(".")


def one_line_docs(obj: object, title: str) -> dict[str, str]:
    """Name -> one-line description (:func:`first_sentence`, inline markup removed) of each
    entry of the section ``title`` of ``obj``'s docstring (``"Args"`` for a function,
    ``"Attributes"`` for a class); ``{}`` when ``obj`` has no docstring or no such section.

    Example:
        >>> from ct3d.registry import Registry
        >>> one_line_docs(Registry, "Args")["reserved"]
        'parameter names the pipeline supplies itself (not user parameters)'
        >>> one_line_docs(Registry, "Attributes")
        {}
    """
    return {name: _MARKUP.sub(r"\1", first_sentence(text))
            for name, text in docstring_section(inspect.getdoc(obj), title).items()}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
