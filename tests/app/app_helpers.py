"""Helpers for the app tests: driving form widgets, tiny settings, and stand-ins for the tabs of other issues."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSpinBox, QVBoxLayout, QWidget

from lmcore.config import config_from_dict, config_to_dict
from lmcore.runs import RunFolder

# Small enough to train many steps a second on two CPU cores; max_steps far away so pause and stop can be tried.
TINY_SETTINGS = {
    "model.n_layer": 1, "model.n_head": 2, "model.n_embd": 32, "train.batch_size": 4, "train.context": 32,
    "train.max_steps": 100_000, "train.eval_interval": 20, "train.device": "cpu", "schedule.warmup_steps": 0,
}


class RecordingTab(QWidget):
    """Stands in for GenerateTab / AttentionTab (the interface the main window uses of both), recording the calls
    the main window makes."""

    send_to_attention = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        QVBoxLayout(self).addWidget(QLabel("stand-in"))
        self.runs: list = []
        self.workers: list = []
        self.texts: list = []
        self.shut_down = False

    def set_run(self, run_dir):
        self.runs.append(run_dir)

    def attach_worker(self, worker):
        self.workers.append(worker)

    def show_text(self, text):
        self.texts.append(text)

    def shutdown(self):
        self.shut_down = True


def shown(form, key: str) -> bool:
    """Whether the form shows the field `key` (it may be hidden for the chosen family or task)."""
    return form.editors[key].isVisibleTo(form)


def set_field(form, key: str, value) -> None:
    """Change one form field through its widget, as a user would."""
    editor = form.editors[key]
    if isinstance(editor, QSpinBox):
        editor.setValue(value)
    elif isinstance(editor, QComboBox):
        index = editor.findData(value)
        assert index >= 0, f"{key} offers no {value!r}"
        editor.setCurrentIndex(index)
    elif isinstance(editor, QCheckBox):
        editor.setChecked(value)
    else:
        editor.setText(str(value))


def type_corpus(qtbot, form, path: Path) -> None:
    """Type a corpus path and press Return."""
    edit = form.corpus.path_edit
    edit.clear()
    qtbot.keyClicks(edit, str(path))
    qtbot.keyClick(edit, Qt.Key_Return)


def use_tiny_settings(form, **overrides) -> None:
    for key, value in {**TINY_SETTINGS, **overrides}.items():
        set_field(form, key, value)


def make_run(runs_dir: Path, name: str, status: str, family: str = "transformer", parameters: int = 0,
             best_val_loss: float | None = None, metrics: list[dict] = ()) -> Path:
    """A run folder as the trainer leaves it (config, status, metrics), without training."""
    model = {"family": family} if family == "transformer" else {"family": "rnn", "n_embd": 32, "n_hidden": 32}
    config = config_from_dict({**config_to_dict(config_from_dict({})), "name": name, "model": model})
    folder = RunFolder.create(runs_dir, name)
    folder.save_config(config)
    folder.write_status(status, parameters=parameters, best_val_loss=best_val_loss)
    folder.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in metrics), encoding="utf-8")
    return folder.path


def fake_metrics(steps: int, start_loss: float = 4.0, eval_every: int = 10) -> list[dict]:
    records = []
    for step in range(1, steps + 1):
        loss = start_loss / (1 + step / 20)
        records.append({"kind": "step", "step": step, "tokens": step * 128, "loss": loss, "lr": 1e-3,
                        "grad_norm": 1.0, "tokens_per_s": 1000.0, "elapsed": step * 0.1})
        if step % eval_every == 0:
            records.append({"kind": "eval", "step": step, "tokens": step * 128, "elapsed": step * 0.1,
                            "val_loss": loss + 0.1, "val_perplexity": 2.0, "val_bits_per_char": None,
                            "best": True})
    return records
