"""Live training plots: loss (raw and smoothed) with validation markers, learning rate, gradient norm, tokens/s;
for a distilled run also the two parts of its loss, dashed and dotted.

Data arrives in batches and is only copied into growing numpy columns (series.py); the plots redraw at most ten
times a second whatever the step rate (twice, while a run trains on every core: Pace), and pyqtgraph's peak
downsampling and clip-to-view keep 100,000+ points smooth. Each curve is a LiveCurve, so that new points repaint
only a strip at its end. The crosshair's readout is in
plot_readout.py, the Export button and the CSV table in plot_export.py.

Runs ticked for comparison are read back from their run folders by a SeriesLoader on a thread of its own
(app/common/background.py): a long run, or many at once, took seconds to read, and the window froze meanwhile.
The loss plot's y axis is the loss per token, or, for the validation curve alone, bits per character: chosen by
itself while the shown runs' tokenizers differ (their losses per token cannot be compared), unless the user chose.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGraphicsItem, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from .live_curve import LiveCurve, MarkerSeries
from .plot_export import export_button, write_metrics_csv
from .plot_items import add_plot
from .plot_readout import Crosshair, values_at
from .series import (CURVES, DEFAULT_SMOOTHING, DETAIL_CURVES, EVAL_CURVES, LOSS_PARTS, VAL_AXES, X_AXES, RunSeries,
                     ShownRuns, load_series)
from ..common.background import BackgroundThread, report_errors, start_in_background, stop_background
from ..common.style import MUTED, run_colour
from ..common.text import run_label



@dataclass(frozen=True)
class Pace:
    """How often the plots redraw: the loss plot at most every `refresh_s`, the small plots (which change slowly)
    every `details_s`. A live run's events reach the window as often as its loss plot redraws (worker.py)."""
    refresh_s: float
    details_s: float


LIVELY = Pace(0.1, 0.3)  # ten times a second: smooth to the eye
# While a run trains on every core of the machine (on the CPU: host_threads, lmcore.device), each millisecond the
# window draws is taken from training, twice over: the run's threads meet at a barrier after every operation, and
# one that the window holds up holds up the others (docs/performance.md, the twelfth look).
SPARING = Pace(0.5, 2.0)


def pace_beside(host_threads: int) -> Pace:
    """The pace for plots of a run that keeps `host_threads` of this machine's CPU busy (0: unknown)."""
    return SPARING if host_threads >= (os.cpu_count() or 1) else LIVELY


# A refresh due within this is done at once: a training run's events arrive as often as the loss plot refreshes
# (app/train/worker.py), and each batch is drawn as it arrives, in the same wake-up of the window's process
DUE_SLACK_S = 0.03
# Room left past the newest point while the view follows the data, so that it moves (and the axes, the costliest
# part of a repaint, are redrawn) only now and then: the x axis doubles (moving less often while a run with a
# planned end trains, PLANNED_FIRST_VIEW).
X_HEADROOM = 1.0
# While a run trains, its planned end (steps or tokens) is known: the view shows at least this share of it and never
# runs past it, so the steps axis moves a few times in a run instead of doubling from step 1
PLANNED_FIRST_VIEW = 1 / 8
Y_HEADROOM = 0.25
REFIT_BELOW = 0.4  # refit when the data fills less of the view than this (e.g. a compared run was removed)
X_AXIS_CHOICES = {"step": "Steps", "tokens": "Tokens", "elapsed": "Time"}
Y_AXIS_CHOICES = {"val_loss": "nats/token", "val_bits_per_char": "bits/char"}  # short: the row must fit 1024 px
BITS = "val_bits_per_char"  # the validation curve in bits per character (series.VAL_AXES)
# After a run read back arrives, the refreshes before the next is read: the first draws it, the second comes after
# its painting. Reading holds Python's lock most of the time, and drawing or painting meanwhile took far longer
# (docs/performance.md, the tenth look).
SETTLE_REFRESHES = 2
# Each run's curves (series.CURVES), and the plot (TrainingPlots attribute) each is drawn in.
CURVE_PLOTS = {"raw_loss": "loss_plot", "smoothed_loss": "loss_plot", "text_loss": "loss_plot",
               "teacher_loss": "loss_plot", "val_loss": "loss_plot",
               "lr": "lr_plot", "grad_norm": "grad_plot", "tokens_per_s": "speed_plot", "val_accuracy": "accuracy_plot"}
EVERY_CURVE = frozenset(CURVES)
LOSS_CURVES = EVERY_CURVE - frozenset(DETAIL_CURVES)  # what a refresh without the small plots draws
PART_STYLES = {"text_loss": Qt.PenStyle.DashLine, "teacher_loss": Qt.PenStyle.DotLine}  # series.LOSS_PARTS' lines


@dataclass
class RunCurves:
    raw_loss: LiveCurve
    smoothed_loss: LiveCurve
    text_loss: LiveCurve
    teacher_loss: LiveCurve
    val_loss: MarkerSeries
    lr: LiveCurve
    grad_norm: LiveCurve
    tokens_per_s: LiveCurve
    val_accuracy: MarkerSeries

    def items(self) -> dict[str, LiveCurve | MarkerSeries]:
        return {name: getattr(self, name) for name in CURVE_PLOTS}


class SeriesLoader(QObject):
    """Reads runs back from their run folders (series.load_series) on a thread of its own; each answer repeats
    its request's id, so that the plots can drop answers they no longer wait for."""

    loaded = Signal(int, object, object)  # request id, run folder, RunSeries
    failed = Signal(int, object, str)  # request id, run folder, a message for the user

    @Slot(int, object, float, bool)
    def load(self, request_id: int, run_dir: Path, smoothing: float, metrics: bool) -> None:
        report_errors(lambda: self.loaded.emit(request_id, run_dir, load_series(run_dir, smoothing, metrics)),
                      lambda message: self.failed.emit(request_id, run_dir, message))


class TrainingPlots(QWidget):
    """The plots and their controls. Shows the pinned run (the one training, or trained last) and any runs
    ticked for comparison, each in its own colour."""

    exported = Signal(str)  # a message for the status bar
    load_failed = Signal(str)  # a message for the status bar: a ticked run could not be read
    run_read = Signal(object, object)  # a ticked run read back and shown: its folder, its RunSeries
    run_removed = Signal(object)  # a run no longer shown: its folder
    _load_requested = Signal(int, object, float, bool)  # to the loader: request id, run folder, smoothing, metrics

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.series = ShownRuns()  # each shown run's data, by run folder, and which of its curves are stale
        self.loader: SeriesLoader | None = None  # with its thread, started for the first run to read
        self._loader_thread: BackgroundThread | None = None
        self._request_ids = itertools.count(1)
        self._to_read: dict[Path, bool] = {}  # runs waiting to be read, in order, and whether with their metrics
        self._reading: tuple[Path, int] | None = None  # the run being read, and the id of its request
        self._settling = 0  # refreshes to wait before reading the next run (SETTLE_REFRESHES)
        self._y_axis_chosen = False  # by the user: then the shown runs' tokenizers no longer choose it
        self._x_spans: dict[pg.PlotItem, float] = {}  # each plot's view width, to tell a zoom in
        self._colours: dict[Path, str] = {}  # of the runs shown (colour_of)
        self.curves: dict[Path, RunCurves] = {}
        self.pinned: Path | None = None
        self._compared: list[Path] = []
        self._curves_in: dict[pg.PlotItem, tuple[str, ...]] = {}  # each plot's curves (CURVE_PLOTS)
        self._last_refresh = self._last_details = 0.0  # time.monotonic() of the last refresh, and of the small plots'
        self.pace = LIVELY  # SPARING while a run trains on every core (begin_live_run)
        self._following: set[pg.PlotItem] = set()  # plots whose view follows the data (until the user zooms)
        self.x_key = "step"  # the x-axis choice: a column of the steps and evaluations
        self._planned_end: dict[str, float] = {}  # the live run's last step and tokens, while it trains
        self._live = False  # whether a run trains (then the views keep room for its new points)

        self.x_axis = QComboBox()
        for key, label in X_AXIS_CHOICES.items():
            self.x_axis.addItem(label, key)
        self.x_axis.setToolTip("What the horizontal axis counts: optimizer steps, tokens trained on, or training "
                               "time (pauses excluded). Tokens compare runs with different batch sizes fairly.")
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(int(DEFAULT_SMOOTHING * 100))
        self.smoothing.setFixedWidth(90)
        self.smoothing.setToolTip("Exponential moving average of the training loss, as in TensorBoard: 0 shows "
                                  "the raw loss, 0.6 to 0.9 shows the trend through the noise, 0.99 is very smooth.")
        self.smoothing_value = QLabel()
        self.smoothing_value.setMinimumWidth(30)
        self.y_axis = QComboBox()
        for key, label in Y_AXIS_CHOICES.items():
            self.y_axis.addItem(label, key)
        self.y_axis.setToolTip("What the loss plot's vertical axis measures. A run's loss per token cannot be "
                               "compared with that of a run whose tokenizer differs (a word is worth several "
                               "characters); bits per character can, for the validation curve of runs that "
                               "evaluated their whole validation split. Chosen by itself while the shown runs' "
                               "tokenizers differ, until you choose.")
        self.log_y = QCheckBox("Log")
        self.log_y.setToolTip("Plot the loss on a logarithmic axis: late, small improvements become visible.")
        fit = QPushButton("Fit")
        fit.setToolTip("Zoom to all the data and follow new points again (zooming or panning stops following).")

        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        for widget in (QLabel("X axis"), self.x_axis, QLabel(" Y axis"), self.y_axis, QLabel(" Smoothing"),
                       self.smoothing, self.smoothing_value, self.log_y):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(fit)
        controls.addWidget(export_button(self, self.export_png, self.export_csv))

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setSpacing(6)
        self.loss_plot = self._add_plot(0, 0, "Loss", "loss (nats/token)", colspan=4)
        self.lr_plot = self._add_plot(1, 0, "Learning rate", "")
        self.grad_plot = self._add_plot(1, 1, "Gradient norm", "")
        self.speed_plot = self._add_plot(1, 2, "Tokens per second", "")
        # In the layout only while a shown run measures accuracy (_show_accuracy_plot): else its column is empty
        self.accuracy_plot = self._add_plot(1, 3, "Validation accuracy", "")
        self.accuracy_plot.setToolTip("A masked language model's share of masked tokens predicted right, at each "
                                      "evaluation. A classifier's accuracy is in its own plots, below.")
        self.graphics.ci.removeItem(self.accuracy_plot)
        self._plots = (self.loss_plot, self.lr_plot, self.grad_plot, self.speed_plot, self.accuracy_plot)
        for plot in self._plots:
            self._curves_in[plot] = tuple(name for name in CURVE_PLOTS if self._plot_of(name) is plot)
        self.graphics.ci.layout.setRowStretchFactor(0, 5)
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        # Top right, where a falling loss leaves room; translucent, so that curves under it still show
        self.legend = self.loss_plot.addLegend(offset=(-8, 8), labelTextSize="9pt", brush=(255, 255, 255, 170),
                                               pen=(217, 220, 227))
        self.legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)  # over the curves: kept as a picture
        # One entry per run (its smoothed loss), and one saying what the markers are.
        self._validation_key = pg.PlotDataItem([0], [0], symbol="o", symbolSize=7, pen=None, antialias=True,
                                               symbolPen=pg.mkPen(MUTED, width=1.5), symbolBrush="#ffffff")
        # ... and, while a distilled run is shown, what its loss parts' lines are
        self._part_keys = {name: pg.PlotDataItem([0, 1], [0, 0], pen=pg.mkPen(MUTED, width=1.5, style=style))
                           for name, style in PART_STYLES.items()}
        self._part_keys_shown = False
        self.crosshair = Crosshair(self.loss_plot, self.values_at)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.crosshair.label)

        self.x_axis.currentIndexChanged.connect(self._on_x_axis_changed)
        self.y_axis.currentIndexChanged.connect(self._on_y_axis_changed)
        self.y_axis.activated.connect(self._on_y_axis_chosen)  # the user's choice only, not the plots' own
        self.smoothing.valueChanged.connect(self._on_smoothing_changed)
        self.log_y.toggled.connect(self._on_log_y_toggled)
        fit.clicked.connect(self.fit)
        self._on_smoothing_changed(self.smoothing.value())
        self._on_x_axis_changed()

        # Refreshes are asked for by what changes (ShownRuns.on_change): a window with nothing new to draw sleeps
        self._refresh_timer = QTimer(self, singleShot=True)
        self._refresh_timer.timeout.connect(self._on_refresh_due)
        self.series.on_change = self._refresh_soon

    def _add_plot(self, row: int, col: int, title: str, y_label: str, colspan: int = 1) -> pg.PlotItem:
        plot = add_plot(self.graphics.ci, row, col, colspan)
        plot.setTitle(title, size="10pt", bold=True)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        plot.disableAutoRange()  # the view follows the data in steps (_keep_in_view), not at every point
        plot.hideButtons()  # the Fit button does what pyqtgraph's "A" button would
        # Everything a plot shows lies inside it: Qt then skips the plot (and its items' bounds, asked of Python)
        # when it repaints a strip elsewhere
        plot.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape)
        plot.vb.sigRangeChangedManually.connect(lambda _: self._following.discard(plot))
        plot.vb.sigXRangeChanged.connect(lambda *_: self._redraw_after_zoom(plot))
        self._following.add(plot)
        plot.getAxis("left").setWidth(52)
        # Fewer labelled ticks than pyqtgraph's default, which packs labels edge to edge on a small plot
        plot.getAxis("bottom").setStyle(textFillLimits=[(0, 0.8), (2, 0.45), (4, 0.3), (6, 0.2)])
        for axis in ("left", "bottom"):
            plot.getAxis(axis).enableAutoSIPrefix(False)  # plain numbers; no "(x0.001)" on an empty plot
            # Grid lines at the major and minor ticks only: pyqtgraph's third level of faint lines makes redrawing
            # an axis when the view moves much costlier (docs/performance.md, the third look)
            plot.getAxis(axis).setStyle(maxTickLevel=1)
            plot.getAxis(axis).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)  # redrawn only when moved
        if y_label:
            plot.setLabel("left", y_label)
        return plot

    # ---- what is shown ---------------------------------------------------------------------------
    def begin_live_run(self, run_dir: Path, history: list = (), max_steps: int = 0,
                       tokens_per_step: int = 0, classifier: bool = False, pace: Pace = LIVELY) -> None:
        """Pin the run being trained; `history` holds its earlier metric events when it is resumed. `max_steps` and
        `tokens_per_step` (when known) say where it will end on the steps and tokens axes. A `classifier`'s accuracy
        is left to the classifier's own plots (classify_plots.py). `pace`: how often to redraw while it trains."""
        previous, self.pinned = self.pinned, Path(run_dir)
        self.pace = pace
        self._planned_end = {"step": max_steps, "tokens": max_steps * tokens_per_step} if max_steps else {}
        self._live = True
        self._remove(self.pinned)
        self.series.show(self.pinned, list(history))
        self.series[self.pinned].classifier = classifier
        self._read(self.pinned, metrics=False)  # its tokenizer: the metrics come live
        if previous not in (None, self.pinned) and previous not in self._compared:  # the resumed run stays
            self._remove(previous)

    def add_steps(self, events: list) -> None:
        if self.pinned in self.series:
            self.series.add_steps(self.pinned, events)

    def add_evals(self, events: list) -> None:
        if self.pinned in self.series:
            self.series.add_evals(self.pinned, events)

    def compare(self, run_dirs: list[Path]) -> None:
        """Show these runs beside the pinned one: each is read from its run folder in the background, and shown
        when it has been (a run shown or being read already is not read again)."""
        self._compared = [Path(p) for p in run_dirs]
        loading = [*self._to_read, *([self._reading[0]] if self._reading else [])]
        for path in [p for p in [*self.series, *loading] if p not in self._compared and p != self.pinned]:
            self._remove(path)
        for path in self._compared:
            if path != self.pinned and path not in self.series and path not in loading:
                self._read(path)

    def forget(self, run_dir: Path) -> None:
        """A run was deleted or renamed: stop showing it."""
        run_dir = Path(run_dir)
        self._compared = [p for p in self._compared if p != run_dir]
        if self.pinned == run_dir:
            self.pinned = None
        self._remove(run_dir)

    def shown_runs(self) -> list[Path]:
        return list(self.series)

    def is_loading(self) -> bool:
        """Whether runs are still being read, to be shown when they have been."""
        return self._reading is not None or bool(self._to_read)

    def shutdown(self) -> None:
        """End the loader's thread (on close; background.py does it when the application quits). Runs still
        being read are not shown."""
        if self.loader is not None:
            stop_background(self._loader_thread)
            self._load_requested.disconnect(self.loader.load)
            self.loader = self._loader_thread = None
            self._to_read, self._reading = {}, None

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    def _start_loader(self) -> None:
        self.loader = SeriesLoader()
        self._load_requested.connect(self.loader.load)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_load_failed)
        self._loader_thread = thread = start_in_background(self.loader, "series-loader")
        self.destroyed.connect(lambda: _stop_unless_gone(thread))  # else each plots widget left a thread behind

    def _read(self, path: Path, metrics: bool = True) -> None:
        """Have the loader read the run (`metrics` False: its tokenizer alone), after the runs asked for before."""
        self._to_read[path] = metrics
        self._read_next()

    def _read_next(self) -> None:
        """Ask the loader for the next run once the last has been drawn and painted (SETTLE_REFRESHES; refresh
        calls this)."""
        if self._reading is not None or self._settling or not self._to_read:
            return
        if self.loader is None:
            self._start_loader()
        path = next(iter(self._to_read))
        metrics = self._to_read.pop(path)
        self._reading = (path, next(self._request_ids))
        self._load_requested.emit(self._reading[1], path, self.series.smoothing, metrics)

    def _on_loaded(self, request_id: int, path: Path, series: RunSeries) -> None:
        if self._reading != (path, request_id):
            return  # unticked, or asked for again, since
        self._reading = None
        if path in self.series:  # the live run, whose tokenizer alone was read: nothing to draw
            self.series.set_tokenizer(path, series.tokenizer)
            self._read_next()
        else:
            self.series.put(path, series)
            self._settling = SETTLE_REFRESHES
            self.run_read.emit(path, series)

    def _on_load_failed(self, request_id: int, path: Path, message: str) -> None:
        if self._reading == (path, request_id):
            self._reading = None
            self.load_failed.emit(f"Could not show {run_label(path.name)}: {message}")
            self._read_next()

    def _remove(self, path: Path) -> None:
        self.series.remove(path)
        self.run_removed.emit(path)
        self._to_read.pop(path, None)
        if self._reading is not None and self._reading[0] == path:
            self._reading = None  # its answer will be dropped
        curves = self.curves.pop(path, None)
        self._colours.pop(path, None)
        if curves is not None:
            for name, curve in curves.items().items():
                for item in curve.items:
                    self._plot_of(name).removeItem(item)
            for item in (curves.smoothed_loss.history, curves.val_loss.item):  # whichever the legend shows
                self.legend.removeItem(item)
            self._add_keys()

    # ---- drawing ---------------------------------------------------------------------------------
    def _redraw_after_zoom(self, plot: pg.PlotItem) -> None:
        """A live curve's newest points were thinned out for the scale they were drawn at: after a zoom in (the
        end of a run closes in on its data), draw the plot's curves afresh, or they show gaps and straight lines.
        Zooming out leaves them finer than needed, which looks the same."""
        (x0, x1), _ = plot.vb.viewRange()
        previous, self._x_spans[plot] = self._x_spans.get(plot), x1 - x0
        if previous is not None and x1 - x0 < 0.9 * previous:
            self.series.mark_all_stale(curves=self._curves_in.get(plot, ()))

    def _plot_of(self, curve: str) -> pg.PlotItem:
        return getattr(self, CURVE_PLOTS[curve])

    def colour_of(self, path: Path) -> str:
        """The run's colour in the plots (run_colour), chosen when it is first asked for, e.g. by other panels
        that draw the run, before its curves are."""
        if path not in self._colours:
            self._colours[path] = run_colour(path, taken=set(self._colours.values()))
        return self._colours[path]

    def _curves_for(self, path: Path) -> RunCurves:
        if path not in self.curves:
            colour = QColor(self.colour_of(path))
            faint = QColor(colour)
            faint.setAlpha(60)
            # Noisy curves: peak downsampling (the spikes stay visible), no antialiasing (invisible on noise, and
            # costly on thousands of points). Smooth lines: antialiased, mean downsampled.
            curves = RunCurves(
                raw_loss=_noisy_curve(pg.mkPen(faint, width=1)),
                smoothed_loss=_smooth_curve(pg.mkPen(colour, width=2)),
                **{name: _smooth_curve(pg.mkPen(colour, width=1.5, style=style))
                   for name, style in PART_STYLES.items()},
                val_loss=MarkerSeries(symbol="o", symbolSize=7, symbolPen=pg.mkPen(colour, width=1.5),
                                      symbolBrush=pg.mkBrush("#ffffff")),
                lr=_smooth_curve(pg.mkPen(colour, width=1.5)),
                grad_norm=_noisy_curve(pg.mkPen(colour, width=1)),
                tokens_per_s=_noisy_curve(pg.mkPen(colour, width=1)),
                val_accuracy=MarkerSeries(pen=pg.mkPen(colour, width=1.5), symbol="o", symbolSize=5,
                                          symbolPen=pg.mkPen(colour, width=1.5), symbolBrush=pg.mkBrush("#ffffff")),
            )
            for name, curve in curves.items().items():
                for item in curve.items:
                    self._plot_of(name).addItem(item)  # data items take the plot's peak downsampling and clipping
                if isinstance(curve, LiveCurve) and curve.history.opts["antialias"]:
                    curve.history.setDownsampling(auto=True, method="mean")
            self.curves[path] = curves
            self._style_for_y_axis(path)
            self.legend.addItem(self._legend_item(path), self._legend_text(path))
            self._add_keys()  # last, after the runs
        return self.curves[path]

    # ---- the y axis: loss per token, or validation bits per character ---------------------------
    def _in_bits(self) -> bool:
        return self.series.val_field == BITS

    def _choose_y_axis(self) -> None:
        """Bits per character while the shown runs' tokenizers differ, else the loss; unless the user chose.
        Each refresh asks, before it draws: the runs shown change, and their tokenizers are known once read."""
        if not self._y_axis_chosen:
            bits = self.series.tokenizers_differ()
            if bits != self._in_bits():
                self.y_axis.setCurrentIndex(self.y_axis.findData(BITS if bits else "val_loss"))

    def _on_y_axis_chosen(self) -> None:
        self._y_axis_chosen = True
        self.refresh(details=False)  # now, rather than at the next tick: the markers are on the old scale

    def _on_y_axis_changed(self) -> None:
        """The validation curves are to be drawn afresh on the new axis (by the refresh under way, or the next),
        and the loss plot fitted to them."""
        self.series.set_val_field(self.y_axis.currentData())
        bits = self._in_bits()
        self.loss_plot.setTitle("Validation loss" if bits else "Loss", size="10pt", bold=True)
        self.loss_plot.setLabel("left", VAL_AXES[self.series.val_field])
        for path in self.curves:
            self._style_for_y_axis(path)
        self._fill_legend()
        self._following.add(self.loss_plot)
        self._keep_in_view(self.loss_plot, tight=True)

    def _style_for_y_axis(self, path: Path) -> None:
        """In bits per character the training loss and its parts, which have none, are hidden, and the validation
        markers are joined into a curve."""
        curves, bits = self.curves[path], self._in_bits()
        for curve in (curves.raw_loss, curves.smoothed_loss, curves.text_loss, curves.teacher_loss):
            for item in curve.items:
                item.setVisible(not bits)
        markers = curves.val_loss.item
        if bits != (markers.opts["pen"] is not None):
            markers.opts["pen"] = pg.mkPen(self._colours[path], width=1.5) if bits else None  # setPen(None): NoPen
            markers.updateItems()

    def _fill_legend(self) -> None:
        """One entry per run, in the order shown (its smoothed loss, or in bits per character its validation
        curve), then the keys (_add_keys)."""
        self.legend.clear()
        for path in [p for p in self.series if p in self.curves]:
            self.legend.addItem(self._legend_item(path), self._legend_text(path))
        self._add_keys()

    def _add_keys(self) -> None:
        """Put the keys after the runs' entries: with the loss, one saying what the markers are, and while a
        distilled run is shown, one for each of its loss parts' lines."""
        for key in (self._validation_key, *self._part_keys.values()):
            self.legend.removeItem(key)
        if self.curves and not self._in_bits():
            self.legend.addItem(self._validation_key, "validation")
        self._part_keys_shown = self._wants_part_keys()
        if self._part_keys_shown:
            for name, key in self._part_keys.items():
                self.legend.addItem(key, LOSS_PARTS[name])

    def _wants_part_keys(self) -> bool:
        return bool(self.curves) and not self._in_bits() and self.series.any_distilled()

    def _legend_item(self, path: Path) -> pg.PlotDataItem:
        curves = self.curves[path]
        return curves.val_loss.item if self._in_bits() else curves.smoothed_loss.history

    def _legend_text(self, path: Path) -> str:
        """The run's name; in bits per character, with how many of its evaluations have none (those that covered
        only part of the validation split), rather than points at 0."""
        series = self.series[path]
        text = run_label(series.name)
        missing = series.evals_without(BITS) if self._in_bits() else 0
        if missing and missing == series.evals.size:
            text += " (no bits per character: part of the validation split evaluated)"
        elif missing:
            text += f" ({missing} of {series.evals.size} evaluations without bits per character)"
        return text

    def _update_legend_text(self, path: Path) -> None:
        label = self.legend.getLabel(self._legend_item(path))
        text = self._legend_text(path)
        if label is not None and label.text != text:
            label.setText(text)

    def _refresh_soon(self, delay_s: float | None = None) -> None:
        """Refresh once the pace's refresh_s has passed since the last refresh (at once if it has), or after `delay_s`;
        whichever is asked for first. What changes in between is drawn together."""
        if delay_s is None:
            delay_s = self._last_refresh + self.pace.refresh_s - time.monotonic()
            delay_s = 0.0 if delay_s < DUE_SLACK_S else delay_s
        delay_ms = max(0, round(delay_s * 1000))
        if not self._refresh_timer.isActive() or self._refresh_timer.remainingTime() > delay_ms:
            self._refresh_timer.start(delay_ms)

    def _on_refresh_due(self) -> None:
        """The small plots follow at most every pace.details_s: they change slowly, and each repaint costs as
        much as the loss plot's, CPU time taken from training. Hidden plots (another tab is shown) are left stale
        until they are shown again."""
        if not self.isVisible():
            return
        self.refresh(details=time.monotonic() - self._last_details >= self.pace.details_s - DUE_SLACK_S)
        self._refresh_what_is_left()

    def _refresh_what_is_left(self) -> None:
        if self.series.has_stale():  # the small plots, when no new steps come to bring their turn
            self._refresh_soon(self._last_details + self.pace.details_s - time.monotonic())
        elif self._settling:  # a run just read is to be painted before the next is read (_read_next)
            self._refresh_soon()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.refresh()
        self._refresh_what_is_left()

    def refresh(self, details: bool = True) -> None:
        """Redraw the curves that changed since they were last drawn; `details`: the small plots' too."""
        self._last_refresh = time.monotonic()
        self._choose_y_axis()
        details = details or self._settling == SETTLE_REFRESHES  # a run just read is drawn whole, while none is read
        if details:
            self._last_details = self._last_refresh
        redrawn = set()
        for path, series, changed in self.series.take_stale(EVERY_CURVE if details else LOSS_CURVES):
            sources, curves = series.sources(self.series.val_field), self._curves_for(path)
            for name, grown in changed:
                curve, (xs, ys, field) = getattr(curves, name), sources[name]
                if (name in LOSS_PARTS and not series.is_distilled()) or (name == "val_accuracy" and series.classifier):
                    continue  # no parts to draw; a classifier's accuracy is in its own plots
                if name in EVAL_CURVES:  # a few points; some may have none (bits per character, accuracy)
                    curve.replace(*_finite(xs[self.x_key], ys[field]))
                    if name == "val_loss" and self._in_bits():
                        self._update_legend_text(path)
                else:
                    (curve.extend if grown else curve.replace)(xs[self.x_key], ys[field])
                redrawn.add(self._plot_of(name))
        self._show_accuracy_plot(self.series.any_accuracy())
        if self._part_keys_shown != self._wants_part_keys():
            self._add_keys()  # a distilled run's first steps arrived, or its curves were removed
        for plot in redrawn:
            self._keep_in_view(plot)
        self._settling = max(self._settling - 1, 0)
        self._read_next()

    def _show_accuracy_plot(self, on: bool) -> None:
        """Put the accuracy plot in the small plots' row, or take it out (a run without accuracy leaves no empty
        plot)."""
        layout = self.graphics.ci
        if on != (self.accuracy_plot in layout.items):
            if on:
                layout.addItem(self.accuracy_plot, row=1, col=3)
            else:
                layout.removeItem(self.accuracy_plot)

    def _keep_in_view(self, plot: pg.PlotItem, tight: bool = False) -> None:
        """Keep all the data in view while the plot follows it, moving the view in steps (with headroom past
        the newest point) rather than at every new point: each move redraws the axes."""
        if plot not in self._following:
            return
        tight = tight or not self._live  # runs that no longer grow, overlaid: no room to keep for new points
        # From the data itself, in view coordinates: pyqtgraph's own bounds only cover what is clipped to the view
        curves = ("val_loss",) if plot is self.loss_plot and self._in_bits() else self._curves_in[plot]
        bounds = self.series.bounds(curves, self.x_key, log_y=plot.getAxis("left").logMode)
        if bounds is None:
            return
        x0, x1, y0, y1 = bounds
        (view_x0, view_x1), (view_y0, view_y1) = plot.vb.viewRange()
        x_span, y_span = max(x1 - x0, 1e-9), max(y1 - y0, 0.1 * max(abs(y0), abs(y1)), 1e-9)
        y0, y1 = (y0 + y1 - y_span) / 2, (y0 + y1 + y_span) / 2  # a flat curve (constant learning rate) centred
        right = self._right_edge(x1, x_span)
        # refit when the data, with its headroom, fills much less of the view than it would after a refit
        if tight or x0 < view_x0 or x1 > view_x1 or right - x0 < REFIT_BELOW * (1 + X_HEADROOM) * (view_x1 - view_x0):
            plot.setXRange(x0, x1 if tight else right, padding=0.02)
        if tight or y0 < view_y0 or y1 > view_y1 or y_span < REFIT_BELOW * (view_y1 - view_y0):
            # room on the side the data is heading (down, for a falling loss)
            below = Y_HEADROOM * y_span if not tight and y0 < view_y0 else 0.0
            above = Y_HEADROOM * y_span if not tight and y1 > view_y1 else 0.0
            plot.setYRange(y0 - below, y1 + above, padding=0.06)
        plot.vb.updateMatrix()  # move the items now: pyqtgraph would in the next paint, and then paint again

    def _right_edge(self, x1: float, x_span: float) -> float:
        """Where the view ends while it follows data that ends at x1: X_HEADROOM of the data's span past it,
        within [PLANNED_FIRST_VIEW, 1] of the live run's planned end when the x axis has one."""
        right = x1 + X_HEADROOM * x_span
        end = self._planned_end.get(self.x_key, 0)
        if end >= x1:
            right = min(max(right, PLANNED_FIRST_VIEW * end), end)
        return right

    def end_live_run(self) -> None:
        """Training ended: the plots that follow the data drop the room they kept for new points."""
        self._planned_end, self._live, self.pace = {}, False, LIVELY
        self.refresh()
        for plot in self._plots:
            self._keep_in_view(plot, tight=True)  # if it follows

    def fit(self) -> None:
        """Show all the data, and follow new points again."""
        self.refresh()
        for plot in self._plots:
            self._following.add(plot)
            self._keep_in_view(plot, tight=True)

    def _on_log_y_toggled(self, on: bool) -> None:
        self.loss_plot.setLogMode(y=on)
        self.series.mark_all_stale()  # the tails: only the history items map their points to the log axis
        self.fit()

    def _on_x_axis_changed(self) -> None:
        self.x_key = self.x_axis.currentData()
        for plot in self._plots:
            plot.setLabel("bottom", X_AXES[self.x_key])
        self.series.mark_all_stale()
        self.fit()

    def _on_smoothing_changed(self, value: int) -> None:
        self.smoothing_value.setText(f"{value / 100:.2f}")
        self.series.set_smoothing(value / 100)

    def values_at(self, x: float) -> list[str]:
        """The crosshair's reading at x, in rich-text pieces (plot_readout.values_at)."""
        return values_at(x, self.x_key, self.series, self._colours)

    # ---- export ----------------------------------------------------------------------------------
    def export_png(self, path: Path) -> None:
        self.refresh()
        self.graphics.grab().save(str(path))
        self.exported.emit(f"Saved the plots to {path}")

    def export_csv(self, path: Path) -> None:
        write_metrics_csv(path, self.series.values())
        self.exported.emit(f"Saved the metrics to {path}")


# Points drawn per pixel of plot width, at most. Drawing is most of a repaint's cost, and the window's CPU is taken
# from training, which shares the cores: fewer points, faster training.
NOISY_POINTS_PER_PIXEL = 1.0  # a (low, high) pair every 2 pixels: the band of noise and its spikes look the same
SMOOTH_POINTS_PER_PIXEL = 0.25  # a smooth line needs a point only every few pixels


def _stop_unless_gone(thread: BackgroundThread) -> None:
    try:
        stop_background(thread)
    except RuntimeError:  # deleted before the plots, as Python exits: Qt would have aborted had it still run
        pass


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points that have a value: an evaluation without bits per character is left out, not drawn at 0."""
    keep = np.isfinite(y)
    return (x, y) if keep.all() else (x[keep], y[keep])


def _noisy_curve(pen) -> LiveCurve:
    return LiveCurve(pen, antialias=False, points_per_pixel=NOISY_POINTS_PER_PIXEL / 2)  # peak mode: 2 a bucket


def _smooth_curve(pen) -> LiveCurve:
    return LiveCurve(pen, antialias=True, points_per_pixel=SMOOTH_POINTS_PER_PIXEL)
