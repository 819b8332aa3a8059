"""The Train tab: the form on the left, the run's progress and live plots on the right, Start/Pause/Stop."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QMarginsF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QMessageBox, QPushButton, QScrollArea, QSplitter, QVBoxLayout,
                               QWidget)

from lmcore.metrics import read_metric_events
from lmcore.progress import RemainingTime, mfu
from lmcore.runs import RunFolder

from .classify_plots import ClassifierPlots
from .plots import TrainingPlots, pace_beside
from ..common.style import ACCENT, BORDER, PANEL, TEXT, WINDOW, set_tone
from ..common.text import format_duration, run_label
from ..common.widgets import banner
from .form import TrainForm
from .worker import RunFollower, TrainingWorker

IDLE, PREPARING, RUNNING, PAUSED, STOPPING = "idle", "preparing", "running", "paused", "stopping"
START_KEYS, PAUSE_KEYS, STOP_KEYS = "Ctrl+Return", "Ctrl+P", "Ctrl+."
# Progress, speed and time left once a second, as `top` does: text that changes faster cannot be read, and each
# change repaints the labels' parents too (their style sheets' backgrounds), CPU time taken from training
READOUT_INTERVAL_S = 1.0
PLOT_AXIS_MIN_WIDTH, PLOT_SLIDER_MIN_WIDTH = 68, 44  # what the plots' axis choices and slider keep when squeezed


class RunProgress(QWidget):
    """A progress bar painted by hand. Qt's QProgressBar animates under the Fusion style and its busy indicator
    never stops: 30 repaints a second of the window behind it, CPU time taken from training (about 5% of a core
    on a 2-core machine). This one repaints only itself, and only when told something new."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # paints every pixel: Qt need not repaint what lies behind
        self.setFixedHeight(18)
        self.fraction, self.text = 0.0, ""

    def show_progress(self, fraction: float, text: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if (fraction, text) != (self.fraction, self.text):
            self.fraction, self.text = fraction, text
            self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(WINDOW))
        frame = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QColor(BORDER))
        painter.setBrush(QColor(PANEL))
        painter.drawRoundedRect(frame, 4, 4)
        if self.fraction > 0:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(ACCENT))
            painter.drawRoundedRect(frame.adjusted(1, 1, -1, -1).marginsRemoved(
                QMarginsF(0, 0, (frame.width() - 2) * (1 - self.fraction), 0)), 3, 3)
        painter.setPen(QColor(TEXT))
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.text)


class TrainTab(QWidget):
    """Starts runs (new, resumed or fine-tuned) and shows the one in progress. A TrainingWorker supervises the
    process that trains; this tab only reacts to its signals and forwards button presses to it."""

    training_started = Signal(object)  # TrainingWorker: other views may listen to it too
    training_ended = Signal(object)  # Path | None: the run folder, once its thread has ended
    state_changed = Signal(str)
    speed_changed = Signal(float)  # tokens/s, at most every READOUT_INTERVAL_S

    def __init__(self, runs_dir: Path, preset_dirs: list[Path], user_presets_dir: Path,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.runs_dir = Path(runs_dir)
        self.worker: TrainingWorker | None = None
        self.state = IDLE
        self._max_steps = 0
        self._tokens_per_step = 0
        self._run_dir: Path | None = None
        self._last_readout = 0.0  # time.monotonic() of the last progress and speed update
        self._remaining = RemainingTime(max_steps=1, eval_interval=1)  # the live run's, from its Started event
        self._flops: tuple[float, float | None] = (0.0, None)  # its FLOPs per token and peak FLOP/s, for MFU

        self.form = TrainForm(preset_dirs, user_presets_dir)
        self.plots = TrainingPlots()
        _let_plot_controls_give_way(self.plots)
        self.classifier_plots = ClassifierPlots()  # below the loss, while a classifier run is shown
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("primary")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.pause_button.setToolTip(f"Pause or resume training ({PAUSE_KEYS}). Nothing is lost while paused.")
        self.stop_button.setToolTip(f"Stop training and save a checkpoint ({STOP_KEYS}); the run can be "
                                    "resumed later from the runs list.")
        self.run_title = QLabel("No run yet")
        self.run_title.setObjectName("runTitle")
        self.run_title.setMinimumWidth(60)  # a long name is cut, rather than widening the window
        self.state_label = QLabel()
        self.state_label.setObjectName("hint")
        self.progress = RunProgress()
        self.banner = banner("info")  # _show_banner sets the tone of each message

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.form)
        # never narrower than the form: with no horizontal scroll bar, a narrower column would cut its fields off
        scroll.setMinimumWidth(self.form.least_width() + scroll.verticalScrollBar().sizeHint().width()
                               + 2 * scroll.frameWidth())
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 2)
        buttons.addWidget(self.pause_button, 1)
        buttons.addWidget(self.stop_button, 1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(8, 8, 2, 8)  # 2 px each side of the handle: the tab fits 1024 px
        left_layout.addWidget(scroll, 1)
        left_layout.addWidget(self.form.summary)
        left_layout.addLayout(buttons)

        header = QHBoxLayout()
        header.addWidget(self.run_title)
        header.addWidget(self.state_label)
        header.addStretch(1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(2, 8, 8, 8)
        right_layout.addLayout(header)
        right_layout.addWidget(self.progress)
        right_layout.addWidget(self.banner)
        self.plots_splitter = QSplitter(Qt.Orientation.Vertical)
        self.plots_splitter.addWidget(self.plots)
        self.plots_splitter.addWidget(self.classifier_plots)
        self.plots_splitter.setStretchFactor(0, 3)
        self.plots_splitter.setStretchFactor(1, 2)
        right_layout.addWidget(self.plots_splitter, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([290, 720])  # the plots' controls at their natural width in a 1280-pixel window
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self.form.validated.connect(lambda _: self._update_controls())
        self.plots.run_read.connect(self._on_run_read)
        self.plots.run_removed.connect(self.classifier_plots.remove)
        self._update_controls()

    # ---- starting --------------------------------------------------------------------------------
    def start(self) -> None:
        """Train a new run (or fine-tune) with the form's settings."""
        if self.state != IDLE or not self.form.validate():
            return
        warning = self.form.unknown_text_warning
        if warning and QMessageBox.question(self, "Train anyway?", f"{warning}\n\nTrain anyway?", QMessageBox.StandardButton.Yes |
                                            QMessageBox.StandardButton.No, QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
            return
        self.train(TrainingWorker.for_new_run(self.form.config(), self.runs_dir, self.form.processes(), self))

    def resume_run(self, run_dir: Path) -> None:
        """Continue a stopped, failed or interrupted run from its last checkpoint."""
        if self.state == IDLE:
            self.train(TrainingWorker.for_resumed_run(run_dir, self.form.processes(), self))

    def follow_run(self, run_dir: Path, pid: int) -> None:
        """Show a run that trains in a process of its own, started by an earlier window."""
        if self.state == IDLE:
            self.train(RunFollower(run_dir, pid, self))

    def fine_tune(self, run_dir: Path) -> None:
        """Set the form up to train the run's model further on new text; Start begins it."""
        if self.state == IDLE:
            self.form.enter_fine_tune(run_dir)

    def distill(self, run_dir: Path) -> None:
        """Set the form up to train a smaller student of the run; Start begins it."""
        if self.state == IDLE:
            self.form.enter_distill(run_dir)

    def train(self, worker: TrainingWorker) -> None:
        """Start the worker's run and show it live."""
        self.worker = worker
        worker.launched.connect(self._on_launched)
        worker.preparing.connect(self._on_preparing)
        worker.started.connect(self._on_started)
        worker.steps.connect(self._on_steps)
        worker.evals.connect(self.plots.add_evals)
        worker.evals.connect(self._on_evals)
        worker.classified.connect(lambda events: self.classifier_plots.add(self.plots.pinned, events))
        worker.paused.connect(self._on_paused)
        worker.resumed.connect(lambda _: self._set_state(RUNNING))
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.done.connect(self._on_done)
        self._show_run(worker.run_dir)
        self._max_steps, self._last_readout = 0, 0.0
        self.progress.show_progress(0, "starting…")
        self.form.set_locked(True)
        self.form.summary.show_step_time(None)
        self._show_banner("Starting the training process…", "info")
        self._set_state(PREPARING)
        worker.start()
        self.training_started.emit(worker)

    # ---- controls --------------------------------------------------------------------------------
    def toggle_pause(self) -> None:
        if self.worker is None:
            return
        if self.state == PAUSED:
            self.worker.resume()
        elif self.state == RUNNING:
            self.worker.pause()

    def stop(self) -> None:
        if self.worker is not None and self.state in (PREPARING, RUNNING, PAUSED):
            self.worker.stop()
            self._set_state(STOPPING)

    def detach(self) -> None:
        """The window is closing and the run trains on by itself."""
        if self.worker is not None:
            self.worker.detach()

    def is_training(self) -> bool:
        return self.worker is not None

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_label.setText({IDLE: "", PREPARING: "· preparing", RUNNING: "· training", PAUSED: "· paused",
                                  STOPPING: "· stopping, saving a checkpoint…"}[state])
        self._update_controls()
        self.state_changed.emit(state)

    def _update_controls(self) -> None:
        can_start = self.state == IDLE and self.form.is_valid()
        self.start_button.setEnabled(can_start)
        if self.state != IDLE:
            tip = "A run is in progress; stop it to start another."
        elif can_start:
            tip = f"Start training with these settings ({START_KEYS})."
        else:
            tip = f"Fix this first: {self.form.first_error()}"
        self.start_button.setToolTip(tip)
        self.pause_button.setEnabled(self.state in (RUNNING, PAUSED) and self.worker.can_pause)
        self.pause_button.setText("Resume" if self.state == PAUSED else "Pause")
        self.stop_button.setEnabled(self.state in (PREPARING, RUNNING, PAUSED))

    def _show_banner(self, text: str, tone: str) -> None:
        self.banner.setText(text)
        set_tone(self.banner, tone)
        self.banner.show()

    # ---- what the worker reports ------------------------------------------------------------------
    def _on_launched(self, event) -> None:
        self._show_run(Path(event.run_dir))

    def _show_run(self, run_dir: Path | None) -> None:
        """The run's name in the header; a new run's folder is known once its process has made it."""
        self._run_dir = run_dir
        self.run_title.setText(run_label(run_dir.name) if run_dir else "New run")
        self.run_title.setToolTip(str(run_dir or ""))

    def _on_preparing(self, event) -> None:
        fraction = f" {event.fraction:.0%}" if event.fraction is not None else ""
        self._show_banner(f"Preparing: {event.message}{fraction}", "info")
        self.progress.show_progress(event.fraction or 0, f"{event.message}{fraction}")

    def _on_started(self, event) -> None:
        history = []
        if event.start_step:  # resumed: show what came before, up to the checkpoint it continues from
            history = [e for e in read_metric_events(RunFolder(event.run_dir).metrics_path)
                       if e.step <= event.start_step]
        config = RunFolder(event.run_dir).load_config()
        run_dir, classifier = Path(event.run_dir), config.task == "classify"
        pace = pace_beside(event.host_threads)
        self.plots.begin_live_run(run_dir, history, event.max_steps, event.tokens_per_step, classifier, pace)
        if self.worker is not None:
            self.worker.deliver_every(pace.refresh_s)
        if classifier:
            self.classifier_plots.show_run(run_dir, self.plots.series[run_dir].classified, self.plots.colour_of(run_dir),
                                           live=True)
        self._max_steps, self._tokens_per_step = event.max_steps, event.tokens_per_step
        self._flops = (event.flops_per_token, event.peak_flops)
        self._remaining = RemainingTime(event.max_steps, config.train.eval_interval)
        self._show_step(event.start_step)
        self.banner.hide()
        if self.state == PREPARING:
            self._set_state(RUNNING)

    def _on_steps(self, events: list) -> None:
        self.plots.add_steps(events)
        now = time.monotonic()
        self._remaining.steps(now, events[-1].step)
        if now - self._last_readout >= READOUT_INTERVAL_S:
            self._last_readout = now
            self._show_readout(events[-1])

    def _show_readout(self, last) -> None:
        speed = ""
        if last.tokens_per_s > 0:
            step_time = self._tokens_per_step / last.tokens_per_s
            self.form.summary.show_step_time(step_time)
            left = self._remaining.seconds_left(last.step)
            speed = f" · {last.tokens_per_s:,.0f} tokens/s" + (f" · {format_duration(left)} left" if left else "")
            self.speed_changed.emit(last.tokens_per_s)
        self._show_step(last.step, speed)

    def mfu(self, tokens_per_s: float) -> float | None:
        """The live run's model FLOPs utilisation at this speed; None where its device's peak is unknown."""
        return mfu(tokens_per_s, *self._flops)

    def _on_run_read(self, run_dir: Path, series) -> None:
        """A ticked classifier run's curves join the classifier plots, in its colour in the loss plot."""
        if series.classifier:
            self.classifier_plots.show_run(run_dir, series.classified, self.plots.colour_of(run_dir))

    def _on_evals(self, events: list) -> None:
        self._remaining.evaluated(time.monotonic(), events[-1].step)

    def _on_paused(self, _event) -> None:
        self._remaining.paused()
        self._set_state(PAUSED)

    def _show_step(self, step: int, details: str = "") -> None:
        self.progress.show_progress(step / max(self._max_steps, 1), f"step {step:,} of {self._max_steps:,}{details}")

    def _on_finished(self, event) -> None:
        self._show_step(event.step)
        best = f" Best validation loss {event.best_val_loss:.3f}." if event.best_val_loss is not None else ""
        if event.status == "finished":
            where = "Classify" if self.plots.pinned in self.classifier_plots.runs else "Generate"
            self._show_banner(f"Finished at step {event.step:,}.{best} Try it in the {where} tab, or tick it in "
                              "the runs list to compare it with others.", "success")
        else:
            self._show_banner(f"Stopped at step {event.step:,}; a checkpoint was saved.{best} Select the run in "
                              "the runs list and press Resume to continue.", "info")

    def _on_failed(self, event) -> None:
        self._show_step(event.step)
        if event.run_dir is None:  # nothing was created: the settings or the run to resume were at fault
            self._show_banner(event.message, "error")
        else:
            self._show_banner(f"Training failed at step {event.step:,}. {event.message}\nThe run is marked failed "
                              "and keeps its checkpoints.", "error")

    def _on_done(self) -> None:
        worker, self.worker = self.worker, None
        self.form.set_locked(False)
        if not self._max_steps:  # ended before it started (e.g. a corpus problem)
            self.progress.show_progress(0, "")
        self._set_state(IDLE)
        self.form.validate()
        self.plots.end_live_run()
        worker.deleteLater()
        self.training_ended.emit(self._run_dir)


def _let_plot_controls_give_way(plots: TrainingPlots) -> None:
    """The plots' controls, one row, need about 700 pixels at their natural widths: more than a 1024-pixel window
    leaves beside the runs list and the form. Below that width the axis choices narrow (a long axis name is cut
    short) and the smoothing slider shortens, rather than the row widening the window or pushing Fit and Export
    out of sight."""
    for widget, least in ((plots.x_axis, PLOT_AXIS_MIN_WIDTH), (plots.y_axis, PLOT_AXIS_MIN_WIDTH),
                          (plots.smoothing, PLOT_SLIDER_MIN_WIDTH)):
        widget.setMinimumWidth(min(least, max(widget.minimumWidth(), widget.minimumSizeHint().width())))

