"""A classifier run's plots, beside the loss: validation accuracy and macro-F1 at each evaluation, and the latest
confusion matrix as a heatmap (true labels down, predicted across, the count in each cell).

They are fed lmcore's ClassifyMetrics events: live from the training process, or read back from a run's
metrics.jsonl (a finished run ticked in the runs list). An evaluation is a few points, so each is drawn afresh.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from lmcore.events import ClassifyMetrics

from ..common.style import ACCENT, PANEL, TEXT
from ..common.text import run_label
from .plot_items import add_plot

F1_COLOUR = "#f28e2b"
# Cells are coloured by the share of their row (the true label's recall), so that a rare class reads as clearly as
# a common one; white (none) to the accent colour (all)
CELL_COLOURS = pg.ColorMap([0.0, 1.0], [QColor(PANEL), QColor(ACCENT)])
MOST_COUNTED = 24  # labels; with more, the cells are too small for their counts: their colours alone show them
LABEL_CHARS = 12  # longer label names are cut with "…" on the axes
METRICS_TITLE = "Validation accuracy and macro-F1"
CONFUSION_MIN_WIDTH = 220  # px: room for the label names and a few cells
LABELS_IN_CAPTION = 4  # with more, the per-label precision and recall are in the caption's tooltip alone


class ClassifierPlots(QWidget):
    """The classifier runs shown beside the loss (the live one, ticked ones): one at a time, with its accuracy and
    macro-F1 curves and its confusion matrix; hidden while none is a classifier."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs: dict[Path, list[ClassifyMetrics]] = {}  # each classifier run's evaluations, in the order shown
        self.run_dir: Path | None = None  # the one drawn
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setSpacing(6)
        self.metrics_plot = add_plot(self.graphics.ci, 0, 0)
        self.metrics_plot.setTitle(METRICS_TITLE, size="10pt", bold=True)
        self.metrics_plot.showGrid(x=True, y=True, alpha=0.15)
        self.metrics_plot.setLabel("bottom", "Step")
        self.metrics_plot.getAxis("left").setWidth(44)
        self.metrics_plot.setYRange(0, 1, padding=0.04)
        self.metrics_plot.setMouseEnabled(y=False)
        self.metrics_plot.hideButtons()
        legend = self.metrics_plot.addLegend(offset=(-8, -8), labelTextSize="9pt", brush=(255, 255, 255, 220))
        self.accuracy_curve = self.metrics_plot.plot([], [], pen=pg.mkPen(ACCENT, width=2), symbol="o", symbolSize=6,
                                                     symbolBrush=ACCENT, symbolPen=None, name="accuracy")
        self.f1_curve = self.metrics_plot.plot([], [], pen=pg.mkPen(F1_COLOUR, width=2, style=Qt.PenStyle.DashLine),
                                               symbol="s", symbolSize=6, symbolBrush=F1_COLOUR, symbolPen=None,
                                               name="macro-F1")
        legend.setParentItem(self.metrics_plot.vb)
        legend.anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-8, -8))  # bottom right: the curves rise to the top
        self.confusion_plot = add_plot(self.graphics.ci, 0, 1)
        self.confusion_plot.setTitle("Confusion matrix", size="10pt", bold=True)
        self.confusion_plot.setLabel("left", "true")
        self.confusion_plot.setLabel("bottom", "predicted")
        self.confusion_plot.invertY(True)  # the first label at the top, as a table reads
        self.confusion_plot.setAspectLocked(True)
        self.confusion_plot.hideButtons()
        self.confusion_plot.setMinimumWidth(CONFUSION_MIN_WIDTH)
        self.confusion_plot.setMouseEnabled(x=False, y=False)
        self.image = pg.ImageItem()
        self.image.setColorMap(CELL_COLOURS)
        self.confusion_plot.addItem(self.image)
        self.cell_texts: list[pg.TextItem] = []
        self.graphics.ci.layout.setColumnStretchFactor(0, 3)
        self.graphics.ci.layout.setColumnStretchFactor(1, 2)
        self.caption = QLabel()  # the latest evaluation in words: the per-class precision and recall
        self.caption.setObjectName("hint")
        self.caption.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.caption)
        self.hide()

    def show_run(self, run_dir: Path, events: list[ClassifyMetrics], draw: bool = True) -> None:
        """Keep this classifier run's evaluations so far (none yet, for a run just started), and draw it (`draw`
        False: only once the run drawn goes)."""
        self.runs[Path(run_dir)] = list(events)
        if draw or self.run_dir is None:
            self._draw(Path(run_dir))

    def add(self, run_dir: Path, events: list[ClassifyMetrics]) -> None:
        """New evaluations of a run (the live run's, as they come)."""
        if Path(run_dir) in self.runs and events:
            self.runs[Path(run_dir)].extend(events)
            if run_dir == self.run_dir:
                self._draw(self.run_dir)

    def remove(self, run_dir: Path) -> None:
        """Stop showing the run: the last other classifier run shown is drawn instead, if any."""
        self.runs.pop(Path(run_dir), None)
        if run_dir == self.run_dir:
            self._draw(next(reversed(self.runs), None))

    def _draw(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.setVisible(run_dir is not None)
        if run_dir is None:
            return
        history = self.runs[run_dir]
        self.metrics_plot.setToolTip(f"{METRICS_TITLE} of {run_label(run_dir.name)}")
        steps = [e.step for e in history]
        self.accuracy_curve.setData(steps, [e.accuracy for e in history])
        self.f1_curve.setData(steps, [e.macro_f1 for e in history])
        if steps:
            self.metrics_plot.setXRange(0, max(steps), padding=0.04)
        latest = history[-1] if history else None
        self._draw_confusion(latest)
        if latest is None:
            self.caption.setText("Waiting for the first evaluation…")
            self.caption.setToolTip("")
        else:
            per_label = " · ".join(f"{name}: precision {p:.0%}, recall {r:.0%}"
                                   for name, p, r in zip(latest.labels, latest.precision, latest.recall, strict=True))
            overall = f"Step {latest.step:,}: accuracy {latest.accuracy:.1%}, macro-F1 {latest.macro_f1:.3f}."
            self.caption.setText(overall + (f" {per_label}" if len(latest.labels) <= LABELS_IN_CAPTION else ""))
            self.caption.setToolTip(per_label)

    def _draw_confusion(self, latest: ClassifyMetrics | None) -> None:
        for item in self.cell_texts:
            self.confusion_plot.removeItem(item)
        self.cell_texts = []
        if latest is None or not latest.labels:
            self.image.clear()
            return
        counts = np.asarray(latest.confusion, dtype=float)
        n = len(latest.labels)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        self.image.setImage(shares.T, levels=(0, 1))  # ImageItem's first axis is x: the predicted label
        self.image.setRect(0, 0, n, n)
        ticks = [[(i + 0.5, _short(name)) for i, name in enumerate(latest.labels)]]
        for axis in ("left", "bottom"):
            self.confusion_plot.getAxis(axis).setTicks(ticks)
        if n <= MOST_COUNTED:
            for i in range(n):
                for j in range(n):
                    colour = PANEL if shares[i, j] > 0.55 else TEXT
                    text = pg.TextItem(f"{int(counts[i, j]):,}", color=colour, anchor=(0.5, 0.5))
                    text.setPos(j + 0.5, i + 0.5)
                    self.confusion_plot.addItem(text)
                    self.cell_texts.append(text)
        self.confusion_plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
        self.confusion_plot.setTitle(f"Confusion matrix · step {latest.step:,}", size="10pt", bold=True)


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"

