"""The main window: runs browser on the left; Train, Generate, Attention and Classify tabs; device, run and speed
below."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QLabel, QMainWindow, QMessageBox, QScrollArea, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from lmcore.config import config_from_dict
from lmcore.device import describe_device, pick_device
from lmcore.errors import LMCoreError
from lmcore.runs import list_runs

from .attention.tab import AttentionTab
from .classify.tab import ClassifyTab
from .generate.tab import GenerateTab
from .common.resources import DEFAULT_PRESET, PRESETS_DIR, SAMPLE_CORPUS
from .common.text import run_label
from .runs.browser import RunsBrowser
from .runs.interop import ImportDialog
from .common.style import app_icon, fix_size
from .train.tab import PAUSE_KEYS, START_KEYS, STOP_KEYS, TrainTab

DEFAULT_SIZE = (1280, 800)
STOP_AND_CLOSE, KEEP_TRAINING = "stop", "keep"


def default_user_presets_dir() -> Path:
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)) / "presets"


class MainWindow(QMainWindow):
    def __init__(self, runs_dir: Path, corpus: Path | None = None, settings: QSettings | None = None,
                 user_presets_dir: Path | None = None):
        super().__init__()
        self.setWindowTitle("LM Workbench")
        self.setWindowIcon(app_icon())
        self.settings = settings if settings is not None else QSettings()
        self.runs_dir = Path(runs_dir)
        self._close_when_stopped = False

        self.runs_browser = RunsBrowser(self.runs_dir, settings=self.settings)  # remembers its columns and view
        self.train_tab = TrainTab(self.runs_dir, [PRESETS_DIR], user_presets_dir or default_user_presets_dir())
        self.generate_tab = GenerateTab()
        self.attention_tab = AttentionTab()
        self.classify_tab = ClassifyTab()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(False)
        self.tabs.addTab(self.train_tab, "Train")
        self.tabs.addTab(_scrollable(self.generate_tab), "Generate")
        self.tabs.addTab(_scrollable(self.attention_tab), "Attention")  # at ATTENTION_TAB_INDEX
        self.tabs.addTab(_scrollable(self.classify_tab), "Classify")

        browser_panel = QWidget()
        browser_layout = QVBoxLayout(browser_panel)
        browser_layout.setContentsMargins(8, 8, 0, 8)
        browser_layout.addWidget(self.runs_browser)
        tabs_panel = QWidget()
        tabs_layout = QVBoxLayout(tabs_panel)
        tabs_layout.setContentsMargins(0, 8, 8, 8)
        tabs_layout.addWidget(self.tabs)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(browser_panel)
        self.splitter.addWidget(tabs_panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)  # the runs list may be folded away by its handle, the tabs not
        self.splitter.setSizes([250, 1030])
        # The table compares runs across many columns: it takes the whole window, the tabs come back with the list
        self.runs_browser.table_mode_changed.connect(lambda table: tabs_panel.setVisible(not table))
        tabs_panel.setVisible(not self.runs_browser.is_table_mode())
        self.setCentralWidget(self.splitter)

        self.device_label = QLabel(f"Device: {describe_device(pick_device('auto'))}")
        self.device_label.setToolTip("Where training runs when the form's device is Auto.")
        self.run_label = QLabel("No run")
        self.speed_label = QLabel("")
        self.speed_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for label in (self.device_label, self.run_label, self.speed_label):
            self.statusBar().addPermanentWidget(label)
        fix_size(self.speed_label, "999,999 tokens/s · MFU 99.9%")  # in the status bar: measured with its style sheet
        self.statusBar().setSizeGripEnabled(False)
        self._build_menus()
        self._connect()
        self._restore_settings(corpus)
        self.follow_runs_still_training()

    # ---- wiring ----------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        tab = self.train_tab
        self.start_action = self._action("&Start training", START_KEYS, tab.start)
        self.pause_action = self._action("&Pause / resume", PAUSE_KEYS, tab.toggle_pause)
        self.stop_action = self._action("S&top and save", STOP_KEYS, tab.stop)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self._action("&Import model…", "", self.import_model))
        file_menu.addAction(self._action("Open &runs folder", "", self._open_runs_folder))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", QKeySequence.StandardKey.Quit, self.close))
        training_menu = self.menuBar().addMenu("&Training")
        for action in (self.start_action, self.pause_action, self.stop_action):
            training_menu.addAction(action)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self._action("&Fit plots to data", "Ctrl+0", tab.plots.fit))

    def _action(self, text: str, keys, slot) -> QAction:
        action = QAction(text, self)
        if keys:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work wherever the focus is in the window
        return action

    def _connect(self) -> None:
        browser, tab = self.runs_browser, self.train_tab
        browser.selection_changed.connect(self._on_run_selected)
        browser.compare_changed.connect(tab.plots.compare)  # the plots read the ticked runs in the background
        tab.plots.load_failed.connect(lambda text: self.statusBar().showMessage(text, 8000))
        browser.resume_requested.connect(self._resume)
        browser.fine_tune_requested.connect(self._fine_tune)
        browser.distill_requested.connect(self._distill)
        browser.run_removed.connect(tab.plots.forget)
        tab.training_started.connect(self._on_training_started)
        tab.training_ended.connect(self._on_training_ended)
        tab.state_changed.connect(self._on_state_changed)
        tab.speed_changed.connect(self._show_speed)
        tab.plots.exported.connect(lambda text: self.statusBar().showMessage(text, 5000))
        tab.form.preset_saved.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.generate_tab.send_to_attention.connect(self._show_in_attention)

    def _show_speed(self, tokens_per_s: float) -> None:
        used = self.train_tab.mfu(tokens_per_s)
        self.speed_label.setText(f"{tokens_per_s:,.0f} tokens/s" + (f" · MFU {used:.1%}" if used is not None else ""))

    def _show_in_attention(self, text: str) -> None:
        self.tabs.setCurrentIndex(ATTENTION_TAB_INDEX)
        self.attention_tab.show_text(text)

    def _on_run_selected(self, run_dir: Path | None) -> None:
        self.generate_tab.set_run(run_dir)
        self.attention_tab.set_run(run_dir)
        self.classify_tab.set_run(run_dir)

    def _resume(self, run_dir: Path) -> None:
        self.tabs.setCurrentWidget(self.train_tab)
        self.train_tab.resume_run(run_dir)

    def _fine_tune(self, run_dir: Path) -> None:
        self.tabs.setCurrentWidget(self.train_tab)
        self.train_tab.fine_tune(run_dir)

    def _distill(self, run_dir: Path) -> None:
        self.tabs.setCurrentWidget(self.train_tab)
        self.train_tab.distill(run_dir)

    def _on_training_started(self, worker) -> None:
        worker.launched.connect(lambda event: self._show_active_run(event.run_dir, "running"))
        if worker.run_dir is not None:
            self._show_active_run(worker.run_dir, "preparing")
        worker.started.connect(lambda event: self.device_label.setText(f"Device: {event.device}"))
        worker.evals.connect(lambda _: self.runs_browser.refresh())  # best validation loss changed
        self.attention_tab.attach_worker(worker)

    def _show_active_run(self, run_dir: Path, state: str) -> None:
        self.runs_browser.set_active_run(run_dir, state)
        self.run_label.setText(f"Run: {run_label(Path(run_dir).name)}")

    def _on_state_changed(self, state: str) -> None:
        worker = self.train_tab.worker
        if worker is not None and worker.run_dir is not None and state in ("running", "paused"):
            self.runs_browser.set_active_run(worker.run_dir, state)

    def _on_training_ended(self, run_dir: Path | None) -> None:
        self.attention_tab.attach_worker(None)
        self.runs_browser.set_active_run(None)
        self.speed_label.clear()
        self.device_label.setText(f"Device: {describe_device(pick_device('auto'))}")
        if self._close_when_stopped:
            self.close()

    def import_model(self) -> ImportDialog:
        """File → Import model…: a GPT-2 or nanoGPT model becomes a run, selected once it is there."""
        dialog = ImportDialog(self.runs_browser.runs_dir, self)
        dialog.imported.connect(self._show_imported_run)
        dialog.open()
        return dialog

    def _show_imported_run(self, run_dir: Path) -> None:
        self.runs_browser.refresh()
        self.runs_browser.select_run(run_dir)

    def _open_runs_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.runs_dir)))

    # ---- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        """While training, ask: stop and save (the window closes once the run has saved), keep training in the
        background (the next window shows the run again), or cancel. The GUI never waits on the run."""
        if self.train_tab.is_training():
            event.ignore()
            if self._close_when_stopped:
                return
            choice = self._ask_about_training()
            if choice == STOP_AND_CLOSE:
                self._close_when_stopped = True
                self.train_tab.stop()
                self.statusBar().showMessage("Saving a checkpoint before closing…")
                return
            if choice != KEEP_TRAINING:
                return
            self.train_tab.detach()
            event.accept()
        self._save_settings()
        # their worker threads (the one reading ticked runs for the plots too) end before the window goes
        for tab in (self.generate_tab, self.attention_tab, self.classify_tab, self.train_tab.plots):
            tab.shutdown()
        super().closeEvent(event)

    def _ask_about_training(self) -> str:
        box = QMessageBox(QMessageBox.Icon.Question, "Training in progress",
                          "A run is training. Stop it and save a checkpoint, or let it keep training in the "
                          "background?\n\nA stopped run can be resumed from the runs list; a run training in the "
                          "background appears again, live, the next time LM Workbench starts.", parent=self)
        buttons = {box.addButton("Stop and save", QMessageBox.ButtonRole.AcceptRole): STOP_AND_CLOSE,
                   box.addButton("Keep training", QMessageBox.ButtonRole.AcceptRole): KEEP_TRAINING,
                   box.addButton(QMessageBox.StandardButton.Cancel): "cancel"}
        box.setDefaultButton(next(iter(buttons)))
        box.exec()
        return buttons.get(box.clickedButton(), "cancel")

    def follow_runs_still_training(self) -> None:
        """Show the newest run that still trains in a process of its own (its window closed with Keep training)."""
        live = [run for run in list_runs(self.runs_dir) if run.pid]  # a pid only while its process trains it
        if live and not self.train_tab.is_training():
            self.train_tab.follow_run(live[0].path, live[0].pid)
            self.statusBar().showMessage(f"{run_label(live[0].name)} is still training; following it live.", 8000)

    # ---- remembered between sessions -------------------------------------------------------------
    def _save_settings(self) -> None:
        form, plots = self.train_tab.form, self.train_tab.plots
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/splitter", self.splitter.saveState())
        s.setValue("train/splitter", self.train_tab.splitter.saveState())
        s.setValue("form/settings", json.dumps(form.settings()))
        s.setValue("form/corpus", json.dumps(form.corpus.paths()))
        s.setValue("form/preset", form.preset.currentData() or "")
        s.setValue("plots/x_axis", plots.x_axis.currentIndex())
        s.setValue("plots/smoothing", plots.smoothing.value())
        s.setValue("plots/log_y", "true" if plots.log_y.isChecked() else "false")
        s.sync()

    def _restore_settings(self, corpus: Path | None) -> None:
        """Last session's settings and corpus; on a first start, the sample corpus and the default preset.
        A corpus given on the command line wins."""
        s, form, plots = self.settings, self.train_tab.form, self.train_tab.plots
        if not self.restoreGeometry(s.value("window/geometry", b"")):
            self.resize(*DEFAULT_SIZE)
        self.splitter.restoreState(s.value("window/splitter", b""))
        self.train_tab.splitter.restoreState(s.value("train/splitter", b""))
        saved = _json(s.value("form/settings", ""))
        try:
            config_from_dict(saved or {})  # settings from an older version may no longer fit
        except LMCoreError:
            saved = None
        if saved:
            form.load_settings(saved)
            form.show_preset(Path(s.value("form/preset", "")) if s.value("form/preset", "") else None)
        else:
            form.load_preset(form.preset_path(DEFAULT_PRESET))
        saved_corpus = _json(s.value("form/corpus", "")) or []
        if corpus is not None:
            form.set_corpus([str(Path(corpus).expanduser().resolve())])
        elif saved_corpus and all(Path(p).exists() for p in saved_corpus):
            form.set_corpus(saved_corpus)
        else:
            form.set_corpus([str(SAMPLE_CORPUS)])
        plots.x_axis.setCurrentIndex(int(s.value("plots/x_axis", 0)))
        plots.smoothing.setValue(int(s.value("plots/smoothing", plots.smoothing.value())))
        plots.log_y.setChecked(s.value("plots/log_y", "false") == "true")
        form.validate()


ATTENTION_TAB_INDEX = 2


def _scrollable(tab: QWidget) -> QScrollArea:
    """A tab that needs more room than the window has scrolls, rather than widening the window past the screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(tab)
    return area


def _json(text):
    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError):
        return None
