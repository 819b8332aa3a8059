"""The Generate tab's sampling controls: a preset, or temperature, top-k, top-p, repetition penalty and greedy by
hand; the number of tokens, the seed and the stop strings."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QLabel, QLineEdit,
                               QSpinBox, QVBoxLayout, QWidget)

from lmcore.generation import PRESETS, SamplingSettings

from ..common.widgets import row
from .session import parse_stop_strings

CUSTOM = "custom"
DEFAULT_PRESET = "balanced"


class SamplingControls(QWidget):
    """The "Sampling" section; `settings()` reads it. Editing a field a preset sets makes the preset "custom"."""

    changed = Signal()  # any setting, once per edit (a preset counts as one)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._setting_preset = False  # True while a preset fills the fields, which then are not "custom"
        box = QFrame()
        box.setObjectName("section")
        form = QFormLayout(box)
        title = QLabel("Sampling")
        title.setObjectName("runTitle")
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.preset_combo = QComboBox()
        self.preset_combo.addItems([*PRESETS, CUSTOM])
        self.preset_combo.setToolTip("Sampling preset. precise: low temperature, focused · balanced · "
                                     "creative: high temperature, more surprising")
        self.preset_combo.currentTextChanged.connect(self.apply_preset)
        # The preset beside the title: the number fields below can then be narrower than its names
        form.addRow(row((title, 1), self.preset_combo))

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
        form.addRow(self.greedy_check)
        self.seed_spin = QSpinBox(minimum=0, maximum=2**31 - 1, value=1337)
        form.addRow("Seed", self.seed_spin)
        self.random_seed_check = QCheckBox("New seed each time")
        self.random_seed_check.setToolTip("Draw a new seed for each generation (the one used is shown above)")
        form.addRow(self.random_seed_check)
        self.stop_edit = QLineEdit()
        self.stop_edit.setPlaceholderText(r"e.g. \n\n, THE END")
        self.stop_edit.setToolTip(r"Stop when the output contains one of these. Separate them with commas; "
                                  r"write \n for a line break and \, for a comma.")
        form.addRow("Stop at", self.stop_edit)
        hint = QLabel("Ctrl+Enter generates, Esc stops.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)  # two lines in a narrow column, rather than setting its width
        form.addRow(hint)
        for field in (self.max_tokens_spin, self.temperature_spin, self.top_k_spin, self.top_p_spin,
                      self.repetition_spin, self.seed_spin, self.stop_edit):
            field.setMinimumWidth(70)  # not the width of their largest value: the column stays narrow
        column = QVBoxLayout(self)  # keeps the section its natural height at the top of the column
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(box)
        column.addStretch(1)

        for spin in (self.temperature_spin, self.top_k_spin, self.top_p_spin, self.repetition_spin):
            spin.valueChanged.connect(self._on_preset_field_edited)
        self.greedy_check.toggled.connect(self._on_preset_field_edited)
        for signal in (self.max_tokens_spin.valueChanged, self.seed_spin.valueChanged, self.random_seed_check.toggled,
                       self.stop_edit.textChanged):
            signal.connect(self.changed)
        for check in (self.greedy_check, self.random_seed_check):
            check.toggled.connect(self._update_enabled)
        self.apply_preset(DEFAULT_PRESET)
        self._update_enabled()

    def settings(self) -> SamplingSettings:
        """The sampling settings the controls describe (seed None when it is drawn at random)."""
        return SamplingSettings(
            max_new_tokens=self.max_tokens_spin.value(), temperature=self.temperature_spin.value(),
            top_k=self.top_k_spin.value(), top_p=self.top_p_spin.value(),
            repetition_penalty=self.repetition_spin.value(), greedy=self.greedy_check.isChecked(),
            seed=None if self.random_seed_check.isChecked() else self.seed_spin.value(),
            stop=parse_stop_strings(self.stop_edit.text()))

    def apply_preset(self, name: str) -> None:
        """Fill the fields a preset sets (a name not in lmcore's PRESETS, such as "custom", changes nothing)."""
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
        if self.preset_combo.currentText() == name:
            self.changed.emit()
        else:
            self.preset_combo.setCurrentText(name)  # which calls this again, and that emits `changed`

    def show_seed(self, seed: int) -> None:
        """The seed a generation used: shown when it was drawn at random, so that unticking "random" repeats it."""
        if self.random_seed_check.isChecked():
            self.seed_spin.setValue(seed)

    def _on_preset_field_edited(self) -> None:
        if not self._setting_preset:
            self.preset_combo.setCurrentText(CUSTOM)
            self.changed.emit()

    def _update_enabled(self) -> None:
        sampling = not self.greedy_check.isChecked()
        for spin in (self.temperature_spin, self.top_k_spin, self.top_p_spin):
            spin.setEnabled(sampling)
        self.seed_spin.setEnabled(not self.random_seed_check.isChecked())
