"""Choosing the text to train on, and showing what is in it (or why it cannot be used)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QVBoxLayout, QWidget)

from lmcore.corpus import CorpusSummary

TEXT_FILES, LABELLED_FILES = "Text files (*.txt);;All files (*)", "Labelled texts (*.tsv *.csv *.jsonl);;All files (*)"

from ..common.fonts import missing_fonts_message
from ..common.style import monospace_font, set_invalid
from ..common.text import format_bytes


class CorpusPicker(QWidget):
    """A path (file or folder) with Browse buttons; below it the corpus's size and a preview, or its problem."""

    paths_changed = Signal(list)  # [str]

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.labelled = False  # a classifier's corpus: a file of texts and labels
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("A .txt file or a folder of .txt files")
        self.path_edit.setToolTip("The text to train on: a UTF-8 .txt file, or a folder whose .txt files are "
                                  "joined. A few hundred kB trains a toy model; tens of MB train a useful one.")
        file_button = QPushButton("File…")
        file_button.setToolTip("Choose one text file.")
        self.folder_button = folder_button = QPushButton("Folder…")
        folder_button.setToolTip("Choose a folder: every .txt file inside it (and its subfolders) is used.")
        self.info = QLabel()
        self.info.setObjectName("hint")
        self.info.setWordWrap(True)  # a narrow form wraps it rather than growing
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(monospace_font())
        self.preview.setFixedHeight(4 * self.preview.fontMetrics().lineSpacing() + 12)
        self.preview.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.preview.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.preview.setToolTip("The beginning of the corpus, as the tokenizer will read it.")
        self.no_font = QLabel()  # the corpus is in a script no installed font can draw
        self.no_font.setObjectName("hint")
        self.no_font.setWordWrap(True)
        self.no_font.hide()
        self.problem = QLabel()
        self.problem.setObjectName("fieldError")
        self.problem.setWordWrap(True)
        self.problem.hide()

        row = QHBoxLayout()  # the path gets the full width above; what it holds, and the buttons, below it
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.info, 1)
        row.addWidget(file_button)
        row.addWidget(folder_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.path_edit)
        layout.addLayout(row)
        layout.addWidget(self.problem)
        layout.addWidget(self.preview)
        layout.addWidget(self.no_font)

        self.path_edit.editingFinished.connect(self._on_edited)
        file_button.clicked.connect(self._browse_file)
        folder_button.clicked.connect(self._browse_folder)

    def paths(self) -> list[str]:
        text = self.path_edit.text().strip()
        return [text] if text else []

    def set_paths(self, paths: list[str]) -> None:
        """Show these paths; emits paths_changed when they differ from the shown ones."""
        text = paths[0] if paths else ""
        if text != self.path_edit.text():
            self.path_edit.setText(text)
            self.paths_changed.emit(self.paths())

    def set_labelled(self, labelled: bool) -> None:
        """Ask for a labelled file (.tsv, .csv or .jsonl: a text and a label per row), for a classifier, or for text."""
        self.labelled = labelled
        self.path_edit.setPlaceholderText("A labelled .tsv, .csv or .jsonl file (a text and a label per row)"
                                          if labelled else "A .txt file or a folder of .txt files")
        self.folder_button.setVisible(not labelled)

    def show_summary(self, summary: CorpusSummary, problem: str | None) -> None:
        """`problem` is the summary's own or the form's (e.g. too short for the chosen context)."""
        if summary.chars:
            files = f"{len(summary.files)} files · " if len(summary.files) > 1 else ""
            self.info.setText(f"{files}{format_bytes(summary.size_bytes)} · {summary.chars:,} characters · "
                              f"{summary.lines:,} lines")
        else:
            self.info.setText(format_bytes(summary.size_bytes) if summary.files else "")
        self.preview.setPlainText(summary.preview)
        self.preview.setVisible(bool(summary.preview))
        no_font = missing_fonts_message(summary.preview)
        self.no_font.setText(no_font or "")
        self.no_font.setVisible(no_font is not None)
        self.problem.setText(problem or "")
        self.problem.setVisible(bool(problem))
        set_invalid(self.path_edit, bool(problem))

    def _on_edited(self) -> None:
        self.paths_changed.emit(self.paths())

    def _browse_file(self) -> None:
        start = self.paths()[0] if self.paths() else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a labelled file" if self.labelled else "Choose a text file",
                                              start, LABELLED_FILES if self.labelled else TEXT_FILES)
        if path:
            self.set_paths([path])

    def _browse_folder(self) -> None:
        start = self.paths()[0] if self.paths() else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of text files", start)
        if path:
            self.set_paths([path])
