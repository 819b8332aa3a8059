"""Generate tab (issue #4 builds it). Placeholder until then."""
from pathlib import Path

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class GenerateTab(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Text generation arrives in a coming version: pick a trained run to sample from it."))

    def set_run(self, run_dir: Path | None) -> None:
        """Show the run the user picked in the runs browser (None: no run selected)."""
