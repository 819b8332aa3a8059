"""Exporting the training plots: the Export button with its menu and file dialogs, and the shown runs' metrics
written as a CSV table (the plots' own widget saves their picture)."""
from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMenu, QToolButton, QWidget

from .series import EVAL_FIELDS, STEP_FIELDS, RunSeries

CSV_COLUMNS = ["run", "kind", *STEP_FIELDS, *(name for name in EVAL_FIELDS if name not in STEP_FIELDS)]


def export_button(parent: QWidget, export_png: Callable[[Path], None],
                  export_csv: Callable[[Path], None]) -> QToolButton:
    """The Export button: its menu asks where to save, then calls `export_png` or `export_csv` with the path."""
    button = QToolButton()
    button.setText("Export")
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    button.setToolTip("Save the plots as a PNG image, or the metrics of every shown run as a CSV table.")
    menu = QMenu(button)
    menu.addAction("Plots as PNG…", lambda: _ask(parent, export_png, "Export plots", "training-plots.png",
                                                  "PNG image (*.png)"))
    menu.addAction("Metrics as CSV…", lambda: _ask(parent, export_csv, "Export metrics", "metrics.csv",
                                                    "CSV table (*.csv)"))
    button.setMenu(menu)
    return button


def _ask(parent: QWidget, export: Callable[[Path], None], title: str, name: str, file_filter: str) -> None:
    path, _ = QFileDialog.getSaveFileName(parent, title, name, file_filter)
    if path:
        export(Path(path))


def write_metrics_csv(path: Path, runs: Iterable[RunSeries]) -> None:
    """A row for each step and each evaluation of each run; an evaluation's row leaves the steps' metrics empty,
    and a row any value it lacks: its bits per character when it covered only part of the validation split, the
    loss parts of a run without a teacher."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, CSV_COLUMNS, restval="")
        writer.writeheader()
        for series in runs:
            for kind, columns, names in (("step", series.steps, STEP_FIELDS), ("eval", series.evals, EVAL_FIELDS)):
                for i in range(columns.size):
                    values = {name: columns[name][i] for name in names}
                    writer.writerow({"run": series.name, "kind": kind,  # a value it lacks (NaN): restval, empty
                                     **{name: _plain(value) for name, value in values.items()
                                        if not math.isnan(value)}})


def _plain(value: float) -> int | float:
    """Whole numbers (steps, tokens) without a trailing .0 in the CSV."""
    return int(value) if float(value).is_integer() else float(value)
