"""The loss plot's crosshair: dashed lines that follow the mouse, and one line of text under the plots reading
each shown run's metrics at the step nearest to it."""
from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import QLabel

from .series import LOSS_PARTS, X_AXES, RunSeries
from ..common.style import MUTED
from ..common.text import run_label


class ReadoutLabel(QLabel):
    """One line of rich-text pieces: as many as fit its width, then '…'. A plain QLabel asks for its whole text's
    width, and the window grew to fit the crosshair's reading of many runs (issue 23)."""

    SEPARATOR = " &nbsp; "

    def __init__(self):
        super().__init__(" ")
        self.setTextFormat(Qt.TextFormat.RichText)
        self._pieces: list[str] = []

    def show_pieces(self, pieces: list[str]) -> None:
        self._pieces = pieces
        self._fit()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(0, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        room = self.contentsRect().width()
        for count in range(len(self._pieces), 0, -1):  # the most pieces that fit
            text = self.SEPARATOR.join(self._pieces[:count]) + (" …" if count < len(self._pieces) else "")
            if self.fontMetrics().horizontalAdvance(QTextDocumentFragment.fromHtml(text).toPlainText()) <= room:
                break
        else:
            text = "…" if self._pieces else " "  # " " keeps the line's height
        self.setText(text)


class Crosshair:
    """Lines through the mouse while it is over `plot`, and `label` showing `read(x)` for the x under it."""

    def __init__(self, plot: pg.PlotItem, read: Callable[[float], list[str]]):
        self.plot, self.read = plot, read
        self.x_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#9aa0ab", style=Qt.PenStyle.DashLine))
        self.y_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen("#9aa0ab", style=Qt.PenStyle.DashLine))
        for line in (self.x_line, self.y_line):
            line.setVisible(False)
            plot.addItem(line, ignoreBounds=True)
        self.label = ReadoutLabel()
        self.label.setStyleSheet(f"color: {MUTED};")
        self._mouse_proxy = pg.SignalProxy(plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_moved)

    def _on_mouse_moved(self, args) -> None:
        position = args[0]
        inside = self.plot.sceneBoundingRect().contains(position)
        for line in (self.x_line, self.y_line):
            line.setVisible(inside)
        if not inside:
            self.label.show_pieces([])
            return
        point = self.plot.vb.mapSceneToView(position)
        self.x_line.setPos(point.x())
        self.y_line.setPos(point.y())
        self.label.show_pieces(self.read(point.x()))


def values_at(x: float, x_key: str, runs: Mapping[Path, RunSeries], colours: Mapping[Path, str]) -> list[str]:
    """The crosshair's reading, in rich-text pieces: x, then for each run (in its colour) the metrics at the step
    nearest to x (a distilled run's with the two parts of its loss), and its validation loss (with bits per
    character, or accuracy) at the evaluation nearest to x."""
    parts = [f"{X_AXES[x_key]} {x:,.0f}"]
    for path, series in runs.items():
        xs = series.steps[x_key]
        if not len(xs):
            continue
        i = nearest(xs, x)
        text = (f"loss {series.steps['loss'][i]:.3f} (smoothed {series.smoothed.values['loss'][i]:.3f}), "
                f"lr {series.steps['lr'][i]:.2e}")
        if series.is_distilled():
            text += "".join(f", {label} {series.steps[name][i]:.3f}" for name, label in LOSS_PARTS.items())
        x_evals = series.evals[x_key]
        if len(x_evals):
            j = nearest(x_evals, x)
            text += f", val {series.evals['val_loss'][j]:.3f}"
            bits = series.evals["val_bits_per_char"][j]
            if np.isfinite(bits):  # only an evaluation of the whole validation split has it
                text += f" ({bits:.3f} bits/char)"
            accuracy = series.evals["val_accuracy"][j]
            if np.isfinite(accuracy):  # a masked LM's or a classifier's
                text += f", accuracy {accuracy:.1%}"
        parts.append(f"<span style='color:{colours[path]}'>■</span> {html.escape(run_label(series.name))}: {text}")
    return parts


def nearest(sorted_values: np.ndarray, x: float) -> int:
    """The index of the value nearest to x."""
    i = int(np.searchsorted(sorted_values, x))
    if i >= len(sorted_values):
        return len(sorted_values) - 1
    if i > 0 and x - sorted_values[i - 1] < sorted_values[i] - x:
        return i - 1
    return i
