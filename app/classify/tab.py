"""The Classify tab: type a text, see a classifier run's probability for each class, and which tokens pushed the
decision (integrated gradients of the class explained: the predicted one, or one the user picks).

The model is loaded and run by a ClassifyWorker on a thread of its own (app/common/background.py): the window never
waits on it. The numbers are lmcore.classify.Classifier's, the same `lmcore classify` prints.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from ..common.background import WorkerOwner, start_in_background
from ..common.text import run_label
from ..common.widgets import banner, button, row, run_header, text_editor
from .views import AttributionLegend, AttributionView, ProbabilityBars
from .worker import Classification, ClassifierSummary, ClassifyWorker

PREDICTED = -1  # the explain choice that follows the prediction


class ClassifyTab(WorkerOwner, QWidget):
    # Requests to the worker thread (queued connections: the GUI thread never waits on the model).
    _load_requested = Signal(int, object)  # request id, run folder
    _classify_requested = Signal(int, str, int)  # request id, text, class to explain (PREDICTED: the predicted one)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._awaited = 0  # the id of the request whose answer is awaited; older answers are dropped
        self.run_dir: Path | None = None
        self._to_load = False  # the run picked is loaded once the tab is shown: picking runs elsewhere costs nothing
        self.summary: ClassifierSummary | None = None
        self.result: Classification | None = None
        self._build()
        self._start_worker()
        self.set_run(None)

    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 8, 6, 8)
        header, header_layout, self.run_title = run_header()
        self.summary_label = QLabel()
        self.summary_label.setObjectName("hint")
        self.summary_label.setWordWrap(True)
        header_layout.addWidget(self.run_title)
        header_layout.addWidget(self.summary_label)
        root.addWidget(header)
        self.message = banner("error")
        root.addWidget(self.message)

        self.text_edit = text_editor("Type a text to classify…", 110)
        self.explain_combo = QComboBox()
        self.explain_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.explain_combo.setToolTip("The class whose decision the token colours explain: the predicted one, or "
                                      "another, to see what spoke for it.")
        self.classify_button = button("Classify", self.classify, name="primary",
                                      tooltip="Classify the text and colour its tokens (Ctrl+Enter)")
        root.addWidget(self.text_edit)
        root.addLayout(row(QLabel("Explain"), self.explain_combo, 1, self.classify_button))
        probabilities_title = QLabel("Class probabilities")
        probabilities_title.setObjectName("runTitle")
        self.bars = ProbabilityBars()
        self.why_title = QLabel("Why")
        self.why_title.setObjectName("runTitle")
        self.cut_note = QLabel()  # the text is longer than the classifier reads
        self.cut_note.setObjectName("hint")
        self.cut_note.setWordWrap(True)
        self.cut_note.hide()
        self.tokens_view = AttributionView()
        self.legend = AttributionLegend()
        for widget in (probabilities_title, self.bars, self.why_title, self.cut_note):
            root.addWidget(widget)
        root.addWidget(self.tokens_view, 1)
        root.addWidget(self.legend)
        QShortcut(QKeySequence("Ctrl+Return"), self, self.classify, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.explain_combo.activated.connect(lambda _: self.classify() if self.result is not None else None)
        self.text_edit.textChanged.connect(self._update_enabled)

    def _start_worker(self) -> None:
        self.worker = worker = ClassifyWorker()
        for signal, slot in ((self._load_requested, worker.load), (self._classify_requested, worker.classify),
                             (worker.loaded, self._on_loaded), (worker.classified, self._on_classified),
                             (worker.failed, self._on_failed)):
            signal.connect(slot)
        self._thread = start_in_background(worker, "classify-worker")

    # ---- the run ----------------------------------------------------------------------------------
    def set_run(self, run_dir: Path | None) -> None:
        """Show the run the user picked in the runs browser (None: no run selected); it is loaded when the tab is
        shown."""
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.summary = None
        self._awaited = 0
        self._show_result(None)
        self._hide_message()
        self.run_title.setText(run_label(self.run_dir.name) if self.run_dir else "No run selected")
        self.run_title.setToolTip(str(self.run_dir or ""))
        self.summary_label.setText("Pick a classifier run in the runs browser (one trained with the task Classifier) "
                                   "to classify texts with it.")
        self._to_load = self.run_dir is not None
        if self.isVisible():
            self._load()
        self._update_enabled()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._load()

    def _load(self) -> None:
        if self._to_load:
            self._to_load = False
            self.summary_label.setText("Loading the classifier…")
            self._awaited = next(self._ids)
            self._load_requested.emit(self._awaited, self.run_dir)

    def _on_loaded(self, request_id: int, summary: ClassifierSummary) -> None:
        if request_id != self._awaited:
            return
        self.summary = summary
        self.summary_label.setText(f"{summary.description}\nClasses: {', '.join(summary.labels)}")
        self.explain_combo.clear()
        self.explain_combo.addItem("the predicted class", PREDICTED)
        for i, label in enumerate(summary.labels):
            self.explain_combo.addItem(label, i)
        self._update_enabled()

    # ---- classifying ------------------------------------------------------------------------------
    def classify(self) -> None:
        if not self.classify_button.isEnabled():
            return
        self._hide_message()
        self._awaited = next(self._ids)
        self.classify_button.setEnabled(False)
        self._classify_requested.emit(self._awaited, self.text_edit.toPlainText(), self.explain_combo.currentData())

    def _on_classified(self, request_id: int, result: Classification) -> None:
        if request_id != self._awaited:
            return
        self._show_result(result)
        self._update_enabled()

    def _show_result(self, result: Classification | None) -> None:
        self.result = result
        self.cut_note.setVisible(result is not None and result.unread > 0)
        if result is None:
            self.bars.show_probabilities([], [])
            self.tokens_view.clear_scores()
            self.why_title.setText("Why")
            return
        labels = self.summary.labels
        explained = labels[result.explanation.label]
        self.bars.show_probabilities(labels, result.probabilities)
        self.tokens_view.show_scores(result.explanation.tokens, result.explanation.scores, explained)
        self.why_title.setText(f"Why “{explained}”: each token's push towards it")
        self.cut_note.setText(f"The classifier reads the first {len(result.explanation.tokens):,} tokens, as it was "
                              f"trained to; the last {result.unread:,} of this text do not count.")

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id != self._awaited:
            return
        if self.summary is None:  # the run could not be loaded as a classifier
            self.summary_label.setText("")
        self.message.setText(message)
        self.message.show()
        self._update_enabled()

    def _hide_message(self) -> None:
        self.message.hide()
        self.message.clear()

    def _update_enabled(self) -> None:
        ready = self.summary is not None
        self.classify_button.setEnabled(ready and bool(self.text_edit.toPlainText().strip()))
        self.explain_combo.setEnabled(ready)
