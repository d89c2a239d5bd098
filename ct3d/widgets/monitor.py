"""TrainingMonitor: a Keras callback showing live curves and progress, then a run's results.

Pass it to :func:`ct3d.run` (``callbacks=[monitor]``): every fit (one per fold) starts a new
curve set; :meth:`TrainingMonitor.show_result` then draws the confusion matrix and the
metrics table of the :class:`~ct3d.engine.Result`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import keras
from matplotlib.figure import Figure

from ct3d.report.figures import CURVES, confusion_figure, curves_figure
from ct3d.report.runs import class_names
from ct3d.report.tables import confusion_matrices
from ct3d.report.text import format_table
from ct3d.widgets.display import WidgetView, png

__all__ = ["TrainingMonitor"]


class TrainingMonitor(keras.callbacks.Callback, WidgetView):
    """Live loss / accuracy / AUC curves (train and val) and progress bars while training.

    Attributes:
        history: the current fit's logged values per epoch (``epoch``, ``loss``,
            ``val_auc``, ...), one list each.
        fits: the history of every fit so far (k-fold runs fit once per fold).
        epochs_bar, batches_bar: the progress bars (``IntProgress``).
        figure: the curves' Figure last drawn into the widget.

    Example:
        >>> monitor = TrainingMonitor()
        >>> for epoch, loss in enumerate([0.7, 0.5]):
        ...     monitor.on_epoch_end(epoch, {"loss": loss, "val_loss": loss + 0.25})
        >>> monitor.history
        {'epoch': [1, 2], 'loss': [0.7, 0.5], 'val_loss': [0.95, 0.75]}
        >>> monitor.render().axes[0].lines[1].get_ydata().tolist()
        [0.95, 0.75]

    In a notebook::

        monitor = TrainingMonitor()
        display(monitor)
        result = ct3d.run(scenario, callbacks=[monitor])
        monitor.show_result(result)
    """

    def __init__(self, metrics: Sequence[str] = CURVES) -> None:
        super().__init__()
        self.metrics = tuple(metrics)
        self.history: dict[str, list[float]] = {}
        self.fits: list[dict[str, list[float]]] = [self.history]
        self.figure: Figure | None = None
        self.epochs_bar = widgets.IntProgress(description="epochs", min=0, max=1)
        self.batches_bar = widgets.IntProgress(description="batches", min=0, max=1)
        self.status = widgets.Label()
        self.curves = widgets.Image(format="png")
        self.result_image = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.table = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.epochs_bar, self.batches_bar]), self.status, self.curves,
            self.result_image, self.table])

    # -- Keras callback ---------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Start a new curve set; size the progress bars from the fit's epochs and steps."""
        if self.history:
            self.history = {}
            self.fits.append(self.history)
        params = self.params or {}
        self.epochs_bar.max = max(int(params.get("epochs") or 1), 1)
        self.batches_bar.max = max(int(params.get("steps") or 1), 1)
        self.epochs_bar.value = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Reset the batch progress bar."""
        self.batches_bar.value = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Advance the batch progress bar."""
        self.batches_bar.value = min(batch + 1, self.batches_bar.max)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the epoch's logs, advance the epoch bar and redraw the curves."""
        self.history.setdefault("epoch", []).append(epoch + 1)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.epochs_bar.max = max(self.epochs_bar.max, epoch + 1)
        self.epochs_bar.value = epoch + 1
        values = ", ".join(f"{k} {v[-1]:.4g}" for k, v in self.history.items() if k != "epoch")
        fit = f"fit {len(self.fits)}: " if len(self.fits) > 1 else ""
        self.status.value = f"{fit}epoch {epoch + 1}/{self.epochs_bar.max}: {values}"
        self.refresh()

    # -- drawing ----------------------------------------------------------------------
    def render(self) -> Figure:
        """The current fit's curves."""
        return curves_figure(self.history, self.metrics, self.epochs_bar.max)

    def refresh(self) -> None:
        """Render the curves into their image widget; the Figure is kept as ``figure``."""
        self.figure = self.render()
        self.curves.value = png(self.figure)

    @staticmethod
    def _metrics(result: Any) -> dict[str, Any]:
        """The metrics dict of a Result, or the dict itself."""
        return result if isinstance(result, dict) else result.metrics

    def render_result(self, result: Any) -> Figure:
        """The confusion matrices of a Result (or its metrics dict): counts and row shares.

        As in the report: the training part's (when the metrics have it), then the
        evaluated part's.
        """
        m = self._metrics(result)
        return confusion_figure(confusion_matrices(m), class_names(m))

    def show_result(self, result: Any) -> None:
        """Show a run's confusion matrices and its metrics table (every part)."""
        m = self._metrics(result)
        self.result_image.value = png(self.render_result(m))
        self.result_image.layout.display = None
        parts = m.get("parts") or {str(m.get("evaluated_on", "test")): m}
        self.table.value = f"<pre>{html.escape(format_table(parts, class_names(m)))}</pre>"
