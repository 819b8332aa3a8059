"""The classifier runs' plots, below the loss: each run's validation accuracy (solid) and macro-F1 (dashed) at each
evaluation, in its colour in the loss plot, and one run's latest confusion matrix as a heatmap (true labels down,
predicted across, the count in each cell): the live run's, else the last one ticked.

They are fed lmcore's ClassifyMetrics events: live from the training process, or read back from a run's
metrics.jsonl (a finished run ticked in the runs list). An evaluation is a few points, so each is drawn afresh.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from lmcore.events import ClassifyMetrics

from ..common.style import ACCENT, BORDER, MUTED, PANEL, TEXT
from ..common.text import label_parts, run_label
from .plot_items import add_plot

CURVE_STYLES = {"accuracy": Qt.PenStyle.SolidLine, "macro-F1": Qt.PenStyle.DashLine}  # and the legend's keys
CURVE_SYMBOLS = {"accuracy": "o", "macro-F1": "s"}
# Cells are coloured by the share of their row (the true label's recall), so that a rare class reads as clearly as
# a common one; white (none) to the accent colour (all)
CELL_COLOURS = pg.ColorMap([0.0, 1.0], [QColor(PANEL), QColor(ACCENT)])
MOST_COUNTED = 24  # labels; with more, the cells are too small for their counts: their colours alone show them
LABEL_CHARS = 12  # longer label names are cut with "…" down the side (across, to the cells' width)
TICK_GAP = 6  # px between the label names across
RUN_NAME_CHARS = 20  # of the confusion matrix's run, in its title
METRICS_TITLE = "Validation accuracy and macro-F1"
CONFUSION_MIN_WIDTH = 220  # px: room for the label names and a few cells
LABELS_IN_CAPTION = 4  # with more, the per-label precision and recall are in the caption's tooltip alone


class ClassifierPlots(QWidget):
    """The classifier runs shown beside the loss (the live one, ticked ones): their accuracy and macro-F1 curves
    overlaid, and one run's confusion matrix; hidden while none is a classifier."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.runs: dict[Path, list[ClassifyMetrics]] = {}  # each classifier run's evaluations, in the order shown
        self.curves: dict[Path, dict[str, pg.PlotDataItem]] = {}  # each run's, by CURVE_STYLES name
        self.live: Path | None = None  # the run training (or trained last), whose confusion matrix is drawn
        self.matrix_run: Path | None = None  # the run whose confusion matrix is drawn
        self._labels: list[str] = []  # its label names
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
        # The keys to the line styles, side by side; which run is which colour, the loss plot's legend says
        legend = self.metrics_plot.addLegend(labelTextSize="9pt", colCount=len(CURVE_STYLES),
                                             brush=(255, 255, 255, 170), pen=BORDER)
        for name, style in CURVE_STYLES.items():
            legend.addItem(pg.PlotDataItem([0, 1], [0, 0], pen=pg.mkPen(MUTED, width=2, style=style)), name)
        legend.setParentItem(self.metrics_plot.vb)
        legend.anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-8, -8))  # bottom right: the curves rise to the top
        self.confusion_plot = add_plot(self.graphics.ci, 0, 1)
        self.confusion_plot.setTitle("Confusion matrix", size="10pt", bold=True)
        self.confusion_plot.setLabel("left", "true")
        self.confusion_plot.setLabel("bottom", "predicted")
        self.confusion_plot.invertY(True)  # the first label at the top, as a table reads
        self.confusion_plot.hideButtons()
        self.confusion_plot.setMinimumWidth(CONFUSION_MIN_WIDTH)
        self.confusion_plot.setMouseEnabled(x=False, y=False)
        self.confusion_plot.vb.sigResized.connect(self._name_columns)  # the names across fit the cells' width
        self.image = pg.ImageItem()
        self.image.setColorMap(CELL_COLOURS)
        self.confusion_plot.addItem(self.image)
        self.cell_texts: list[pg.TextItem] = []
        for column in (0, 1):  # halves: the matrix's title names its run, and its label names need room
            self.graphics.ci.layout.setColumnStretchFactor(column, 1)
        self.caption = QLabel()  # the latest evaluation in words: the per-class precision and recall
        self.caption.setObjectName("hint")
        self.caption.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.caption)
        self.hide()

    def show_run(self, run_dir: Path, events: list[ClassifyMetrics], colour: str, live: bool = False) -> None:
        """Draw this classifier run's evaluations so far (none yet, for a run just started) in its `colour`; the
        `live` run's confusion matrix is drawn while it is shown, else the last shown run's."""
        run_dir = Path(run_dir)
        self.runs[run_dir] = list(events)
        if live:
            self.live = run_dir
        if run_dir not in self.curves:
            self.curves[run_dir] = {
                name: self.metrics_plot.plot([], [], pen=pg.mkPen(colour, width=2, style=style),
                                             symbol=CURVE_SYMBOLS[name], symbolSize=6, symbolBrush=colour,
                                             symbolPen=None)
                for name, style in CURVE_STYLES.items()}
        self._draw()

    def add(self, run_dir: Path, events: list[ClassifyMetrics]) -> None:
        """New evaluations of a run (the live run's, as they come)."""
        if Path(run_dir) in self.runs and events:
            self.runs[Path(run_dir)].extend(events)
            self._draw()

    def remove(self, run_dir: Path) -> None:
        """Stop showing the run."""
        run_dir = Path(run_dir)
        self.runs.pop(run_dir, None)
        for curve in self.curves.pop(run_dir, {}).values():
            self.metrics_plot.removeItem(curve)
        if self.live == run_dir:
            self.live = None
        self._draw()

    def _draw(self) -> None:
        """Every run's curves (a few points each), and the confusion matrix and caption of one."""
        self.setVisible(bool(self.runs))
        for run_dir, history in self.runs.items():
            steps = [e.step for e in history]
            self.curves[run_dir]["accuracy"].setData(steps, [e.accuracy for e in history])
            self.curves[run_dir]["macro-F1"].setData(steps, [e.macro_f1 for e in history])
        last_step = max((e.step for history in self.runs.values() for e in history), default=0)
        if last_step:
            self.metrics_plot.setXRange(0, last_step, padding=0.04)
        self.metrics_plot.setToolTip(f"{METRICS_TITLE} of " + ", ".join(run_label(p.name) for p in self.runs))
        self.matrix_run = self.live if self.live in self.runs else next(reversed(self.runs), None)
        if self.matrix_run is None:
            return
        history = self.runs[self.matrix_run]
        latest = history[-1] if history else None
        self._draw_confusion(self.matrix_run, latest)
        if latest is None:
            self.caption.setText("Waiting for the first evaluation…")
            self.caption.setToolTip("")
        else:
            per_label = " · ".join(f"{name}: precision {p:.0%}, recall {r:.0%}"
                                   for name, p, r in zip(latest.labels, latest.precision, latest.recall, strict=True))
            overall = (f"{run_label(self.matrix_run.name)}, step {latest.step:,}: accuracy {latest.accuracy:.1%}, "
                       f"macro-F1 {latest.macro_f1:.3f}.")
            self.caption.setText(overall + (f" {per_label}" if len(latest.labels) <= LABELS_IN_CAPTION else ""))
            self.caption.setToolTip(per_label)

    def _draw_confusion(self, run_dir: Path, latest: ClassifyMetrics | None) -> None:
        for item in self.cell_texts:
            self.confusion_plot.removeItem(item)
        self.cell_texts = []
        name = _short(label_parts(run_dir.name)[0], RUN_NAME_CHARS)
        self.confusion_plot.setTitle(f"Confusion · {name}", size="10pt", bold=True)
        self.confusion_plot.setToolTip(f"The confusion matrix of {run_label(run_dir.name)}"
                                       + (f" at step {latest.step:,}" if latest else ""))
        self._labels = list(latest.labels) if latest is not None else []
        if not self._labels:
            self.image.clear()
            return
        counts = np.asarray(latest.confusion, dtype=float)
        n = len(self._labels)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        self.image.setImage(shares.T, levels=(0, 1))  # ImageItem's first axis is x: the predicted label
        self.image.setRect(0, 0, n, n)
        self.confusion_plot.getAxis("left").setTicks([[(i + 0.5, _short(label)) for i, label in
                                                       enumerate(self._labels)]])
        if n <= MOST_COUNTED:
            for i in range(n):
                for j in range(n):
                    colour = PANEL if shares[i, j] > 0.55 else TEXT
                    text = pg.TextItem(f"{int(counts[i, j]):,}", color=colour, anchor=(0.5, 0.5))
                    text.setPos(j + 0.5, i + 0.5)
                    self.confusion_plot.addItem(text)
                    self.cell_texts.append(text)
        self.confusion_plot.setRange(xRange=(0, n), yRange=(0, n), padding=0.02)
        self._name_columns()

    def _name_columns(self) -> None:
        """The predicted labels' names across, each cut to its column's width: whole, they ran into each other."""
        if not self._labels:
            return
        axis, view = self.confusion_plot.getAxis("bottom"), self.confusion_plot.vb
        (x0, x1), _ = view.viewRange()
        column = view.width() / max(x1 - x0, 1e-9)
        fits = QFontMetrics(axis.style["tickFont"] or axis.font())
        axis.setTicks([[(i + 0.5, fits.elidedText(label, Qt.TextElideMode.ElideRight, int(column) - TICK_GAP))
                        for i, label in enumerate(self._labels)]])


def _short(name: str, limit: int = LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"
