"""Builders for the small widgets every panel makes the same way: a button wired to its action, a monospace text
editor, a row of widgets."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from .style import monospace_font, set_tone


def button(text: str, on_click: Callable | None = None, *, tooltip: str = "", name: str = "") -> QPushButton:
    """A push button that calls `on_click` when clicked; `name` is its object name for the style sheet
    (e.g. "primary")."""
    widget = QPushButton(text)
    if name:
        widget.setObjectName(name)
    if tooltip:
        widget.setToolTip(tooltip)
    if on_click is not None:
        widget.clicked.connect(on_click)
    return widget


def text_editor(placeholder: str, max_height: int) -> QPlainTextEdit:
    """A plain-text editor in the monospace font, for the texts given to a model (tokens line up as they do in
    the token views)."""
    editor = QPlainTextEdit()
    editor.setPlaceholderText(placeholder)
    editor.setMaximumHeight(max_height)
    editor.setFont(monospace_font())
    return editor


def row(*items: QWidget | tuple | int) -> QHBoxLayout:
    """A horizontal layout of `items`, in order: a widget; (widget, stretch factor[, alignment]); or an int n, a
    stretch of factor n (empty space that takes what the widgets leave)."""
    layout = QHBoxLayout()
    for item in items:
        if isinstance(item, int):
            layout.addStretch(item)
        elif isinstance(item, tuple):
            layout.addWidget(*item)
        else:
            layout.addWidget(item)
    return layout


def run_header() -> tuple[QFrame, QVBoxLayout, QLabel]:
    """The framed header of a panel that works with one run: the frame, its layout, and the run's title in it (a
    long name is cut, rather than widening the panel)."""
    header = QFrame()
    header.setObjectName("summary")
    layout = QVBoxLayout(header)
    layout.setContentsMargins(10, 6, 10, 6)
    layout.setSpacing(2)
    title = QLabel()
    title.setObjectName("runTitle")
    title.setMinimumWidth(60)
    return header, layout, title


def banner(tone: str) -> QLabel:
    """A message box of a tone (info, success, warning, error), hidden until given text: wrapped, and selectable
    so that an error can be copied."""
    label = QLabel()
    label.setObjectName("banner")
    set_tone(label, tone)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label
