"""Generate tab: sample from a trained run and see into every token, or score any text under the model.

Views only: the model lives on a worker thread (generate_worker.py) that runs lmcore.generation, the same
engine code as `lmcore sample`.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame,
                               QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QSpinBox,
                               QSplitter, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from lmcore.generation import PRESETS, SamplingSettings
from lmcore.runs import RunFolder

from ..common.background import start_in_background, stop_background
from .views import ColorLegend, TokenInspector, TokenView
from .worker import (GenerationFinished, GenerationRequest, GenerationStarted, GenerationWorker,
                              ModelSummary, TokenInfo)
from ..common.style import ACCENT, BORDER, PANEL, monospace_font, set_tone

CUSTOM = "custom"
DEFAULT_PRESET = "balanced"
CHECKPOINTS = ("best", "last")


def parse_stop_strings(text: str) -> list[str]:
    """Comma-separated stop strings, trimmed; \\n is a line break, \\t a tab, \\, a comma and \\\\ a backslash."""
    escapes = {"n": "\n", "t": "\t", ",": "\x00", "\\": "\\"}  # \x00 stands in for a comma until the split
    out, chars = [], iter(text)
    for c in chars:
        out.append(escapes.get(next(chars, ""), "\\") if c == "\\" else c)
    parts = "".join(out).split(",")
    return [p.strip(" ").replace("\x00", ",") for p in parts if p.strip(" ")]


class GenerateTab(QWidget):
    send_to_attention = Signal(str)  # prompt + output, for the Attention tab
    # Requests to the worker thread (queued connections: the GUI thread never waits on the model).
    _load_requested = Signal(object, str)
    _generate_requested = Signal(object)
    _score_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._run_dir: Path | None = None
        self._summary: ModelSummary | None = None
        self._job: str | None = None  # "generate" or "score" while the worker is at it
        self._ids: list[int] = []  # prompt + generated ids of the output, for Continue
        self._prompt_text = ""
        self._generated: list[TokenInfo] = []
        self._scored: list[TokenInfo] = []
        self._pinned: int | None = None
        self._loaded_run: Path | None = None  # whose tokenizer made the ids in the outputs
        self._pending_prompt: str | None = None  # the text of the prompt being sent; None when continuing
        self._seed: int | None = None
        self._setting_preset = False  # True while a preset fills the fields, which then are not "custom"
        self._build()
        self._start_worker()
        self._apply_preset(DEFAULT_PRESET)
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
        self.body.addWidget(self._build_controls())
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
        top = QHBoxLayout()
        self.run_title = QLabel()
        self.run_title.setObjectName("runTitle")
        top.addWidget(self.run_title, 1)
        top.addWidget(QLabel("Checkpoint"))
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.addItems(CHECKPOINTS)
        self.checkpoint_combo.setToolTip("best: lowest validation loss so far; last: the most recent save")
        self.checkpoint_combo.currentTextChanged.connect(lambda _: self._load())
        top.addWidget(self.checkpoint_combo)
        self.reload_button = QToolButton()
        self.reload_button.setText("↻")
        self.reload_button.setToolTip("Reload the checkpoint (a run still training saves new ones)")
        self.reload_button.clicked.connect(self._load)
        top.addWidget(self.reload_button)
        layout.addLayout(top)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("hint")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        return header

    def _build_controls(self) -> QWidget:
        box = QFrame()
        box.setObjectName("section")
        box.setMinimumWidth(290)
        form = QFormLayout(box)
        title = QLabel("Sampling")
        title.setObjectName("runTitle")
        form.addRow(title)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems([*PRESETS, CUSTOM])
        self.preset_combo.setToolTip("precise: low temperature, focused · balanced · creative: high temperature, more surprising")
        self.preset_combo.currentTextChanged.connect(self._apply_preset)
        form.addRow("Preset", self.preset_combo)

        self.max_tokens_spin = QSpinBox(minimum=1, maximum=100_000, value=200, singleStep=50)
        form.addRow("Max new tokens", self.max_tokens_spin)
        self.temperature_spin = QDoubleSpinBox(minimum=0.05, maximum=5.0, singleStep=0.05, decimals=2)
        self.temperature_spin.setToolTip("Below 1 sharpens the distribution, above 1 flattens it")
        form.addRow("Temperature", self.temperature_spin)
        self.top_k_spin = QSpinBox(minimum=0, maximum=1_000_000, singleStep=5)
        self.top_k_spin.setSpecialValueText("off")
        self.top_k_spin.setToolTip("Sample only among the k most likely tokens (0: off)")
        form.addRow("Top-k", self.top_k_spin)
        self.top_p_spin = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, decimals=2)
        self.top_p_spin.setToolTip("Nucleus sampling: the smallest set of tokens whose probability reaches p (1: off)")
        form.addRow("Top-p", self.top_p_spin)
        self.repetition_spin = QDoubleSpinBox(minimum=1.0, maximum=5.0, singleStep=0.05, decimals=2)
        self.repetition_spin.setToolTip("Above 1 makes tokens already in the text less likely")
        form.addRow("Repetition penalty", self.repetition_spin)
        self.greedy_check = QCheckBox("Greedy (most likely token)")
        self.greedy_check.toggled.connect(self._update_enabled)
        self.greedy_check.toggled.connect(self._on_setting_edited)
        form.addRow(self.greedy_check)
        seed_row = QHBoxLayout()
        self.seed_spin = QSpinBox(minimum=0, maximum=2**31 - 1, value=1337)
        self.random_seed_check = QCheckBox("random")
        self.random_seed_check.setToolTip("Draw a new seed for each generation (the one used is shown here)")
        self.random_seed_check.toggled.connect(self._update_enabled)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.random_seed_check)
        form.addRow("Seed", seed_row)
        self.stop_edit = QLineEdit()
        self.stop_edit.setPlaceholderText(r"e.g. \n\n, THE END")
        self.stop_edit.setToolTip(r"Stop when the output contains one of these. Separate them with commas; "
                                  r"write \n for a line break and \, for a comma.")
        form.addRow("Stop at", self.stop_edit)
        for spin in (self.temperature_spin, self.top_k_spin, self.top_p_spin, self.repetition_spin):
            spin.valueChanged.connect(self._on_setting_edited)
        hint = QLabel("Ctrl+Enter generates, Esc stops.")
        hint.setObjectName("hint")
        form.addRow(hint)
        container = QWidget()  # keeps the section its natural height at the top of the column
        column = QVBoxLayout(container)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(box)
        column.addStretch(1)
        return container

    def _build_center(self) -> QWidget:
        center = QWidget()
        layout = QVBoxLayout(center)
        layout.setContentsMargins(4, 0, 4, 0)
        modes = QHBoxLayout()
        self.generate_mode_button = QPushButton("Generate")
        self.score_mode_button = QPushButton("Score text")
        self.mode_group = QButtonGroup(self)
        for i, button in enumerate((self.generate_mode_button, self.score_mode_button)):
            button.setCheckable(True)
            button.setObjectName("mode")
            button.setMinimumWidth(110)
            self.mode_group.addButton(button, i)
            modes.addWidget(button)
        self.generate_mode_button.setChecked(True)
        self.score_mode_button.setToolTip("Colour any text by how surprising the model finds each token")
        modes.addStretch(1)
        layout.addLayout(modes)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_generate_page())
        self.pages.addWidget(self._build_score_page())
        self.mode_group.idClicked.connect(self._set_mode)
        layout.addWidget(self.pages, 1)
        return center

    def _build_generate_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("Prompt: the text the model continues (empty starts from nothing, "
                                            "if the tokenizer has a start token)")
        self.prompt_edit.setMaximumHeight(80)
        self.prompt_edit.setFont(monospace_font())
        layout.addWidget(self.prompt_edit)
        buttons = QHBoxLayout()
        self.generate_button = QPushButton("▶  Generate")
        self.generate_button.setObjectName("primary")
        self.generate_button.clicked.connect(self._on_generate)
        self.stop_button = QPushButton("■  Stop")
        self.stop_button.clicked.connect(self._on_stop)
        self.continue_button = QPushButton("»  Continue")
        self.continue_button.setToolTip("Generate on from the end of the output")
        self.continue_button.clicked.connect(self._on_continue)
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.output_text()))
        self.attention_button = QPushButton("Send to Attention")
        self.attention_button.setToolTip("Open the prompt and output in the Attention tab")
        self.attention_button.clicked.connect(lambda: self.send_to_attention.emit(self.output_text()))
        for button in (self.generate_button, self.stop_button, self.continue_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.attention_button)
        layout.addLayout(buttons)
        self.output_view = self._token_view("Generated text appears here, each token coloured by the "
                                            "probability the model gave it.")
        layout.addWidget(self.output_view, 1)
        footer = QHBoxLayout()
        self.status_label = QLabel()
        self.status_label.setObjectName("hint")
        self.status_label.setWordWrap(True)  # so a long status never squeezes the legend
        footer.addWidget(self.status_label, 1)
        footer.addWidget(ColorLegend())
        layout.addLayout(footer)
        return page

    def _build_score_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.score_edit = QPlainTextEdit()
        self.score_edit.setPlaceholderText("Paste any text to see which tokens the model finds surprising")
        self.score_edit.setMaximumHeight(110)
        self.score_edit.setFont(monospace_font())
        layout.addWidget(self.score_edit)
        row = QHBoxLayout()
        self.score_button = QPushButton("Score")
        self.score_button.setObjectName("primary")
        self.score_button.clicked.connect(self._on_score)
        row.addWidget(self.score_button)
        self.score_summary = QLabel()
        self.score_summary.setWordWrap(True)
        self.score_summary.setTextInteractionFlags(self.score_summary.textInteractionFlags()
                                                   | self.score_summary.textInteractionFlags().TextSelectableByMouse)
        row.addWidget(self.score_summary, 1)
        layout.addLayout(row)
        self.score_view = self._token_view("Scored text appears here, each token coloured by its loss.")
        layout.addWidget(self.score_view, 1)
        footer = QHBoxLayout()
        footer.addStretch(1)
        footer.addWidget(ColorLegend(loss=True))
        layout.addLayout(footer)
        return page

    def _token_view(self, placeholder: str) -> TokenView:
        view = TokenView()
        view.setPlaceholderText(placeholder)
        view.hovered.connect(lambda index: self._on_hover(view, index))
        view.clicked.connect(lambda index: self._pin(None if index == self._pinned else index))
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
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self._summary = None
        self._hide_message()
        if self._run_dir is None:
            self.run_title.setText("No run selected")
            self.summary_label.setText("Pick a trained run in the runs browser to generate from it.")
            self._update_enabled()
            return
        self.run_title.setText(self._run_dir.name)
        folder = RunFolder(self._run_dir)
        available = [which for which in CHECKPOINTS if folder.checkpoint_path(which).is_file()]
        model = self.checkpoint_combo.model()
        for row, which in enumerate(CHECKPOINTS):
            model.item(row).setEnabled(which in available or not available)
        if available and self.checkpoint_combo.currentText() not in available:
            self.checkpoint_combo.blockSignals(True)
            self.checkpoint_combo.setCurrentText(available[0])
            self.checkpoint_combo.blockSignals(False)
        self._load()

    def _load(self) -> None:
        if self._run_dir is None:
            return
        self.worker.stop_requested.set()  # a generation still running ends before the load is served
        self._summary = None
        self.summary_label.setText("Loading the checkpoint…")
        self._update_enabled()
        self._load_requested.emit(self._run_dir, self.checkpoint_combo.currentText())

    def _on_loaded(self, summary: ModelSummary) -> None:
        if summary.run_dir != self._run_dir:
            return  # the user has picked another run since
        if summary.run_dir != self._loaded_run:
            self._clear_outputs()  # ids from another run's tokenizer must not be continued
        self._loaded_run = summary.run_dir
        self._summary = summary
        self.summary_label.setText(f"{summary.description}\n{summary.checkpoint_line} · {summary.tokenizer_line}")
        self._hide_message()
        self._update_enabled()

    def _clear_outputs(self) -> None:
        self._ids, self._generated, self._prompt_text = [], [], ""
        self._scored = []
        self.output_view.clear_tokens()
        self.score_view.clear_tokens()
        self.score_summary.clear()
        self.status_label.clear()
        self._pin(None)

    # ---- settings -----------------------------------------------------------------------------
    def _apply_preset(self, name: str) -> None:
        if name not in PRESETS:
            return
        preset = PRESETS[name]
        self._setting_preset = True
        self.temperature_spin.setValue(preset.temperature)
        self.top_k_spin.setValue(preset.top_k)
        self.top_p_spin.setValue(preset.top_p)
        self.repetition_spin.setValue(preset.repetition_penalty)
        self.greedy_check.setChecked(preset.greedy)
        self._setting_preset = False
        if self.preset_combo.currentText() != name:
            self.preset_combo.setCurrentText(name)

    def _on_setting_edited(self) -> None:
        if not self._setting_preset:
            self.preset_combo.setCurrentText(CUSTOM)

    def settings(self) -> SamplingSettings:
        """The sampling settings the controls describe (seed None when it is drawn at random)."""
        return SamplingSettings(
            max_new_tokens=self.max_tokens_spin.value(), temperature=self.temperature_spin.value(),
            top_k=self.top_k_spin.value(), top_p=self.top_p_spin.value(),
            repetition_penalty=self.repetition_spin.value(), greedy=self.greedy_check.isChecked(),
            seed=None if self.random_seed_check.isChecked() else self.seed_spin.value(),
            stop=parse_stop_strings(self.stop_edit.text()))

    # ---- generating ---------------------------------------------------------------------------
    def _on_generate(self) -> None:
        if self.pages.currentIndex() == 1:
            self._on_score()
        elif self.generate_button.isEnabled():
            self._request(self.prompt_edit.toPlainText())

    def _on_continue(self) -> None:
        if self.continue_button.isEnabled():
            self._request(list(self._ids))

    def _request(self, prompt: str | list[int]) -> None:
        self._hide_message()
        self._pending_prompt = prompt if isinstance(prompt, str) else None
        self._set_job("generate")
        self.status_label.setText("Generating…")
        self.worker.stop_requested.clear()  # here, not in the worker: a Stop clicked before it starts still counts
        self._generate_requested.emit(GenerationRequest(prompt, self.settings()))

    def _on_started(self, started: GenerationStarted) -> None:
        if self.random_seed_check.isChecked():
            self.seed_spin.setValue(started.seed)  # untick "random" to reproduce this output
        self._seed = started.seed
        if self._pending_prompt is None:
            return  # continuing: the tokens go on after the output
        self._pin(None)
        self._prompt_text = self._pending_prompt
        self._ids, self._generated = list(started.prompt_ids), []
        self.output_view.clear_tokens()
        self.output_view.add_plain(self._prompt_text)

    def _on_tokens(self, batch: list[TokenInfo]) -> None:
        self._ids.extend(token.id for token in batch)
        self._generated.extend(batch)
        self.output_view.add_tokens(batch, lambda token: token.probability)
        self.status_label.setText(f"{len(self._generated)} tokens…")

    def _on_finished(self, done: GenerationFinished) -> None:
        self._set_job(None)
        rate = f" · {done.tokens / done.seconds:,.0f} tok/s" if done.seconds > 0 and done.tokens else ""
        first = f" · first token {1000 * done.first_token_seconds:,.0f} ms" if done.first_token_seconds else ""
        reason = {"stopped": "stopped", "max tokens": "max tokens reached", "stop string": "stop string found"}
        self.status_label.setText(f"{done.tokens} tokens{rate}{first} · seed {self._seed} · {reason[done.reason]}")

    def _on_stop(self) -> None:
        self.worker.stop_requested.set()

    def _on_escape(self) -> None:
        if self._job == "generate":
            self._on_stop()
        elif self._pinned is not None:
            self._pin(None)

    # ---- scoring ------------------------------------------------------------------------------
    def _on_score(self) -> None:
        if not self.score_button.isEnabled():
            return
        self._hide_message()
        self._set_job("score")
        self.score_summary.setText("Scoring…")
        self._score_requested.emit(self.score_edit.toPlainText())

    def _on_scored(self, result, tokens: list[TokenInfo]) -> None:
        self._set_job(None)
        self._pin(None)
        self._scored = tokens
        self.score_view.clear_tokens()
        self.score_view.add_tokens(tokens, lambda token: token.probability)  # p = exp(-loss)
        self.score_summary.setText(
            f"loss <b>{result.mean_loss:.3f}</b> nats/token · perplexity <b>{result.perplexity:.2f}</b> · "
            f"<b>{result.bits_per_char:.3f}</b> bits/char<br>total {result.total_loss:.1f} nats over "
            f"{result.predicted} predicted tokens")

    # ---- inspecting tokens --------------------------------------------------------------------
    def _tokens_of(self, view: TokenView) -> list[TokenInfo]:
        return self._generated if view is self.output_view else self._scored

    def _current_view(self) -> TokenView:
        return self.output_view if self.pages.currentIndex() == 0 else self.score_view

    def _on_hover(self, view: TokenView, index: int) -> None:
        if self._pinned is None and 0 <= index < len(self._tokens_of(view)):
            self.inspector.show_token(self._tokens_of(view)[index], index)

    def _pin(self, index: int | None) -> None:
        view = self._current_view()
        tokens = self._tokens_of(view)
        if index is not None and not 0 <= index < len(tokens):
            index = None
        self._pinned = index
        view.set_pinned(index)
        self.inspector.show_token(tokens[index] if index is not None else None, index or 0, pinned=True)

    def _set_mode(self, mode: int) -> None:
        self._pin(None)  # in the view being left
        self.pages.setCurrentIndex(mode)

    # ---- state --------------------------------------------------------------------------------
    def output_text(self) -> str:
        """The prompt and the generated text, as the model wrote it."""
        return self._prompt_text + "".join(token.text for token in self._generated)

    def _set_job(self, job: str | None) -> None:
        self._job = job
        self._update_enabled()

    def _update_enabled(self) -> None:
        busy = self._job is not None
        ready = self._summary is not None and not busy
        self.generate_button.setEnabled(ready)
        self.score_button.setEnabled(ready)
        self.continue_button.setEnabled(ready and bool(self._generated))
        self.stop_button.setEnabled(self._job == "generate")
        self.checkpoint_combo.setEnabled(self._run_dir is not None)
        self.reload_button.setEnabled(self._run_dir is not None and not busy)
        self.attention_button.setEnabled(not busy and bool(self._generated))
        sampling = not self.greedy_check.isChecked()
        for spin in (self.temperature_spin, self.top_k_spin, self.top_p_spin):
            spin.setEnabled(sampling)
        self.seed_spin.setEnabled(not self.random_seed_check.isChecked())

    def _on_failed(self, message: str) -> None:
        failed, self._job = self._job, None
        if failed == "generate":
            self.status_label.clear()
        elif failed == "score":
            self.score_summary.clear()
        elif self._summary is None and self._run_dir is not None:
            self.summary_label.setText("No model loaded.")
        self._update_enabled()
        self.message.setText(message)
        self.message.show()

    def _hide_message(self) -> None:
        self.message.hide()
        self.message.clear()
