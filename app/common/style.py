"""The look of the app: one light theme, the run colours, status dots and the app icon."""
from __future__ import annotations

import zlib
from functools import cache
from collections.abc import Collection
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

from .resources import ICONS_DIR

ACCENT = "#2f6fde"
TEXT = "#1f2430"
MUTED = "#6b7280"
WINDOW = "#f3f4f7"
PANEL = "#ffffff"
BORDER = "#d9dce3"
ERROR = "#c62f2f"
WARNING = "#b7791f"
SUCCESS = "#2e8b57"

# Tableau 10: distinct, colour-blind-friendlier hues for overlaid runs.
RUN_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
               "#9c755f", "#bab0ac")


def run_colour(run_dir: Path, taken: Collection[str] = ()) -> str:
    """A run's colour, from its folder name: the same in every view and after a restart (crc32, unlike hash(), does
    not change between processes). When a run shown beside it has that colour already, the next free one, so that
    runs compared in one plot never share a colour."""
    first = zlib.crc32(Path(run_dir).name.encode("utf-8")) % len(RUN_COLOURS)
    ordered = RUN_COLOURS[first:] + RUN_COLOURS[:first]
    return next((colour for colour in ordered if colour not in taken), ordered[0])


STATUS_COLOURS = {"running": ACCENT, "paused": "#e0a100", "finished": SUCCESS, "stopped": "#8a919e",
                  "failed": ERROR, "interrupted": "#b07aa1"}

ICONS = ICONS_DIR.as_posix()
STYLESHEET = f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QWidget {{ color: {TEXT}; }}
QToolTip {{ color: {TEXT}; background: #fffbe6; border: 1px solid #e6d9a8; padding: 4px; }}
QTabWidget::pane {{ border: 1px solid {BORDER}; border-radius: 6px; background: {PANEL}; top: -1px; }}
QTabBar::tab {{ padding: 6px 16px; margin-right: 2px; border: 1px solid transparent;
               border-top-left-radius: 6px; border-top-right-radius: 6px; color: {MUTED}; }}
QTabBar::tab:selected {{ background: {PANEL}; border-color: {BORDER}; border-bottom-color: {PANEL};
                        color: {TEXT}; font-weight: 600; }}
QTreeWidget {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px;
              alternate-background-color: #f8f9fb; }}
QTreeWidget::item {{ padding: 3px 2px; }}
QTreeWidget::item:selected {{ background: #dce7fb; color: {TEXT}; }}
QHeaderView::section {{ background: {WINDOW}; color: {MUTED}; border: none; border-bottom: 1px solid {BORDER};
                       padding: 4px 6px; font-weight: 600; }}
QLineEdit, QSpinBox, QComboBox {{ min-height: 20px; }}
QLineEdit, QSpinBox, QComboBox, QPlainTextEdit {{ background: {PANEL}; border: 1px solid {BORDER};
                                                   border-radius: 4px; padding: 2px 4px; }}
QLineEdit:focus, QSpinBox:focus, QComboBox:focus {{ border-color: {ACCENT}; }}
QSpinBox {{ padding-right: 18px; }}
QSpinBox::up-button, QSpinBox::down-button {{ subcontrol-origin: border; width: 18px; border: none;
                                              background: transparent; }}
QSpinBox::up-button {{ subcontrol-position: top right; }}
QSpinBox::down-button {{ subcontrol-position: bottom right; }}
QSpinBox::up-arrow {{ image: url({ICONS}/chevron-up.svg); width: 9px; height: 9px; }}
QSpinBox::down-arrow {{ image: url({ICONS}/chevron-down.svg); width: 9px; height: 9px; }}
QSpinBox::up-arrow:disabled, QSpinBox::down-arrow:disabled {{ image: none; }}
QComboBox::drop-down {{ subcontrol-origin: padding; subcontrol-position: center right; width: 20px;
                       border: none; }}
QComboBox::down-arrow {{ image: url({ICONS}/chevron-down.svg); width: 10px; height: 10px; }}
QComboBox::down-arrow:disabled {{ image: none; }}
*[invalid="true"] {{ border: 1px solid {ERROR}; background: #fff5f5; }}
QLineEdit:disabled, QSpinBox:disabled, QComboBox:disabled {{ color: {MUTED}; background: {WINDOW}; }}
QPushButton {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 5px; padding: 5px 10px; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #a8adb8; background: {WINDOW}; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border-color: {ACCENT}; font-weight: 600; }}
QPushButton#primary:hover {{ background: #255cc0; }}
QPushButton#primary:disabled {{ background: #a9bfe8; border-color: #a9bfe8; color: #eef2fb; }}
QPushButton#danger {{ color: {ERROR}; }}
QPushButton#danger:disabled {{ color: #a8adb8; }}
QWidget#runsBrowser QPushButton {{ padding: 5px 5px; }}
QToolButton#sectionHeader {{ border: none; font-weight: 600; padding: 4px 0px; text-align: left; }}
QFrame#section {{ background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; }}
QFrame#summary {{ background: #f5f8fe; border: 1px solid #cfdcf5; border-radius: 6px; }}
QLabel#statValue {{ font-size: 13pt; font-weight: 600; }}
QLabel#statName, QLabel#hint {{ color: {MUTED}; }}
QLabel#fieldError {{ color: {ERROR}; }}
QLabel#banner {{ border-radius: 5px; padding: 7px 10px; }}
QLabel#banner[tone="info"] {{ background: #eef3fd; border: 1px solid #cfdcf5; }}
QLabel#banner[tone="success"] {{ background: #edf7f0; border: 1px solid #c4e3cf; }}
QLabel#banner[tone="warning"] {{ background: #fdf6e7; border: 1px solid #f0dcae; }}
QLabel#banner[tone="error"] {{ background: #fdeeee; border: 1px solid #f1c4c4; color: #8f1f1f; }}
QLabel#runTitle {{ font-size: 12pt; font-weight: 600; }}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0px 8px; }}
QSplitter::handle {{ background: transparent; }}
QScrollArea {{ border: none; background: transparent; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, WINDOW), (QPalette.ColorRole.Base, PANEL), (QPalette.ColorRole.AlternateBase, "#f8f9fb"),
                         (QPalette.ColorRole.Text, TEXT), (QPalette.ColorRole.WindowText, TEXT), (QPalette.ColorRole.ButtonText, TEXT),
                         (QPalette.ColorRole.Button, PANEL), (QPalette.ColorRole.Highlight, ACCENT),
                         (QPalette.ColorRole.HighlightedText, "#ffffff"), (QPalette.ColorRole.ToolTipBase, "#fffbe6"),
                         (QPalette.ColorRole.ToolTipText, TEXT), (QPalette.ColorRole.PlaceholderText, "#9aa0ab")):
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)
    font = app.font()
    font.setPointSizeF(max(font.pointSizeF(), 9.5))
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)
    app.setWindowIcon(app_icon())
    pg.setConfigOptions(background=PANEL, foreground=TEXT)


def app_icon() -> QIcon:
    return QIcon(str(ICONS_DIR / "lm-workbench.svg"))


@cache
def status_icon(status: str) -> QIcon:
    """A coloured dot, drawn at 2x so it stays crisp on HiDPI screens."""
    pixmap = QPixmap(24, 24)
    pixmap.setDevicePixelRatio(2.0)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(STATUS_COLOURS.get(status, MUTED)))
    painter.drawEllipse(QRectF(2.5, 2.5, 7, 7))
    painter.end()
    return QIcon(pixmap)


def monospace_font() -> QFont:
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


def fix_size(label, widest_text: str) -> None:
    """For a label whose text changes while training: a fixed size, fitted to the widest text it will show. Qt
    lays out a window again whenever a label's text changes its size hint, which repaints far more than the label;
    a widget of fixed size is left out of that, and only the label repaints."""
    text = label.text()
    label.ensurePolished()  # the style sheet's font and padding, before measuring
    label.setText(widest_text)
    label.setFixedSize(label.sizeHint())
    label.setText(text)


def set_tone(label, tone: str) -> None:
    """Restyle a banner label (info, success, warning, error) after changing its dynamic property."""
    label.setProperty("tone", tone)
    label.style().unpolish(label)
    label.style().polish(label)


def set_invalid(widget, invalid: bool) -> None:
    if widget.property("invalid") != invalid:
        widget.setProperty("invalid", invalid)
        widget.style().unpolish(widget)
        widget.style().polish(widget)
