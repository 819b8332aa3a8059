"""Generate tab: sample from a trained run and see into every token, side by side with a second run or checkpoint,
chat with a model trained on dialogue, or score any text under the model; the run alone, or in an ensemble with
runs that share its tokenizer (ensemble.py).

The tab builds the layout and wires together its sampling controls (controls.py), its session (session.py: the
state and rules, without Qt; chat.py: the chat's transcript), the saved prompts (prompts.py), the token views
(views.py) and the worker (worker.py), which runs lmcore.generation, the same engine code as `lmcore sample`, on
a thread of its own. An encoder run (a masked language model) gets the fill-in-the-blank view (fill_mask.py) in
place of the modes.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QLayout,
                               QLineEdit, QSplitter, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from lmcore.errors import LMCoreError
from lmcore.runs import list_runs

from ..common.background import WorkerOwner, start_in_background
from ..common.style import ACCENT, BORDER, PANEL
from ..common.text import run_label
from ..common.widgets import banner, button, row, run_header, text_editor
from .chat import DEFAULT_BOT, DEFAULT_USER, Speakers
from .controls import SamplingControls
from .ensemble import EnsembleDialog, ScoreTable, ensemble_candidates, score_rows
from .fill_mask import FillMaskView
from .prompts import PromptLibrary
from .session import (CHAT, CHECKPOINTS, FILL, GENERATE, MODES, SCORE, SECOND, SLOT_VIEWS, GenerationFinished,
                      GenerationRequest, GenerationSession, GenerationStarted, JobFailed, ModelSummary, TokenInfo,
                      checkpoints_to_offer, describe_score)
from .views import ColourLegend, TokenInspector, TokenView
from .worker import GenerationWorker


def default_prompts_dir() -> Path:
    """Where saved prompts live unless the tab is given a folder: the app's configuration folder."""
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation))


def _probability(token: TokenInfo) -> float | None:
    """What a token view colours a token by: the model's raw probability (p = exp(-loss) for scored text)."""
    return token.probability


class GenerateTab(WorkerOwner, QWidget):
    send_to_attention = Signal(str)  # prompt + output, for the Attention tab
    # Requests to the worker thread (queued connections: the GUI thread never waits on the model).
    _load_requested = Signal(int, object, str)  # slot, run folder, checkpoint
    _ensemble_requested = Signal(list, str, str)  # slot 0's runs, checkpoint, mean
    _generate_requested = Signal(object)
    _score_requested = Signal(str)
    _fill_requested = Signal(str)

    def __init__(self, parent=None, prompts_dir: Path | None = None):
        super().__init__(parent)
        self.session = GenerationSession()
        self.prompts = PromptLibrary(prompts_dir if prompts_dir is not None else default_prompts_dir())
        self._build()
        self._start_worker()
        self.set_run(None)

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 8, 6, 8)  # narrow sides: with a vertical scroll bar the tab still fits 1024 px
        root.addWidget(self._build_header())
        self.setStyleSheet(f"QTextBrowser {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}"
                           f" QPushButton#mode:checked {{ background: {ACCENT}; color: white; border-color: {ACCENT};"
                           " font-weight: 600; }")
        self.message = banner("error")
        root.addWidget(self.message)

        self.body = QSplitter()
        self.controls = SamplingControls()
        self.body.addWidget(self.controls)
        self.body.addWidget(self._build_center())
        self.inspector = TokenInspector()
        self.inspector.unpin_requested.connect(lambda: self._pin(None, None))
        self.body.addWidget(self.inspector)
        self.body.setStretchFactor(1, 1)
        self.body.setSizes([230, 500, 250])  # in a 1280-pixel window: the inspector with both number columns
        self.body.setChildrenCollapsible(False)
        root.addWidget(self.body, 1)
        # The token views by the name the session gives them, and the status line under each generating one.
        self.views = {GENERATE: self.output_view, SECOND: self.second_view, SCORE: self.score_view,
                      CHAT: self.chat_view}
        self.statuses = {GENERATE: self.status_label, SECOND: self.second_status, CHAT: self.chat_status,
                         FILL: self.fill_view.status}

        for keys, action in (("Ctrl+Return", self._on_generate), ("Escape", self._on_escape)):
            QShortcut(QKeySequence(keys), self, action, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def _build_header(self) -> QWidget:
        header, layout, self.run_title = run_header()
        self.checkpoint_combo = _checkpoint_combo(lambda: self._load(0))
        self.reload_button = QToolButton()
        self.reload_button.setText("↻")
        self.reload_button.setToolTip("Reload the checkpoint (a run still training saves new ones)")
        self.reload_button.clicked.connect(lambda: self._load(0))
        self.ensemble_button = QToolButton()
        self.ensemble_button.setText("Ensemble…")
        self.ensemble_button.setToolTip("Generate and score with this run and others that share its tokenizer, "
                                        "their next-token distributions mixed")
        self.ensemble_button.clicked.connect(self._choose_ensemble)
        self.ensemble_dialog: EnsembleDialog | None = None
        layout.addLayout(row((self.run_title, 1), QLabel("Checkpoint"), self.checkpoint_combo, self.reload_button,
                             self.ensemble_button))
        self.summary_label = QLabel()
        self.summary_label.setObjectName("hint")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        return header

    def _build_center(self) -> QWidget:
        center = QWidget()
        layout = QVBoxLayout(center)
        layout.setContentsMargins(2, 0, 2, 0)
        self.generate_mode_button = button("Generate", name="mode")
        self.score_mode_button = button("Score text", name="mode",
                                        tooltip="Colour any text by how surprising the model finds each token")
        self.chat_mode_button = button("Chat", name="mode",
                                       tooltip="Talk to a model trained on dialogue-shaped text, turn by turn")
        self.mode_group = QButtonGroup(self)
        mode_buttons = (self.generate_mode_button, self.score_mode_button, self.chat_mode_button)
        for i, mode_button in enumerate(mode_buttons):  # i: MODES[i]'s page
            mode_button.setCheckable(True)
            mode_button.setMinimumWidth(100)
            self.mode_group.addButton(mode_button, i)
        self.generate_mode_button.setChecked(True)
        self.mode_group.idClicked.connect(self._set_mode)
        layout.addLayout(row(*mode_buttons, 1))
        self.pages = QStackedWidget()
        for page in (self._build_generate_page(), self._build_score_page(), self._build_chat_page()):
            self.pages.addWidget(page)
        self.fill_view = FillMaskView()  # an encoder's page, in place of the modes' (_show_fill_mask)
        self.fill_view.fill_requested.connect(self._on_fill)
        self.pages.addWidget(self.fill_view)
        layout.addWidget(self.pages, 1)
        return center

    def _build_generate_page(self) -> QWidget:
        self.prompt_edit = text_editor("Prompt: the text the model continues (empty starts from nothing, "
                                       "if the tokenizer has a start token)", 80)
        self.generate_button = button("▶ Generate", self._on_generate, name="primary")
        self.stop_button = button("■ Stop", self._on_stop)
        self.continue_button = button("» Continue", self._on_continue,
                                      tooltip="Generate on from the end of the output")
        self.copy_button = button("Copy", lambda: QGuiApplication.clipboard().setText(self.output_text()),
                                  tooltip="Copy the prompt and the output")
        self.attention_button = button("→ Attention", lambda: self.send_to_attention.emit(self.output_text()),
                                       tooltip="Open the prompt and output in the Attention tab")
        placeholder = "Generated text appears here, each token coloured by the probability the model gave it."
        self.output_view = self._token_view(GENERATE, placeholder)
        self.second_view = self._token_view(SECOND, placeholder)
        self.status_label, self.second_status = _status_line(), _status_line()
        self.first_title = QLabel()  # side by side, which run and checkpoint the first column shows
        self.first_title.setMinimumWidth(1)  # a long run name is cut, never widening the tab
        self.second_run_combo = QComboBox()
        self.second_run_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.second_run_combo.setMinimumContentsLength(10)
        self.second_run_combo.setToolTip("The run the second column generates from: any run in the same runs folder")
        self.second_run_combo.currentIndexChanged.connect(self._choose_second_run)
        self.side_by_side_check = QCheckBox("Side by side")
        self.side_by_side_check.setToolTip("Generate from a second run or checkpoint too, with the same prompt "
                                           "and seed, in a second column")
        self.side_by_side_check.toggled.connect(self._set_side_by_side)
        self.second_checkpoint_combo = _checkpoint_combo(lambda: self._load(1))
        self.second_header = QWidget()
        header = row((self.second_run_combo, 1), self.second_checkpoint_combo)
        header.setContentsMargins(0, 0, 0, 0)
        self.second_header.setLayout(header)
        # A grid, so that the two columns' views and status lines line up whatever their headers' heights.
        columns = QGridLayout()
        columns.setContentsMargins(0, 0, 0, 0)
        for column, widgets in enumerate(((self.first_title, self.output_view, self.status_label),
                                          (self.second_header, self.second_view, self.second_status))):
            for grid_row, widget in enumerate(widgets):
                columns.addWidget(widget, grid_row, column)
        columns.setRowStretch(1, 1)
        columns.setColumnStretch(0, 1)
        self.columns = columns
        self._show_second_column(False)
        # Copy and → Attention act on the output: under it, beside the legend; Side by side beside Generate, whose
        # runs it doubles. Each row then fits the column of a 1024-pixel window.
        return _page(self._build_prompt_library(), self.prompt_edit,
                     row(self.generate_button, self.stop_button, self.continue_button, 1, self.side_by_side_check),
                     (columns, 1), row(self.copy_button, self.attention_button, 1, ColourLegend()))

    def _build_prompt_library(self) -> QHBoxLayout:
        """Saved prompts: pick one to load it; type a name and Save to keep the prompt under it."""
        self.prompts_combo = QComboBox()
        self.prompts_combo.setEditable(True)
        self.prompts_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)  # Save adds names, not Enter
        self.prompts_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.prompts_combo.setMinimumContentsLength(8)
        self.prompts_combo.lineEdit().setPlaceholderText("name a prompt to save it")
        self.prompts_combo.setToolTip(f"Saved prompts (kept in {self.prompts.path})")
        self.prompts_combo.activated.connect(self._pick_prompt)
        self.prompts_combo.editTextChanged.connect(lambda _: self._update_prompt_buttons())
        self.save_prompt_button = button("Save", self._save_prompt, tooltip="Save the prompt under this name")
        self.delete_prompt_button = button("Delete", self._delete_prompt, tooltip="Forget the prompt of this name")
        self._show_prompts()
        return row(QLabel("Prompt"), (self.prompts_combo, 1), self.save_prompt_button, self.delete_prompt_button)

    def _build_score_page(self) -> QWidget:
        self.score_edit = text_editor("Paste any text to see which tokens the model finds surprising", 110)
        self.score_button = button("Score", self._on_score, name="primary")
        self.score_summary = QLabel()
        self.score_summary.setWordWrap(True)
        self.score_summary.setTextInteractionFlags(self.score_summary.textInteractionFlags()
                                                   | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.score_view = self._token_view(SCORE, "Scored text appears here, each token coloured by its loss.")
        self.score_table = ScoreTable()  # an ensemble's members beside it
        return _page(self.score_edit, row(self.score_button, (self.score_summary, 1)), self.score_table,
                     (self.score_view, 1), row(1, ColourLegend(loss=True)))

    def _build_chat_page(self) -> QWidget:
        self.user_edit, self.bot_edit = QLineEdit(DEFAULT_USER), QLineEdit(DEFAULT_BOT)
        for edit, whose in ((self.user_edit, "your"), (self.bot_edit, "the model's")):
            edit.setToolTip(f"The name {whose} turns are written under: what the training text's speakers are "
                            "called (e.g. ROMEO and JULIET for a play)")
            edit.setMaximumWidth(130)
        self.new_chat_button = button("New chat", self._new_chat, tooltip="Start the conversation again")
        self.chat_view = self._token_view(CHAT, "The conversation appears here: your turns, and the model's "
                                                "replies coloured token by token.")
        self.message_edit = QLineEdit()
        self.message_edit.setPlaceholderText("Your message (Enter sends it)")
        self.message_edit.returnPressed.connect(self._on_send)
        self.send_button = button("Send", self._on_send, name="primary")
        self.chat_status = _status_line()
        return _page(row(QLabel("You"), self.user_edit, QLabel("Model"), self.bot_edit, 1, self.new_chat_button),
                     (self.chat_view, 1), self.chat_status, row((self.message_edit, 1), self.send_button),
                     row(1, ColourLegend()))

    def _token_view(self, view_name: str, placeholder: str) -> TokenView:
        view = TokenView()
        view.setPlaceholderText(placeholder)
        view.hovered.connect(lambda index: self._on_hover(view_name, index))
        view.clicked.connect(lambda index: self._pin(view_name, self.session.click_target(view_name, index)))
        return view

    # ---- the worker ---------------------------------------------------------------------------
    def _start_worker(self) -> None:
        self.worker = GenerationWorker()
        self._load_requested.connect(self.worker.load)
        self._ensemble_requested.connect(self.worker.load_ensemble)
        self._generate_requested.connect(self.worker.generate)
        self._score_requested.connect(self.worker.score)
        self._fill_requested.connect(self.worker.fill)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.started.connect(self._on_started)
        self.worker.tokens.connect(self._on_tokens)
        self.worker.finished.connect(self._on_finished)
        self.worker.scored.connect(self._on_scored)
        self.worker.filled.connect(self._on_filled)
        self.worker.failed.connect(self._on_failed)
        self._thread = start_in_background(self.worker, "generate-worker", interrupt=self.worker.stop_requested.set)

    # ---- runs and checkpoints -----------------------------------------------------------------
    def set_run(self, run_dir: Path | None) -> None:
        """Show the run the user picked in the runs browser (None: no run selected)."""
        self.session.select_run(run_dir)
        self._hide_message()
        run_dir = self.session.run_dir
        if run_dir is None:
            self.run_title.setText("No run selected")
            self.summary_label.setText("Pick a trained run in the runs browser to generate from it.")
            self._show_fill_mask(None)
            self._update_enabled()
            return
        self.run_title.setText(run_dir.name)
        _offer_checkpoints(self.checkpoint_combo, run_dir)
        self._load(0)
        if self.session.side_by_side:
            self._list_second_runs()

    def _list_second_runs(self) -> None:
        """Offer the runs of the first run's runs folder for the second column, keeping the one chosen; at first,
        the newest other run (or the same run, to compare its checkpoints)."""
        first = self.session.run_dir
        runs = [info.path for info in list_runs(first.parent)] if first is not None else []
        chosen = self.session.runs[1]
        if chosen not in runs:
            chosen = next((run for run in runs if run != first), first)
        self.second_run_combo.blockSignals(True)
        self.second_run_combo.clear()
        for run in runs:
            self.second_run_combo.addItem(run_label(run.name), str(run))
            self.second_run_combo.setItemData(self.second_run_combo.count() - 1, str(run), Qt.ItemDataRole.ToolTipRole)
        self.second_run_combo.setCurrentIndex(runs.index(chosen) if chosen in runs else -1)
        self.second_run_combo.blockSignals(False)
        self._choose_second_run()

    def _choose_second_run(self) -> None:
        data = self.second_run_combo.currentData()
        run = Path(data) if data else None
        if run != self.session.runs[1] or not self.session.summaries[1]:
            self.session.select_run(run, 1)
            if run is not None:
                _offer_checkpoints(self.second_checkpoint_combo, run)
            self._load(1)

    def _load(self, slot: int) -> None:
        if not self.session.start_loading(slot):
            return
        self.worker.stop_requested.set()  # a generation still running ends before the load is served
        (self.summary_label if slot == 0 else self.second_status).setText("Loading the checkpoint…")
        self._update_enabled()
        combo = self.checkpoint_combo if slot == 0 else self.second_checkpoint_combo
        ensemble = self.session.ensemble_runs() if slot == 0 else []
        if ensemble:
            self._ensemble_requested.emit(ensemble, combo.currentText(), self.session.mean)
        else:
            self._load_requested.emit(slot, self.session.runs[slot], combo.currentText())

    def _choose_ensemble(self) -> None:
        """Ask which runs predict with the chosen one (those sharing its tokenizer) and how they are mixed; on OK,
        load them on the worker."""
        first, summary = self.session.run_dir, self.session.summary
        if first is None or summary is None:
            return
        candidates = ensemble_candidates(first, summary.tokenizer.fingerprint(), self.checkpoint_combo.currentText())
        self.ensemble_dialog = dialog = EnsembleDialog(self, first, candidates, self.session.ensemble,
                                                       self.session.mean)
        dialog.accepted.connect(lambda: self._set_ensemble(dialog.chosen(), dialog.chosen_mean()))
        dialog.open()

    def _set_ensemble(self, runs: list[Path], mean: str) -> None:
        if (runs, mean) != (self.session.ensemble, self.session.mean):
            self.session.ensemble, self.session.mean = runs, mean
            self._load(0)

    def _on_loaded(self, summary: ModelSummary) -> None:
        outcome = self.session.model_loaded(summary)
        if outcome == "stale":
            return
        if outcome == "new run":
            self._clear_views(SLOT_VIEWS[summary.slot])
        if summary.slot == 0:
            self._show_fill_mask(summary)
            self.summary_label.setText(f"{summary.description}\n{summary.checkpoint_line} · {summary.tokenizer_line}")
            self.first_title.setText(f"{run_label(summary.run_dir.name)} · {summary.checkpoint}")
            self.first_title.setToolTip(f"{self.first_title.text()}\n{summary.description}")
        else:
            self.second_status.setText(f"{summary.description} · {summary.checkpoint_line}")
        self._hide_message()
        self._update_enabled()

    def _clear_views(self, names) -> None:
        """Empty views (the session has cleared what they showed)."""
        for name in names:
            self.views[name].clear_tokens()
            if name in self.statuses:
                self.statuses[name].clear()
        if SCORE in names:
            self.score_summary.clear()
            self.score_table.show_rows([])
        self._show_pin()

    def _set_side_by_side(self, on: bool) -> None:
        self.session.side_by_side = on
        self._show_second_column(on)
        if on:
            self._list_second_runs()
        self._update_enabled()

    def _show_second_column(self, on: bool) -> None:
        for widget in (self.first_title, self.second_header, self.second_view, self.second_status):
            widget.setVisible(on)
        self.columns.setColumnStretch(1, int(on))  # an empty column with a stretch would still take room

    # ---- generating ---------------------------------------------------------------------------
    def _on_generate(self) -> None:
        if self.pages.currentWidget() is self.fill_view:
            self.fill_view.request_fill()
        elif self.session.mode == SCORE:
            self._on_score()
        elif self.session.mode == CHAT:
            self._on_send()
        elif self.generate_button.isEnabled():
            self._request(self.session.generate(self.prompt_edit.toPlainText(), self.controls.settings()))

    def _on_continue(self) -> None:
        if self.continue_button.isEnabled():
            self._request(self.session.continue_output(self.controls.settings()))

    def _on_send(self) -> None:
        message = self.message_edit.text().strip()
        if message and self.send_button.isEnabled():
            speakers = Speakers(self.user_edit.text().strip() or DEFAULT_USER,
                                self.bot_edit.text().strip() or DEFAULT_BOT)
            self._request(self.session.send_chat(message, speakers, self.controls.settings()))

    def _request(self, requests: list[GenerationRequest]) -> None:
        self._hide_message()
        self._update_enabled()
        self.worker.stop_requested.clear()  # here, not in the worker: a Stop clicked before it starts still counts
        for request in requests:  # side by side, the worker runs them one after the other
            self.statuses[request.view].setText("Generating…")
            self._generate_requested.emit(request)

    def _on_started(self, started: GenerationStarted) -> None:
        self.controls.show_seed(started.seed)
        if self.session.generation_started(started):  # else continuing: the tokens go on after the output
            if started.view == CHAT:
                self.message_edit.clear()
                self._show_chat()
            else:
                view = self.views[started.view]
                view.clear_tokens()
                view.add_plain(self.session.outputs[started.view].prompt_text)
            self._show_pin()
        self._update_enabled()

    def _on_tokens(self, view_name: str, batch: list[TokenInfo]) -> None:
        count = self.session.tokens_received(view_name, batch)
        self.views[view_name].add_tokens(batch, _probability)
        self.statuses[view_name].setText(f"{count} tokens…")

    def _on_finished(self, done: GenerationFinished) -> None:
        self.statuses[done.view].setText(self.session.generation_finished(done))
        if done.view == CHAT:  # the reply was cut where the model began the user's next turn
            self._show_chat()
            self._show_pin()
        self._update_enabled()

    def _show_chat(self) -> None:
        """Draw the conversation again: the user's turns dimmed, the model's replies token by token."""
        self.chat_view.clear_tokens()
        for part in self.session.chat.parts:
            if isinstance(part, str):
                self.chat_view.add_plain(part)
            else:
                self.chat_view.add_tokens(part, _probability)

    def _new_chat(self) -> None:
        self.session.clear_views((CHAT,))
        self._clear_views((CHAT,))

    def _on_stop(self) -> None:
        self.worker.stop_requested.set()

    def _on_escape(self) -> None:
        action = self.session.escape_action()
        if action == "stop":
            self._on_stop()
        elif action == "unpin":
            self._pin(None, None)

    # ---- saved prompts ------------------------------------------------------------------------
    def _show_prompts(self, current: str = "") -> None:
        self.prompts_combo.blockSignals(True)
        self.prompts_combo.clear()
        self.prompts_combo.addItems(self.prompts.names())
        self.prompts_combo.setCurrentIndex(-1)
        self.prompts_combo.setEditText(current)
        self.prompts_combo.blockSignals(False)
        self._update_prompt_buttons()

    def _pick_prompt(self, index: int) -> None:
        name = self.prompts_combo.itemText(index)
        self.prompt_edit.setPlainText(self.prompts.text(name))
        self._update_prompt_buttons()

    def _save_prompt(self) -> None:
        try:
            name = self.prompts.save(self.prompts_combo.currentText(), self.prompt_edit.toPlainText())
        except LMCoreError as exc:
            self._show_message(str(exc))
            return
        self._show_prompts(name)

    def _delete_prompt(self) -> None:
        try:
            self.prompts.delete(self.prompts_combo.currentText())
        except LMCoreError as exc:
            self._show_message(str(exc))
            return
        self._show_prompts()

    def _update_prompt_buttons(self) -> None:
        name = self.prompts_combo.currentText().strip()
        self.save_prompt_button.setEnabled(bool(name))
        self.delete_prompt_button.setEnabled(name in self.prompts.prompts)

    # ---- scoring ------------------------------------------------------------------------------
    def _on_score(self) -> None:
        if not self.score_button.isEnabled():
            return
        self._hide_message()
        self.session.start_scoring()
        self._update_enabled()
        self.score_summary.setText("Scoring…")
        self._score_requested.emit(self.score_edit.toPlainText())

    def _on_scored(self, result, tokens: list[TokenInfo], members: list) -> None:
        self.session.text_scored(tokens)
        self._update_enabled()
        self.score_view.clear_tokens()
        self.score_view.add_tokens(tokens, _probability)
        self.score_summary.setText(describe_score(result))
        self.score_table.show_rows(score_rows(self.session.summary, members, result))
        self._show_pin()

    # ---- an encoder's blanks -------------------------------------------------------------------
    def _show_fill_mask(self, summary: ModelSummary | None) -> None:
        """An encoder gets the fill-in-the-blank view, without the modes, the sampling controls and the token
        inspector, which mean nothing for it; any other model (or none) the modes."""
        on = summary is not None and summary.fills_blanks
        for widget in (self.controls, self.inspector, self.ensemble_button, *self.mode_group.buttons()):
            widget.setVisible(not on)
        self.pages.setCurrentWidget(self.fill_view if on else self.pages.widget(MODES.index(self.session.mode)))
        if on:
            self.fill_view.set_model(summary.tokenizer, summary.context_length)

    def _on_fill(self, text: str) -> None:
        self._hide_message()
        self.session.start_filling()
        self._update_enabled()
        self.fill_view.status.setText("Filling…")
        self._fill_requested.emit(text)

    def _on_filled(self, text: str, found: list) -> None:
        self.session.blanks_filled()
        self._update_enabled()
        self.fill_view.show_results(text, found)

    # ---- inspecting tokens --------------------------------------------------------------------
    def _on_hover(self, view_name: str, index: int) -> None:
        token = self.session.hovered(view_name, index)
        if token is not None:
            self.inspector.show_token(token, index)

    def _pin(self, view_name: str | None, index: int | None) -> None:
        self.session.pin(view_name, index)
        self._show_pin()

    def _show_pin(self) -> None:
        """Mark the session's pinned token in its view (and no other) and show it in the inspector."""
        for name, view in self.views.items():
            view.set_pinned(self.session.pinned if name == self.session.pinned_view else None)
        self.inspector.show_token(self.session.pinned_token(), self.session.pinned or 0, pinned=True)

    def _set_mode(self, page: int) -> None:
        self._pin(None, None)  # in the view being left
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
                                (self.reload_button, actions.reload), (self.attention_button, actions.send_output),
                                (self.copy_button, actions.copy), (self.send_button, actions.send_chat),
                                (self.side_by_side_check, actions.side_by_side),
                                (self.fill_view.fill_button, actions.fill), (self.ensemble_button, actions.ensemble)):
            widget.setEnabled(enabled)

    def _on_failed(self, failure: JobFailed) -> None:
        self.session.job_failed(failure)
        message = failure.message
        if failure.view in self.statuses:
            self.statuses[failure.view].clear()
        elif failure.view == SCORE:
            self.score_summary.clear()
            self.score_table.show_rows([])
        elif self.session.awaiting_model(failure.slot):
            (self.summary_label if failure.slot == 0 else self.second_status).setText("No model loaded.")
        if failure.slot == 1:
            message = f"Second column: {message}"
        elif failure.view is None:  # no ensemble is loaded (an ensemble's failure leaves the run alone loaded)
            self.session.ensemble = []
        self._update_enabled()
        self._show_message(message)

    def _show_message(self, message: str) -> None:
        self.message.setText(message)
        self.message.show()

    def _hide_message(self) -> None:
        self.message.hide()
        self.message.clear()


def _checkpoint_combo(on_change) -> QComboBox:
    combo = QComboBox()
    combo.addItems(CHECKPOINTS)
    combo.setToolTip("best: lowest validation loss so far; last: the most recent save")
    combo.currentTextChanged.connect(lambda _: on_change())
    return combo


def _offer_checkpoints(combo: QComboBox, run_dir: Path) -> None:
    """Enable the checkpoints the run has in a checkpoint combo and choose one, without loading it."""
    offered, choice = checkpoints_to_offer(run_dir, combo.currentText())
    model = combo.model()
    for i, which in enumerate(CHECKPOINTS):
        model.item(i).setEnabled(which in offered)
    combo.blockSignals(True)
    combo.setCurrentText(choice)
    combo.blockSignals(False)


def _status_line() -> QLabel:
    label = QLabel()
    label.setObjectName("hint")
    label.setWordWrap(True)  # so a long status never widens its column (it wraps instead)
    label.setMinimumWidth(1)
    return label


def _page(*items: QWidget | QLayout | tuple) -> QWidget:
    """One mode's page: its widgets and rows from the top down, each a widget or a layout, or (either, stretch
    factor) for the one that takes the height left (the token views)."""
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    for item in items:
        item, stretch = item if isinstance(item, tuple) else (item, 0)
        if isinstance(item, QWidget):
            layout.addWidget(item, stretch)
        else:
            layout.addLayout(item, stretch)
    return page
