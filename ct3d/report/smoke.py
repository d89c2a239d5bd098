"""What a report page says about itself: its heading and, for ``ct3d report --quick``, the
smoke-test banner.

A quick report trains on a tiny cohort for an epoch or two: its numbers show that the
pipeline runs, not how well a recipe learns. Every page of one says so first, with the scans
and epochs it really used, and names its scenarios with those epochs (``all-slices-aug-25``
ran 2 epochs, not 25).

Example:
    >>> quick_name("all-slices-aug-25", [2])
    'all-slices-aug-25 (quick: 2 epochs)'
    >>> run_size({"n": 8, "epochs_run": 3, "parts": {"train": {"n": 8}, "test": {"n": 8}}})
    (16, [3])
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["BANNER_STYLE", "page_heading", "quick_name", "run_size", "smoke_banner", "span"]

BANNER_STYLE = ("border: 3px solid #b00020; background: #fff0f0; color: #5c0010; "
                "padding: 0.6em 0.9em; font-size: 1.15em; margin: 0.5em 0 1em 0")
"""Inline CSS of the banner (the HTML export keeps it: no stylesheet needed)."""


def run_size(metrics: Mapping[str, Any]) -> tuple[int, list[int]]:
    """The scans a run used and the epochs each of its models trained, from ``metrics.json``.

    Scans: every part of a holdout run, every scan tested out of fold of a k-fold run (what
    failed to preprocess is not counted). Epochs: one per model (k-fold: per fold and repeat).

    Example:
        >>> run_size({"n": 12, "folds": [{"epochs_run": 2}, {"epochs_run": 3}]})
        (12, [2, 3])
    """
    folds = metrics.get("folds") or []
    epochs = [m.get("epochs_run") for m in (folds or [metrics])]
    parts = metrics.get("parts")
    scans = sum(p["n"] for p in parts.values()) if parts and not folds else metrics["n"]
    return int(scans), [int(e) for e in epochs if e is not None]


def span(values: Sequence[int], unit: str) -> str:
    """``24 scans``, ``1 epoch`` or ``1–3 epochs``: the range of ``values`` with its unit.

    Example:
        >>> span([24], "scan"), span([1], "epoch"), span([3, 1, 2], "epoch")
        ('24 scans', '1 epoch', '1–3 epochs')
    """
    low, high = min(values), max(values)
    number = str(low) if low == high else f"{low}–{high}"
    return f"{number} {unit}{'' if high == 1 else 's'}"


def quick_name(name: str, epochs: Sequence[int]) -> str:
    """A quick run's name with the epochs it really trained, not those its name promises.

    ``epochs``: of each model; empty: not known yet (the name is then marked ``quick`` only).

    Example:
        >>> quick_name("lung-only-aug-25", [2, 2]), quick_name("x", [])
        ('lung-only-aug-25 (quick: 2 epochs)', 'x (quick)')
    """
    return f"{name} (quick: {span(epochs, 'epoch')})" if epochs else f"{name} (quick)"


def smoke_banner(scans: Sequence[int] = (), epochs: Sequence[int] = ()) -> str:
    """HTML: the warning that opens every page of a ``--quick`` report.

    ``scans``, ``epochs``: what the run(s) of the page used (a range when several differ);
    either may be empty (not known, e.g. before the run), and is then left out.

    Example:
        >>> smoke_banner([24], [2]).split("</strong>")[1][:-6]
        ' 24 scans, 2 epochs — these numbers say the pipeline runs, not how well a recipe learns.'
    """
    sizes = [span(v, u) for v, u in ((scans, "scan"), (epochs, "epoch")) if v]
    return (f'<div class="ct3d-smoke-test" style="{BANNER_STYLE}"><strong>SMOKE TEST '
            f"(--quick):</strong> {', '.join(sizes) + ' — ' if sizes else ''}these numbers say "
            f"the pipeline runs, not how well a recipe learns.</div>")


def page_heading(title: str, quick: bool = False, scans: Sequence[int] = (),
                 epochs: Sequence[int] = (), verdict: str = "") -> str:
    """HTML opening a report page: ``title`` as its heading and, when ``quick``, the title
    with the epochs really run (:func:`quick_name`) and the :func:`smoke_banner` above it;
    ``verdict`` (:func:`ct3d.report.text.verdict`) in bold under the heading.

    Example:
        >>> page_heading("all-slices-aug-25")
        '<h1>all-slices-aug-25</h1>'
        >>> page_heading("all-slices-aug-25", True, [24], [2]).endswith(
        ...     "<h1>all-slices-aug-25 (quick: 2 epochs)</h1>")
        True
    """
    said = f"<p><b>{html.escape(verdict)}</b></p>" if verdict else ""
    if not quick:
        return f"<h1>{html.escape(title)}</h1>{said}"
    return (smoke_banner(scans, epochs) + f"<h1>{html.escape(quick_name(title, epochs))}</h1>"
            + said)
