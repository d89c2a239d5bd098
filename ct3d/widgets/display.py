"""Showing toolkit objects in Jupyter: figures as PNG bytes, objects as their widget.

Figures are made with :class:`matplotlib.figure.Figure` directly (no pyplot), so rendering
needs no GUI backend, keeps no global state and works headless.

Example:
    >>> from matplotlib.figure import Figure
    >>> png(Figure(figsize=(1, 1)))[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

__all__ = ["INSTALL_HINT", "WidgetView", "png", "viewer_available"]

INSTALL_HINT = 'the 3D viewer needs ipyniivue: pip install "ct3d[viewer]"'


def viewer_available() -> bool:
    """Whether the 3D viewer (:class:`~ct3d.widgets.VolumeViewer`) can be shown here: the
    ``viewer`` extra (``ipyniivue``) is installed."""
    return importlib.util.find_spec("ipyniivue") is not None


def png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure rendered as PNG bytes (for an ``ipywidgets.Image``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class WidgetView:
    """Mixin: an object with a ``widget`` attribute displays as that widget in Jupyter.

    Example:
        >>> class Hello(WidgetView):
        ...     def __init__(self) -> None:
        ...         self.widget = widgets.Label("hello")
        >>> "application/vnd.jupyter.widget-view+json" in Hello()._repr_mimebundle_()
        True
    """

    widget: widgets.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """Jupyter's display hook: show ``widget``."""
        return self.widget._repr_mimebundle_(**kwargs)
