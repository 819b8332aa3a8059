"""Token focus: pick one token of the text and see, layer by layer, which tokens it attends to most (earlier ones;
an encoder's, any)."""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from .heatmap import LABEL_CHARS, LABEL_MARGINS, Axis, HeatmapView
from ..common.style import monospace_font
from ..common.text import visible_token

TOP_KEYS = 3
FOCUS_COLOUR = "#ff3b30"
SHADE_RGB = (253, 231, 37)  # viridis' top colour, so the text shading reads like the heatmaps


class TokenFocusView(QWidget):
    """The text as clickable tokens; under it, a rows × keys map for the focused token (the tokens up to it, or
    an encoder's every token) and a summary of each row's strongest keys. Rows are layers (attention) or the
    single saliency row (RNN)."""

    token_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.setFont(monospace_font())
        self.text.anchorClicked.connect(lambda url: self.token_clicked.emit(int(url.fragment())))
        self.heatmap = HeatmapView()
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.summary.setContentsMargins(*LABEL_MARGINS)

        lower = QWidget()
        row = QHBoxLayout(lower)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.heatmap, 1)
        row.addWidget(self.summary)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.text)
        split.addWidget(lower)
        split.setSizes([120, 400])
        hint = QLabel("Click a token to see which tokens it draws on most, layer by layer. "
                      "Tokens are shaded by the largest weight they get.", objectName="hint")
        hint.setWordWrap(True)
        hint.setContentsMargins(*LABEL_MARGINS)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(hint)
        layout.addWidget(split, 1)

    def show_focus(self, tokens: list[str], position: int, matrix: np.ndarray, rows: list[str], *,
                   row_title: str, column_title: str, value_name: str, title: str, verb: str) -> None:
        """matrix [len(rows), keys]: each row's weights from `position` to tokens 0..keys - 1 (keys is position + 1
        for a model that sees only the past, the whole text for an encoder); `verb` says what the weights mean
        ("attends most to")."""
        strongest = matrix.max(axis=0)
        self.text.setHtml(_token_html(tokens, position, strongest / max(float(strongest.max()), 1e-9)))
        self.heatmap.show_matrix(matrix, Axis(row_title, rows, tokens=False),
                                 Axis(column_title, tokens[:matrix.shape[1]]), title=title, value_name=value_name)
        table = "".join(f"<tr><td><b>{html.escape(name)}</b></td><td>{_top_keys(tokens, weights)}</td></tr>"
                        for name, weights in zip(rows, matrix, strict=True))
        self.summary.setText(f"<p>{_chip(tokens[position])} at position {position} {verb}:</p>"
                             f"<table cellspacing=4>{table}</table>")

    def clear(self) -> None:
        self.text.clear()
        self.heatmap.clear()
        self.summary.clear()


def _chip(token: str) -> str:
    return (f"<span style='background-color:#e6e6e6; font-family:monospace'>"
            f"&nbsp;{html.escape(visible_token(token, LABEL_CHARS))}&nbsp;</span>")


def _top_keys(tokens: list[str], weights: np.ndarray) -> str:
    """The TOP_KEYS strongest keys of one row: token, weight and (in grey) position."""
    top = np.argsort(weights)[::-1][:TOP_KEYS]
    return "&nbsp;&nbsp;".join(f"{_chip(tokens[k])}&nbsp;{weights[k]:.2f}<span style='color:#8a8a8a'>@{k}</span>"
                               for k in top)


def _token_html(tokens: list[str], position: int, shade: np.ndarray) -> str:
    """Each token a link to itself: the focused one in red, the keys shaded by `shade` (0..1), the tokens past
    them grey (they cannot be attended to)."""
    parts = []
    for i, token in enumerate(tokens):
        if i == position:
            style = f"background-color:{FOCUS_COLOUR}; color:white; font-weight:bold"
        elif i >= len(shade):
            style = "color:#9a9a9a"
        else:  # whitespace drawn light, so the words stay readable
            colour = "#a0a0a0" if token.isspace() else "black"
            style = f"background-color:{_blend_with_white(shade[i])}; color:{colour}"
        label = html.escape(visible_token(token, 40))
        parts.append(f'<a href="#{i}" style="text-decoration:none"><span style="{style}">{label}</span></a>')
        if "\n" in token:
            parts.append("<br>")
    return "".join(parts)


def _blend_with_white(alpha: float) -> str:
    """SHADE_RGB at opacity `alpha` over white, as #rrggbb (Qt's rich text has no rgba())."""
    return "#" + "".join(f"{round(255 + (c - 255) * alpha):02x}" for c in SHADE_RGB)
