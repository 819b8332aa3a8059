"""Models in and out of the runs folder: File → Import model… (a Hugging Face GPT-2 folder or a nanoGPT
checkpoint becomes a run) and the runs browser's Export… (a run to Hugging Face, ONNX or safetensors). The work
runs on a background thread (lmcore.interop); the dialog shows that it is busy, then the result or the error."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QVBoxLayout, QWidget)

from lmcore.interop import export_run, import_huggingface, import_nanogpt

from ..common.background import report_errors, start_in_background, stop_background
from ..common.style import set_tone
from ..common.widgets import row

HUGGING_FACE, NANOGPT = "hf", "nanogpt"
EXPORT_CHOICES = (("hf", "Hugging Face (GPT-2 or, rotary, GPT-NeoX folder)"), ("onnx", "ONNX (model.onnx, checked with "
                  "onnxruntime)"), ("safetensors", "Weights only (safetensors + config + tokenizer)"))


class InteropWorker(QObject):
    """Runs one import or export at a time off the GUI thread."""

    work = Signal(object)  # a callable returning the result
    done = Signal(object)
    failed = Signal(str)

    def __init__(self):
        super().__init__()
        self.work.connect(self._run)

    @Slot(object)
    def _run(self, job: Callable[[], object]) -> None:
        report_errors(lambda: self.done.emit(job()), self.failed.emit)


class PathField(QWidget):
    """A path typed in, or chosen with Browse… (a folder or a file)."""

    def __init__(self, placeholder: str, folder: bool, caption: str):
        super().__init__()
        self.folder, self.caption = folder, caption
        self.edit = QLineEdit(placeholderText=placeholder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        layout = row((self.edit, 1), browse)
        layout.setContentsMargins(0, 0, 0, 0)
        self.setLayout(layout)

    def browse(self) -> None:
        if self.folder:
            chosen = QFileDialog.getExistingDirectory(self, self.caption, self.edit.text())
        else:
            chosen = QFileDialog.getOpenFileName(self, self.caption, self.edit.text())[0]
        if chosen:
            self.edit.setText(chosen)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None


class BackgroundDialog(QDialog):
    """A form whose action button runs a job on an InteropWorker, with a busy bar, and the outcome below."""

    def __init__(self, title: str, action: str, parent: QWidget | None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(560)
        self.form = QFormLayout()
        self.busy = QProgressBar(maximum=0, visible=False, textVisible=False)  # 0: an indeterminate bar
        self.message = QLabel(wordWrap=True)
        self.message.setObjectName("banner")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.action_button = self.buttons.addButton(action, QDialogButtonBox.ButtonRole.ActionRole)
        self.action_button.setObjectName("primary")
        self.action_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.busy)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.worker = InteropWorker()
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.thread = thread = start_in_background(self.worker, "interop-worker")
        # closed, or deleted with its parent window while still open: the thread ends with it
        self.finished.connect(lambda _: stop_background(thread))
        self.destroyed.connect(lambda: stop_background(thread))

    def job(self) -> Callable[[], object] | None:
        """The work to do with the form's values, or None (after saying what is missing)."""
        raise NotImplementedError

    def succeeded(self, result: object) -> None:
        raise NotImplementedError

    def is_busy(self) -> bool:
        return not self.action_button.isEnabled()

    def start(self) -> None:
        job = self.job()
        if job is None:
            return
        self._set_busy(True)
        self.say(f"{self.action_button.text().rstrip('…')}ing…")
        self.worker.work.emit(job)

    def say(self, text: str, tone: str = "info") -> None:
        self.message.setText(text)
        set_tone(self.message, tone)

    def _set_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        self.action_button.setEnabled(not busy)

    def _on_done(self, result: object) -> None:
        self._set_busy(False)
        self.succeeded(result)

    def _on_failed(self, message: str) -> None:
        self._set_busy(False)
        self.say(message, "error")


class ImportDialog(BackgroundDialog):
    """File → Import model…: a Hugging Face GPT-2 folder, or a nanoGPT ckpt.pt with its corpus or tokenizer."""

    imported = Signal(object)  # Path of the new run folder

    def __init__(self, runs_dir: Path, parent: QWidget | None = None):
        super().__init__("Import model", "Import", parent)
        self.runs_dir = Path(runs_dir)
        self.kind = QComboBox()
        self.kind.addItem("Hugging Face GPT-2 or GPT-NeoX folder", HUGGING_FACE)
        self.kind.addItem("nanoGPT checkpoint (ckpt.pt)", NANOGPT)
        self.source = PathField("config.json, model.safetensors, tokenizer.json", True, "The model's folder")
        self.corpus = PathField("a character model's input.txt", False, "The corpus the model was trained on")
        self.tokenizer = PathField("optional: tokenizer.json, or a folder with vocab.json + merges.txt", False,
                                   "GPT-2's tokenizer")
        self.name = QLineEdit(placeholderText="the folder's or file's name")
        self.form.addRow("Model", self.kind)
        self.form.addRow("From", self.source)
        self.form.addRow("Corpus", self.corpus)
        self.form.addRow("Tokenizer", self.tokenizer)
        self.form.addRow("Run name", self.name)
        self.kind.currentIndexChanged.connect(self._on_kind)
        self._on_kind()
        self.say("Nothing is downloaded: the model is read from files on disk and becomes a run you can generate "
                 "from, look inside and fine-tune.")

    def _on_kind(self) -> None:
        nanogpt = self.kind.currentData() == NANOGPT
        self.source.folder = not nanogpt
        self.source.edit.setPlaceholderText("nanoGPT's out-…/ckpt.pt" if nanogpt else
                                            "config.json, model.safetensors, tokenizer.json")
        self.form.setRowVisible(self.corpus, nanogpt)

    def job(self) -> Callable[[], object] | None:
        source = self.source.path()
        if source is None:
            self.say("Choose the model's folder or checkpoint first.", "error")
            return None
        name, tokenizer, corpus = self.name.text().strip() or None, self.tokenizer.path(), self.corpus.path()
        if self.kind.currentData() == NANOGPT:
            return lambda: import_nanogpt(source, self.runs_dir, name, corpus=corpus, tokenizer=tokenizer)
        return lambda: import_huggingface(source, self.runs_dir, name, tokenizer=tokenizer)

    def succeeded(self, result: object) -> None:
        self.say(f"Imported as {Path(str(result)).name}.", "success")
        self.imported.emit(result)
        self.accept()


class ExportDialog(BackgroundDialog):
    """The runs browser's Export…: the run's model for another tool."""

    def __init__(self, run_dir: Path, parent: QWidget | None = None):
        super().__init__(f"Export {Path(run_dir).name}", "Export", parent)
        self.run_dir = Path(run_dir)
        self.format = QComboBox()
        for key, text in EXPORT_CHOICES:
            self.format.addItem(text, key)
        self.folder = PathField("a new or empty folder", True, "Export to folder")
        self.form.addRow("Format", self.format)
        self.form.addRow("To folder", self.folder)

    def job(self) -> Callable[[], object] | None:
        out = self.folder.path()
        if out is None:
            self.say("Choose the folder to export to first.", "error")
            return None
        to = self.format.currentData()
        return lambda: export_run(self.run_dir, to, out)

    def succeeded(self, result: object) -> None:
        files = list(result) if isinstance(result, list) else []
        self.say(f"Wrote {len(files)} file(s) to {self.folder.path()}: " + ", ".join(p.name for p in files),
                 "success")
