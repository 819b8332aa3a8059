"""Generate tab: sample from a trained run and see into every token, or score any text under the model.

The tab builds the layout and wires together its sampling controls (controls.py), its session (session.py: the
state and rules, without Qt), the token views (views.py) and the worker (worker.py), which runs lmcore.generation,
the same engine code as `lmcore sample`, on a thread of its own.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFrame, QHBoxLayout, QLabel, QSplitter, QStackedWidget,
                               QToolButton, QVBoxLayout, QWidget)

from ..common.background import start_in_background, stop_background
from ..common.style import ACCENT, BORDER, PANEL, set_tone
from ..common.widgets import button, row, text_editor
from .controls import SamplingControls
from .session import (CHECKPOINTS, GENERATE, MODES, SCORE, GenerationFinished, GenerationRequest, GenerationSession,
                      GenerationStarted, ModelSummary, TokenInfo, checkpoints_to_offer, describe_score)
from .views import ColourLegend, TokenInspector, TokenView
from .worker import GenerationWorker


class GenerateTab(QWidget):
    send_to_attention = Signal(str)  # prompt + output, for the Attention tab
    # Requests to the worker thread (queued connections: the GUI thread never waits on the model).
    _load_requested = Signal(object, str)
    _generate_requested = Signal(object)
    _score_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session = GenerationSession()
        self._build()
        self._start_worker()
        self.set_run(None)

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        root.addWidget(self._build_header())
        self.setStyleSheet(f"QTextBrowser {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}"
                           f" QPushButton#mode:checked {{ background: {ACCENT}; color: white; border-color: {ACCENT};"
                           " font-weight: 600; }")
        self.message = QLabel()
        self.message.setObjectName("banner")
        set_tone(self.message, "error")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        root.addWidget(self.message)

        self.body = QSplitter()
        self.controls = SamplingControls()
        self.body.addWidget(self.controls)
        self.body.addWidget(self._build_center())
        self.inspector = TokenInspector()
        self.inspector.setMinimumWidth(250)
        self.inspector.unpin_requested.connect(lambda: self._pin(None))
        self.body.addWidget(self.inspector)
        self.body.setStretchFactor(1, 1)
        self.body.setSizes([290, 700, 290])
        self.body.setChildrenCollapsible(False)
        root.addWidget(self.body, 1)

        for keys, action in (("Ctrl+Return", self._on_generate), ("Escape", self._on_escape)):
            QShortcut(QKeySequence(keys), self, action, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def _build_header(self) -> QWidget:
        header = QFrame()
        header.setObjectName("summary")
        layout = QVBoxLayout(header)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        self.run_title = QLabel()
        self.run_title.setObjectName("runTitle")
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.addItems(CHECKPOINTS)
        self.checkpoint_combo.setToolTip("best: lowest validation loss so far; last: the most recent save")
        self.checkpoint_combo.currentTextChanged.connect(lambda _: self._load())
        self.reload_button = QToolButton()
        self.reload_button.setText("↻")
        self.reload_button.setToolTip("Reload the checkpoint (a run still training saves new ones)")
        self.reload_button.clicked.connect(self._load)
        layout.addLayout(row((self.run_title, 1), QLabel("Checkpoint"), self.checkpoint_combo, self.reload_button))
        self.summary_label = QLabel()
        self.summary_label.setObjectName("hint")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        return header

    def _build_center(self) -> QWidget:
        center = QWidget()
        layout = QVBoxLayout(center)
        layout.setContentsMargins(4, 0, 4, 0)
        self.generate_mode_button = button("Generate", name="mode")
        self.score_mode_button = button("Score text", name="mode",
                                        tooltip="Colour any text by how surprising the model finds each token")
        self.mode_group = QButtonGroup(self)
        for i, mode_button in enumerate((self.generate_mode_button, self.score_mode_button)):  # i: MODES[i]'s page
            mode_button.setCheckable(True)
            mode_button.setMinimumWidth(110)
            self.mode_group.addButton(mode_button, i)
        self.generate_mode_button.setChecked(True)
        self.mode_group.idClicked.connect(self._set_mode)
        layout.addLayout(row(self.generate_mode_button, self.score_mode_button, 1))
        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_generate_page())
        self.pages.addWidget(self._build_score_page())
        layout.addWidget(self.pages, 1)
        return center

    def _build_generate_page(self) -> QWidget:
        self.prompt_edit = text_editor("Prompt: the text the model continues (empty starts from nothing, "
                                       "if the tokenizer has a start token)", 80)
        self.generate_button = button("▶  Generate", self._on_generate, name="primary")
        self.stop_button = button("■  Stop", self._on_stop)
        self.continue_button = button("»  Continue", self._on_continue,
                                      tooltip="Generate on from the end of the output")
        self.copy_button = button("Copy", lambda: QGuiApplication.clipboard().setText(self.output_text()))
        self.attention_button = button("Send to Attention", lambda: self.send_to_attention.emit(self.output_text()),
                                       tooltip="Open the prompt and output in the Attention tab")
        self.output_view = self._token_view(GENERATE, "Generated text appears here, each token coloured by the "
                                                      "probability the model gave it.")
        self.status_label = QLabel()
        self.status_label.setObjectName("hint")
        self.status_label.setWordWrap(True)  # so a long status never squeezes the legend
        return _page(self.prompt_edit,
                     row(self.generate_button, self.stop_button, self.continue_button, 1, self.copy_button,
                         self.attention_button),
                     self.output_view, row((self.status_label, 1), ColourLegend()))

    def _build_score_page(self) -> QWidget:
        self.score_edit = text_editor("Paste any text to see which tokens the model finds surprising", 110)
        self.score_button = button("Score", self._on_score, name="primary")
        self.score_summary = QLabel()
        self.score_summary.setWordWrap(True)
        self.score_summary.setTextInteractionFlags(self.score_summary.textInteractionFlags()
                                                   | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.score_view = self._token_view(SCORE, "Scored text appears here, each token coloured by its loss.")
        return _page(self.score_edit, row(self.score_button, (self.score_summary, 1)), self.score_view,
                     row(1, ColourLegend(loss=True)))

    def _token_view(self, mode: str, placeholder: str) -> TokenView:
        view = TokenView()
        view.setPlaceholderText(placeholder)
        view.hovered.connect(lambda index: self._on_hover(mode, index))
        view.clicked.connect(lambda index: self._pin(self.session.click_target(index)))
        return view

    # ---- the worker ---------------------------------------------------------------------------
    def _start_worker(self) -> None:
        self.worker = GenerationWorker()
        self._load_requested.connect(self.worker.load)
        self._generate_requested.connect(self.worker.generate)
        self._score_requested.connect(self.worker.score)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.started.connect(self._on_started)
        self.worker.tokens.connect(self._on_tokens)
        self.worker.finished.connect(self._on_finished)
        self.worker.scored.connect(self._on_scored)
        self.worker.failed.connect(self._on_failed)
        self._thread = start_in_background(self.worker, "generate-worker", interrupt=self.worker.stop_requested.set)

    def shutdown(self) -> None:
        """Stop generating and end the worker thread (on close; background.py does it when the application quits)."""
        stop_background(self._thread)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    # ---- run and checkpoint -------------------------------------------------------------------
    def set_run(self, run_dir: Path | None) -> None:
        """Show the run the user picked in the runs browser (None: no run selected)."""
        self.session.select_run(run_dir)
        self._hide_message()
        run_dir = self.session.run_dir
        if run_dir is None:
            self.run_title.setText("No run selected")
            self.summary_label.setText("Pick a trained run in the runs browser to generate from it.")
            self._update_enabled()
            return
        self.run_title.setText(run_dir.name)
        offered, choice = checkpoints_to_offer(run_dir, self.checkpoint_combo.currentText())
        model = self.checkpoint_combo.model()
        for i, which in enumerate(CHECKPOINTS):
            model.item(i).setEnabled(which in offered)
        self.checkpoint_combo.blockSignals(True)
        self.checkpoint_combo.setCurrentText(choice)
        self.checkpoint_combo.blockSignals(False)
        self._load()

    def _load(self) -> None:
        if not self.session.start_loading():
            return
        self.worker.stop_requested.set()  # a generation still running ends before the load is served
        self.summary_label.setText("Loading the checkpoint…")
        self._update_enabled()
        self._load_requested.emit(self.session.run_dir, self.checkpoint_combo.currentText())

    def _on_loaded(self, summary: ModelSummary) -> None:
        outcome = self.session.model_loaded(summary)
        if outcome == "stale":
            return
        if outcome == "new run":
            self._clear_outputs()
        self.summary_label.setText(f"{summary.description}\n{summary.checkpoint_line} · {summary.tokenizer_line}")
        self._hide_message()
        self._update_enabled()

    def _clear_outputs(self) -> None:
        """Empty the views (the session has cleared what they showed)."""
        self.output_view.clear_tokens()
        self.score_view.clear_tokens()
        self.score_summary.clear()
        self.status_label.clear()
        self._pin(None)

    # ---- generating ---------------------------------------------------------------------------
    def _on_generate(self) -> None:
        if self.session.mode == SCORE:
            self._on_score()
        elif self.generate_button.isEnabled():
            self._request(self.session.generate(self.prompt_edit.toPlainText(), self.controls.settings()))

    def _on_continue(self) -> None:
        if self.continue_button.isEnabled():
            self._request(self.session.continue_output(self.controls.settings()))

    def _request(self, request: GenerationRequest) -> None:
        self._hide_message()
        self._update_enabled()
        self.status_label.setText("Generating…")
        self.worker.stop_requested.clear()  # here, not in the worker: a Stop clicked before it starts still counts
        self._generate_requested.emit(request)

    def _on_started(self, started: GenerationStarted) -> None:
        self.controls.show_seed(started.seed)
        if self.session.generation_started(started):  # else continuing: the tokens go on after the output
            self._pin(None)
            self.output_view.clear_tokens()
            self.output_view.add_plain(self.session.prompt_text)

    def _on_tokens(self, batch: list[TokenInfo]) -> None:
        self.session.tokens_received(batch)
        self.output_view.add_tokens(batch, lambda token: token.probability)
        self.status_label.setText(f"{len(self.session.generated)} tokens…")

    def _on_finished(self, done: GenerationFinished) -> None:
        self.status_label.setText(self.session.generation_finished(done))
        self._update_enabled()

    def _on_stop(self) -> None:
        self.worker.stop_requested.set()

    def _on_escape(self) -> None:
        action = self.session.escape_action()
        if action == "stop":
            self._on_stop()
        elif action == "unpin":
            self._pin(None)

    # ---- scoring ------------------------------------------------------------------------------
    def _on_score(self) -> None:
        if not self.score_button.isEnabled():
            return
        self._hide_message()
        self.session.start_scoring()
        self._update_enabled()
        self.score_summary.setText("Scoring…")
        self._score_requested.emit(self.score_edit.toPlainText())

    def _on_scored(self, result, tokens: list[TokenInfo]) -> None:
        self.session.text_scored(tokens)
        self._update_enabled()
        self._pin(None)
        self.score_view.clear_tokens()
        self.score_view.add_tokens(tokens, lambda token: token.probability)  # p = exp(-loss)
        self.score_summary.setText(describe_score(result))

    # ---- inspecting tokens --------------------------------------------------------------------
    def _on_hover(self, mode: str, index: int) -> None:
        token = self.session.hovered(mode, index)
        if token is not None:
            self.inspector.show_token(token, index)

    def _pin(self, index: int | None) -> None:
        token = self.session.pin(index)
        view = self.output_view if self.session.mode == GENERATE else self.score_view
        view.set_pinned(self.session.pinned)
        self.inspector.show_token(token, self.session.pinned or 0, pinned=True)

    def _set_mode(self, page: int) -> None:
        self._pin(None)  # in the view being left
        self.session.mode = MODES[page]
        self.pages.setCurrentIndex(page)

    # ---- state --------------------------------------------------------------------------------
    def output_text(self) -> str:
        """The prompt and the generated text, as the model wrote it."""
        return self.session.output_text()

    def _update_enabled(self) -> None:
        actions = self.session.actions()
        for widget, enabled in ((self.generate_button, actions.generate), (self.score_button, actions.score),
                                (self.continue_button, actions.continue_output), (self.stop_button, actions.stop),
                                (self.checkpoint_combo, actions.choose_checkpoint),
                                (self.reload_button, actions.reload), (self.attention_button, actions.send_output)):
            widget.setEnabled(enabled)

    def _on_failed(self, message: str) -> None:
        failed = self.session.job_failed()
        if failed == GENERATE:
            self.status_label.clear()
        elif failed == SCORE:
            self.score_summary.clear()
        elif self.session.awaiting_model:
            self.summary_label.setText("No model loaded.")
        self._update_enabled()
        self.message.setText(message)
        self.message.show()

    def _hide_message(self) -> None:
        self.message.hide()
        self.message.clear()


def _page(editor: QWidget, actions: QHBoxLayout, view: TokenView, footer: QHBoxLayout) -> QWidget:
    """One mode's page: the text given to the model, a row of actions, the token view and, under it, the legend."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(editor)
    layout.addLayout(actions)
    layout.addWidget(view, 1)
    layout.addLayout(footer)
    return page
