"""Attention tab (issue #5 builds it). Placeholder until then."""
from pathlib import Path

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class AttentionTab(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Attention heatmaps arrive in a coming version."))

    def set_run(self, run_dir: Path | None) -> None:
        """Show the run the user picked in the runs browser (None: no run selected)."""
