"""The Train tab's form: every setting of a run, checked as it is typed, turned into an lmcore RunConfig.

The form only shows and forwards. lmcore decides what is valid (RunConfig.validate, the model configs), what a
corpus holds (inspect_corpus) and what a run will cost (estimate_run); the form marks the field each message names.
"""
from __future__ import annotations

import copy
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QGridLayout, QHBoxLayout, QInputDialog, QLabel,
                               QMessageBox, QPushButton, QStyle, QStyleOptionComboBox, QStylePainter, QToolButton,
                               QVBoxLayout, QWidget)

from lmcore.config import RunConfig, config_from_dict, config_to_dict, load_config, save_config
from lmcore.corpus import CorpusSummary, corpus_length_problem, inspect_corpus, read_corpus
from lmcore.device import memory_bytes, pick_device
from lmcore.errors import ConfigError, LMCoreError
from lmcore.estimate import RunEstimate, estimate_run, estimate_vocab_size
from lmcore.models import MODEL_CONFIGS
from lmcore.runs import RunFolder
from lmcore.tokenizers import UNKNOWN_SHARE_LIMIT, Tokenizer, load_tokenizer, long_words_warning

from .corpus_picker import CorpusPicker
from .fields import (BY_EPOCHS, BY_STEPS, CLASSIFIER, FIELDS, FORM_ONLY, GPUS, LANGUAGE_MODEL, MASKED_LM, SECTIONS,
                     TASK, TRAIN_BY, Field, field_tip, make_editor)
from ..common.style import fix_size, set_invalid, set_tone
from ..common.text import format_bytes, format_count, format_duration

CORPUS_KEY = "data.train"
VALIDATE_DELAY_MS = 150  # re-check once typing pauses, not on every keystroke
MEMORY_WARNING_SHARE = 0.5  # the estimate is rough: past half of the memory, a run may not fit
# A number field's least width, not that of its largest value (a spin box up to 10^9 asks for 165 px), so that
# the form column fits a 1024-pixel window; the splitter gives the fields more whenever the window has it
FIELD_MIN_WIDTH = 80
PRESET_MIN_WIDTH = 110  # the preset row then needs no more than the widest section: a long name is elided
MODEL_DEFAULTS = {family: asdict(config_class()) for family, config_class in MODEL_CONFIGS.items()}


class ElidingComboBox(QComboBox):
    """A combo box narrower than its longest item (a preset of the user's may have a long name) that ends its text
    with "…" where Qt would cut it off."""

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        if self.currentIndex() < 0:  # as QComboBox shows its placeholder
            option.palette.setBrush(QPalette.ColorRole.ButtonText, option.palette.placeholderText())
            option.currentText = self.placeholderText()
        field = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                            QStyle.SubControl.SC_ComboBoxEditField, self)
        option.currentText = self.fontMetrics().elidedText(option.currentText, Qt.TextElideMode.ElideRight,
                                                           field.width() - 2)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class Section(QFrame):
    """A titled group of fields that folds away, so the whole form fits a laptop screen."""

    def __init__(self, title: str, expanded: bool):
        super().__init__()
        self.setObjectName("section")
        self.header = QToolButton()
        self.header.setObjectName("sectionHeader")
        self.header.setText(title)
        self.header.setCheckable(True)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setToolTip(f"Show or hide the {title.lower()} settings.")
        self.body = QWidget()
        self.form = QFormLayout(self.body)
        self.form.setContentsMargins(2, 0, 2, 6)
        # The gap after a label is part of the label's width (TrainForm._label_width): Qt decides whether a row
        # wraps without counting the spacing, and would squeeze a choice by it rather than wrap it
        self.form.setHorizontalSpacing(0)
        self.form.setVerticalSpacing(6)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        # in a narrow column, a choice too wide to sit beside its label goes under it, rather than being cut
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 2, 8, 2)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(self.body)
        self.header.toggled.connect(self._show_body)
        self.header.setChecked(expanded)
        self._show_body(expanded)

    def _show_body(self, expanded: bool) -> None:
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)

    def expand(self) -> None:
        self.header.setChecked(True)


class Summary(QFrame):
    """What the run will cost: parameters, tokens per step, memory, and time per step once training tells; and how
    far back each prediction can see."""

    NAMES = ("Parameters", "Tokens / step", "Memory (est.)", "Time / step", "Receptive field")

    def __init__(self):
        super().__init__()
        self.setObjectName("summary")
        self.setToolTip("Estimated from the settings before training: the parameter count is exact, memory is "
                        "a rough fp32 figure (weights, gradients, optimizer state, activations). Time per step "
                        "appears once a run is training. The receptive field is how many tokens each prediction "
                        "can see, its own included: a Transformer's context, the MLP's n - 1, the reach of the "
                        "CNN's convolutions; an RNN's state carries everything before.")
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 8, 10, 8)
        grid.setVerticalSpacing(0)
        self.values: dict[str, QLabel] = {}
        for i, name in enumerate(self.NAMES):  # two by two: fits a narrow form column
            value, caption = QLabel("–"), QLabel(name)
            value.setObjectName("statValue")
            fix_size(value, "≈ 999.9 MB")
            caption.setObjectName("statName")
            row, column = 2 * (i // 2), i % 2
            grid.addWidget(value, row, column)
            grid.addWidget(caption, row + 1, column)
            self.values[name] = value
        self.warning = QLabel()  # a run that may not fit in memory; one that cannot fit is an error, and blocked
        self.warning.setObjectName("banner")
        self.warning.setWordWrap(True)
        set_tone(self.warning, "warning")
        grid.addWidget(self.warning, 2 * len(self.NAMES), 0, 1, 2)
        self.warning.hide()

    def show_estimate(self, estimate: RunEstimate | None) -> None:
        self.values["Parameters"].setText(format_count(estimate.parameters) if estimate else "–")
        self.values["Tokens / step"].setText(f"{estimate.tokens_per_step:,}" if estimate else "–")
        self.values["Memory (est.)"].setText(f"≈ {format_bytes(estimate.memory_bytes)}" if estimate else "–")
        field = estimate.receptive_field if estimate else None
        self.values["Receptive field"].setText("–" if estimate is None else "all before" if field is None
                                               else f"{field:,} tokens")

    def show_warning(self, message: str | None) -> None:
        self.warning.setText(message or "")
        self.warning.setVisible(message is not None)

    def show_step_time(self, seconds: float | None) -> None:
        self.values["Time / step"].setText("–" if seconds is None else format_duration(seconds))


class TrainForm(QWidget):
    """Emits validity_changed(bool) as the settings become trainable or not; config() is the RunConfig."""

    validity_changed = Signal(bool)
    validated = Signal(bool)  # after every validation: the errors may have changed while the validity did not
    preset_saved = Signal(str)  # a message for the status bar

    def __init__(self, preset_dirs: list[Path], user_presets_dir: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.preset_dirs = [Path(d) for d in preset_dirs]
        self.user_presets_dir = Path(user_presets_dir)
        self.base: dict[str, Any] = config_to_dict(RunConfig())  # settings the form does not show ride along
        self.fine_tune_source: Path | None = None
        self._fine_tune_tokenizer: Tokenizer | None = None
        self._corpus_cache: tuple[tuple, CorpusSummary] | None = None
        self._unknown_share_cache: tuple[tuple, float] | None = None
        self.unknown_text_warning: str | None = None  # set when the new text is mostly unknown: Start asks first
        self._config: RunConfig | None = None
        self.errors: dict[str, str] = {}
        self.editors: dict[str, Any] = {}
        self._rows: dict[str, tuple[QFormLayout, int, QLabel]] = {}  # key -> (layout, row, its error label)
        self._labels: dict[str, QLabel] = {}
        self._tips_family = "transformer"  # whose help the model fields' tooltips show (make_editor's)
        self.sections: dict[str, Section] = {}

        self.preset = ElidingComboBox()
        self.preset.setMinimumWidth(PRESET_MIN_WIDTH)
        self.preset.setPlaceholderText("Preset")  # settings changed since one was chosen: none is current
        self.preset.setToolTip("Ready-made settings (resources/presets and your own). Choosing one sets every "
                               "setting except the corpus.")
        save_preset = QPushButton("Save preset…")
        save_preset.setToolTip("Keep the current settings as a preset of your own.")
        self.fine_tune_banner = QLabel()
        self.fine_tune_banner.setObjectName("banner")
        self.fine_tune_banner.setWordWrap(True)
        set_tone(self.fine_tune_banner, "warning")
        self.leave_fine_tune_button = QPushButton("Train a new model instead")
        self.leave_fine_tune_button.setToolTip("Leave fine-tuning: the model and tokenizer settings apply again.")
        self.corpus = CorpusPicker()
        self.general_error = QLabel()
        self.general_error.setObjectName("fieldError")
        self.general_error.setWordWrap(True)
        self.summary = Summary()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        preset_row = QHBoxLayout()  # no "Preset" label: the names then fit beside the button in a narrow column
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(save_preset)
        layout.addLayout(preset_row)
        layout.addWidget(self.fine_tune_banner)
        layout.addWidget(self.leave_fine_tune_button)
        # One label width for every section, so the fields line up down the whole form.
        self._label_width = max(self.fontMetrics().horizontalAdvance(f.label) for f in FIELDS.values()) + 22
        for title, expanded, fields in SECTIONS:
            section = Section(title, expanded)
            self.sections[title] = section
            if title == "Corpus":
                section.form.addRow(self.corpus)
            for field in fields:
                self._add_field(section.form, field)
            layout.addWidget(section)
        layout.addWidget(self.general_error)
        layout.addStretch(1)
        self.fine_tune_banner.hide()
        self.leave_fine_tune_button.hide()
        self.general_error.hide()

        self._validate_timer = QTimer(self, singleShot=True, interval=VALIDATE_DELAY_MS)
        self._validate_timer.timeout.connect(self.validate)
        for editor in self.editors.values():
            editor.edited.connect(self._on_edited)
        self.corpus.paths_changed.connect(self._on_edited)
        self.editors[TASK].edited.connect(self._on_task_chosen)
        self.editors["model.family"].edited.connect(self._on_family_chosen)
        self.preset.currentIndexChanged.connect(self._on_preset_chosen)
        save_preset.clicked.connect(self.save_preset)
        self.leave_fine_tune_button.clicked.connect(self.leave_fine_tune)
        self.refresh_presets()

    def least_width(self) -> int:
        """The width the form needs with every section open: a folded section's fields count too, so that
        opening it never needs more than the column has."""
        widths = [self.minimumSizeHint().width()]
        for section in self.sections.values():
            margins = section.layout().contentsMargins()
            widths.append(section.body.minimumSizeHint().width() + margins.left() + margins.right()
                          + 2 * section.frameWidth())
        return max(widths)

    def _add_field(self, form: QFormLayout, field: Field) -> None:
        editor = make_editor(field)
        if not isinstance(editor, QComboBox):  # a choice keeps its width: its text would be cut, not elided
            editor.setMinimumWidth(FIELD_MIN_WIDTH)
        label = QLabel(field.label)
        label.setToolTip(editor.toolTip())
        label.setMinimumWidth(self._label_width)
        error = QLabel()
        error.setObjectName("fieldError")
        error.setWordWrap(True)
        row = form.rowCount()
        form.addRow(label, editor)
        form.addRow(error)
        form.setRowVisible(row + 1, False)
        self.editors[field.key] = editor
        self._labels[field.key] = label
        self._rows[field.key] = (form, row, error)

    # ---- presets ---------------------------------------------------------------------------------
    def refresh_presets(self) -> None:
        current = self.preset.currentData()
        current = Path(current) if current else None
        self.preset.blockSignals(True)
        self.preset.clear()
        for folder in (*self.preset_dirs, self.user_presets_dir):
            for path in sorted(folder.glob("*.toml")):
                self.preset.addItem(path.stem, str(path))
        self.preset.blockSignals(False)
        self.show_preset(current)

    def preset_path(self, name: str) -> Path | None:
        index = self.preset.findText(name)
        return Path(self.preset.itemData(index)) if index >= 0 else None

    def _on_preset_chosen(self, index: int) -> None:
        if index >= 0:
            self.load_preset(Path(self.preset.itemData(index)))

    def load_preset(self, path: Path) -> None:
        """Every setting from the preset, except the corpus (unless none is chosen yet, or the preset is for another
        task: a classifier reads labelled files, a language model text)."""
        try:
            config = load_config(path)
        except LMCoreError as exc:
            QMessageBox.warning(self, "Cannot load preset", str(exc))
            return
        self.leave_fine_tune()
        same_task = (config.task == "classify") == (self.task() == CLASSIFIER)
        self.load_settings(config_to_dict(config), keep_corpus=bool(self.corpus.paths()) and same_task)
        self.show_preset(path)

    def show_preset(self, path: Path | None) -> None:
        """Show which preset the settings came from, without loading it again."""
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(self.preset.findData(str(path)) if path is not None else -1)
        self.preset.blockSignals(False)

    def save_preset(self) -> None:
        name, ok = QInputDialog.getText(self, "Save as preset", "Preset name:", text=self.editors["name"].text())
        name = name.strip()
        if not ok or not name:
            return
        config = self.config()
        if config is None:
            QMessageBox.warning(self, "Cannot save preset", "Fix the settings marked in red first.")
            return
        config.init_from = ""
        path = self.user_presets_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.toml"
        try:
            self.user_presets_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, path)
        except OSError as exc:
            QMessageBox.warning(self, "Cannot save preset", f"{path}: {exc.strerror or exc}")
            return
        self.refresh_presets()
        self.show_preset(path)
        self.preset_saved.emit(f"Saved preset {path.stem} to {path}")

    # ---- settings in and out ---------------------------------------------------------------------
    def load_settings(self, raw: dict[str, Any], keep_corpus: bool = False) -> None:
        """Show a config dict (as config_to_dict makes); unknown or missing keys keep their current values."""
        self.base = copy.deepcopy(raw)
        family = raw.get("model", {}).get("family", "transformer")
        for key, editor in self.editors.items():
            value = self._value_in(raw, key, family)
            if value is not None:
                editor.show_value(value)
        if not keep_corpus:
            self.corpus.set_paths(list(raw.get("data", {}).get("train", [])))
        self._on_edited()

    def _value_in(self, raw: dict[str, Any], key: str, family: str) -> Any:
        if key == TASK:
            return CLASSIFIER if raw.get("task") == "classify" else MASKED_LM if family == "encoder" else LANGUAGE_MODEL
        epochs = raw.get("train", {}).get("epochs", 0)
        if key == TRAIN_BY:
            return BY_EPOCHS if epochs > 0 else BY_STEPS
        if key == "train.epochs" and not epochs:
            return 1.0  # 0 means "count steps"; switching to epochs then starts from one pass
        section, _, name = key.rpartition(".")
        table = raw.get(section, {}) if section else raw
        if section == "model" and name not in table:
            return MODEL_DEFAULTS.get(family, {}).get(name)  # a field this family has, at its default
        return table.get(name)

    def settings(self) -> dict[str, Any]:
        """The config dict as the form shows it; an unreadable number keeps its last good value."""
        return self._settings({})

    def _settings(self, errors: dict[str, str]) -> dict[str, Any]:
        raw = copy.deepcopy(self.base)
        raw["data"]["train"] = self.corpus.paths()
        raw["init_from"] = str(self.fine_tune_source) if self.fine_tune_source else ""
        raw["task"] = "classify" if self.task() == CLASSIFIER else "lm"
        family = self.editors["model.family"].config_value()
        if self.fine_tune_source is None:
            raw["model"] = {"family": family}
        for key, editor in self.editors.items():
            if key in FORM_ONLY or not self.is_shown(key) or (key.startswith("model.") and self.fine_tune_source):
                continue
            try:
                value = editor.config_value()
            except ConfigError as exc:
                errors[key] = str(exc)
                continue
            section, _, name = key.rpartition(".")
            (raw.setdefault(section, {}) if section else raw)[name] = value
        if self.editors[TRAIN_BY].config_value() == BY_STEPS:
            raw["train"]["epochs"] = 0.0
        return raw  # a Transformer's context_length (not a field here) defaults to train.context

    def processes(self) -> int:
        """Training processes to start: the GPUs field where the machine has several GPUs, else one."""
        return self.editors[GPUS].config_value() if GPUS in self.editors and self.is_shown(GPUS) else 1

    def task(self) -> str:
        """The task chosen: LANGUAGE_MODEL, MASKED_LM or CLASSIFIER."""
        return self.editors[TASK].config_value()

    def _on_task_chosen(self) -> None:
        """A masked language model is an encoder; a language model that continues text is not."""
        family = self.editors["model.family"]
        if self.task() == MASKED_LM:
            family.show_value("encoder")
        elif self.task() == LANGUAGE_MODEL and family.config_value() == "encoder":
            family.show_value("transformer")
        self.corpus.set_labelled(self.task() == CLASSIFIER)

    def _on_family_chosen(self) -> None:
        if self.task() == LANGUAGE_MODEL and self.editors["model.family"].config_value() == "encoder":
            self.editors[TASK].show_value(MASKED_LM)  # an encoder learns to fill in blanks, not to continue text

    def is_shown(self, key: str) -> bool:
        condition = FIELDS[key].show_if
        return condition is None or self.editors[condition[0]].config_value() in condition[1]

    def set_corpus(self, paths: list[str]) -> None:
        self.corpus.set_paths([str(p) for p in paths])

    # ---- fine-tuning -----------------------------------------------------------------------------
    def enter_fine_tune(self, run_dir: Path) -> None:
        """Train the run's model further on new text: its model and tokenizer settings are fixed."""
        try:
            source = RunFolder(run_dir).load_config()
            self._fine_tune_tokenizer = load_tokenizer(RunFolder(run_dir).tokenizer_dir)
        except LMCoreError as exc:
            QMessageBox.warning(self, "Cannot fine-tune", str(exc))
            return
        raw = self.settings()
        written = config_to_dict(source)
        raw["model"], raw["tokenizer"] = written["model"], written["tokenizer"]
        raw["train"]["context"] = source.train.context  # the model's window; it may be lowered, not raised
        raw["name"] = f"{source.name}-finetune"
        self.fine_tune_source = Path(run_dir)
        self.load_settings(raw, keep_corpus=True)
        for title in ("Tokenizer", "Model"):
            self.sections[title].setEnabled(False)
        self.fine_tune_banner.setText(
            f"Fine-tuning “{Path(run_dir).name}”: its model and tokenizer carry on. Choose the new text below; "
            "a lower learning rate (e.g. a tenth) keeps what it learned.")
        self.fine_tune_banner.show()
        self.leave_fine_tune_button.show()
        self.sections["Corpus"].expand()

    def enter_distill(self, run_dir: Path) -> None:
        """A new run of half the teacher's layers and width (at least one layer, one head's worth), on the teacher's
        text with its tokenizer settings, distilled from it."""
        try:
            teacher = RunFolder(run_dir).load_config()
        except LMCoreError as exc:
            QMessageBox.warning(self, "Cannot distil", str(exc))
            return
        self.leave_fine_tune()
        raw = config_to_dict(teacher)
        model = raw["model"]
        for key in ("n_layer", "n_embd", "n_hidden"):  # a tied RNN's n_embd and n_hidden stay equal
            if key in model:
                model[key] = max(1, model[key] // 2)
        if "n_head" in model:  # the width must still divide by the heads
            model["n_embd"] = max(model["n_head"], model["n_embd"] // model["n_head"] * model["n_head"])
        raw["name"] = f"{teacher.name}-student"
        raw["distill"] = {**raw["distill"], "teacher": str(run_dir)}
        self.load_settings(raw)
        self.sections["Distillation"].expand()

    def leave_fine_tune(self) -> None:
        if self.fine_tune_source is None:
            return
        self.fine_tune_source, self._fine_tune_tokenizer = None, None
        for title in ("Tokenizer", "Model"):
            self.sections[title].setEnabled(True)
        self.fine_tune_banner.hide()
        self.leave_fine_tune_button.hide()
        self._on_edited()

    # ---- validation ------------------------------------------------------------------------------
    def _on_edited(self, *_) -> None:
        self._update_visibility()
        self._validate_timer.start()

    def _update_visibility(self) -> None:
        for key, (form, row, _) in self._rows.items():
            form.setRowVisible(row, self.is_shown(key))
        for title, _, fields in SECTIONS:  # a section none of whose fields apply (a classifier's) is left out
            self.sections[title].setVisible(any(self.is_shown(field.key) for field in fields))
        family = self.editors["model.family"].config_value()
        if family != self._tips_family:  # e.g. the number of layers means a little else in an RNN
            self._tips_family = family
            for key in (key for key in self.editors if key.startswith("model.")):
                tip = field_tip(FIELDS[key], family)
                self.editors[key].setToolTip(tip)
                self._labels[key].setToolTip(tip)

    def validate(self) -> bool:
        """Check everything now; mark and explain each problem. Returns whether Start may be pressed: any failure
        here, foreseen or not, leaves Start disabled with the reason shown."""
        self._validate_timer.stop()
        was_valid = self.is_valid()
        errors: dict[str, str] = {}
        raw = self._settings(errors)
        config, estimate, also_at_fault, memory = None, None, [], None
        corpus = self._inspect_corpus(raw)
        try:
            config = config_from_dict(raw)
            config.validate()
            vocab = self._fine_tune_tokenizer.vocab_size if self._fine_tune_tokenizer else estimate_vocab_size(
                config, corpus)
            estimate = estimate_run(config, vocab or 2)  # also checks the model settings
            estimate = estimate if vocab else None
            memory = self._memory_check(estimate, config.train.device) if estimate else None
        except ConfigError as exc:
            config = None
            named = self._fields_at_fault(exc) or [""]
            errors.setdefault(named[0], str(exc))
            also_at_fault = named[1:]  # e.g. n_head too, when n_embd is not divisible by it
        except Exception as exc:  # lmcore should have worded this; still block Start and say what went wrong
            config = None
            errors.setdefault("", f"These settings cannot be checked ({type(exc).__name__}: {exc}); change the "
                                  "setting you last edited.")
        problem = corpus.problem
        # a language model's text is split at a point, which needs a valid val_fraction; a classifier's rows are split
        if not problem and config is not None and not config.data.val and config.task == "lm":
            problem = corpus_length_problem(corpus.chars, config.data.val_fraction, config.train.context)
        self.corpus.show_summary(corpus, problem)
        if problem:
            errors[CORPUS_KEY] = problem
        if memory and memory[0] == "error":
            errors.setdefault("", memory[1])
        share = self._unknown_share(raw) if not problem else None
        unknown = (f"{share:.1%} of this text is unknown to the model's tokenizer and would become <unk>."
                   if share else None)
        self.unknown_text_warning = None
        if share and share > UNKNOWN_SHARE_LIMIT:
            self.unknown_text_warning = unknown + " The fine-tuned model would mostly learn to predict <unk>."
        self._config = config if not errors else None
        self.errors = errors
        self._show_errors(errors, also_at_fault)
        self.summary.show_estimate(estimate)
        tok = raw.get("tokenizer", {}) if isinstance(raw.get("tokenizer"), dict) else {}
        spaceless = (long_words_warning(corpus.preview) if tok.get("kind") == "word"
                     and tok.get("segmenter", "whitespace") == "whitespace" else None)
        warnings = [memory[1] if memory and memory[0] == "warning" else None, self.unknown_text_warning or unknown,
                    spaceless]
        self.summary.show_warning("\n\n".join(w for w in warnings if w) or None)
        if self.is_valid() != was_valid:
            self.validity_changed.emit(self.is_valid())
        self.validated.emit(self.is_valid())
        return self.is_valid()

    def _memory_check(self, estimate: RunEstimate, device_choice: str) -> tuple[str, str] | None:
        """("error", why) when the run cannot fit in the device's memory, ("warning", why) when it takes most of
        it (the estimate is rough), None when it fits or the memory is unknown."""
        device = pick_device(device_choice)
        available, needed = memory_bytes(device), estimate.memory_bytes
        if available is None or needed <= MEMORY_WARNING_SHARE * available:
            return None
        where = "the GPU's" if device.type == "cuda" else "this machine's"
        lower = "lower model.n_embd, model.n_layer, train.batch_size or train.context"
        if needed > available:
            return "error", (f"This run needs about {format_bytes(needed)} of memory, more than {where} "
                             f"{format_bytes(available)}: {lower}.")
        return "warning", (f"This run needs about {format_bytes(needed)} of memory, most of {where} "
                           f"{format_bytes(available)}: it may run out. To be safe, {lower}.")

    def _inspect_corpus(self, raw: dict[str, Any]) -> CorpusSummary:
        """Read the corpus again only when its paths, encoding policy or files changed."""
        paths, errors = raw["data"]["train"], raw["data"]["encoding_errors"]
        try:
            stamps = tuple((p, Path(p).stat().st_mtime_ns if Path(p).exists() else 0) for p in paths)
            key = (stamps, errors)
            if self._corpus_cache is None or self._corpus_cache[0] != key:
                self._corpus_cache = (key, inspect_corpus(paths, errors))
        except OSError as exc:  # e.g. a file this user may not read
            self._corpus_cache = None
            return CorpusSummary([], 0, 0, 0, 0, 0, "", f"Cannot read the corpus {exc.filename or paths[0]}: "
                                 f"{exc.strerror or exc}. Check its permissions, or pick another file.")
        return self._corpus_cache[1]

    def _unknown_share(self, raw: dict[str, Any]) -> float | None:
        """When fine-tuning, the share of the new text the model's tokenizer cannot represent (it is trained on
        <unk> otherwise, and its loss falls all the same); read again only when the corpus or the run changed."""
        if self._fine_tune_tokenizer is None or self._corpus_cache is None:
            return None
        key = (self._corpus_cache[0], self._fine_tune_tokenizer.fingerprint())
        if self._unknown_share_cache is None or self._unknown_share_cache[0] != key:
            try:
                text, _ = read_corpus(raw["data"]["train"], encoding_errors=raw["data"]["encoding_errors"])
            except LMCoreError:  # inspect_corpus has read it just now; a file changed since is its next check's
                return None
            self._unknown_share_cache = (key, self._fine_tune_tokenizer.unknown_share(text))
        return self._unknown_share_cache[1]

    def _fields_at_fault(self, exc: ConfigError) -> list[str]:
        """The shown fields a ConfigError is about: its field, then the others its rule involves."""
        return [key for key in (exc.field, *exc.also)
                if key == CORPUS_KEY or (key in self.editors and self.is_shown(key))]

    def _show_errors(self, errors: dict[str, str], also_at_fault: list[str]) -> None:
        """Each message under its field; fields it names besides are marked too."""
        for key, (form, row, label) in self._rows.items():
            message = errors.get(key)
            set_invalid(self.editors[key], message is not None or key in also_at_fault)
            label.setText(message or "")
            form.setRowVisible(row + 1, message is not None)
            if message:
                self._section_of(key).expand()
        general = errors.get("")
        self.general_error.setText(general or "")
        self.general_error.setVisible(general is not None)

    def _section_of(self, key: str) -> Section:
        return next(self.sections[title] for title, _, fields in SECTIONS if any(f.key == key for f in fields))

    def is_valid(self) -> bool:
        return self._config is not None

    def config(self) -> RunConfig | None:
        """A fresh RunConfig of the current settings, or None while any is invalid."""
        if self._validate_timer.isActive():
            self.validate()
        return copy.deepcopy(self._config)

    def first_error(self) -> str:
        return next(iter(self.errors.values()), "")

    def set_locked(self, locked: bool) -> None:
        """While training, the settings are shown but cannot change."""
        for widget in (self.preset, self.corpus, *self.sections.values()):
            widget.setEnabled(not locked)
        if not locked and self.fine_tune_source is not None:
            for title in ("Tokenizer", "Model"):
                self.sections[title].setEnabled(False)
