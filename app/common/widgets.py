"""Builders for the small widgets every panel makes the same way: a button wired to its action, a monospace text
editor, a row of widgets."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QWidget

from .style import monospace_font


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
