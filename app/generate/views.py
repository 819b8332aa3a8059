"""The Generate tab's token views: text coloured token by token, the colour legend, and the candidate inspector."""
from __future__ import annotations

import math
from typing import Callable

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import (QColor, QFont, QLinearGradient, QPainter, QPalette, QTextBlockFormat, QTextCharFormat,
                           QTextCursor)
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QTextBrowser, QVBoxLayout,
                               QWidget)

from ..common.style import monospace_font
from ..common.text import visible_token
from .session import TokenInfo

# ColorBrewer's RdYlBu (colour-blind safe, perceptually ordered): unlikely tokens warm, likely ones cool and light.
COLOUR_STOPS = [(0.0, "#d73027"), (0.25, "#fc8d59"), (0.5, "#fee090"), (0.75, "#e0f3f8"), (1.0, "#91bfdb")]
TEXT_ON_COLOUR = QColor("#1b1b1b")
PINNED_BACKGROUND = QColor("#1f2430")
# The scale is logarithmic, from probability 10^-DECADES to 1: surprise (-log p, the loss) is what stands out,
# and a linear scale would paint nearly every token of a character model the same red.
DECADES = 3
PROBABILITY_TICKS = (0.001, 0.01, 0.1, 1.0)
LOSS_TICKS = (6.0, 4.0, 2.0, 1.0, 0.0)  # nats: loss l sits where probability exp(-l) does


def scale_position(p: float) -> float:
    """Where probability p sits on the colour scale, 0 (10^-DECADES or less) to 1 (certain)."""
    return min(max(1 + math.log10(max(p, 1e-12)) / DECADES, 0.0), 1.0)


def probability_colour(p: float) -> QColor:
    x = scale_position(p)
    for (x0, c0), (x1, c1) in zip(COLOUR_STOPS, COLOUR_STOPS[1:]):
        if x <= x1:
            t = (x - x0) / (x1 - x0)
            a, b = QColor(c0).getRgbF()[:3], QColor(c1).getRgbF()[:3]
            return QColor.fromRgbF(*(u + (v - u) * t for u, v in zip(a, b)))
    return QColor(COLOUR_STOPS[-1][1])


class TokenView(QTextBrowser):
    """Read-only text in which every token is an anchor coloured by a value in [0, 1] (a probability).

    Hovering a token emits `hovered(index)` (-1 off the tokens); clicking one emits `clicked(index)`.
    """

    hovered = Signal(int)
    clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)  # anchors are token indices, not places to navigate to
        self.setFont(monospace_font())
        self.document().setDocumentMargin(10)
        self.highlighted.connect(lambda url: self.hovered.emit(self._index(url)))
        self.anchorClicked.connect(lambda url: self.clicked.emit(self._index(url)))
        self.spans: list[tuple[int, int]] = []  # document positions of each token
        self.values: list[float | None] = []  # the probability each token is coloured by
        self._pinned: int | None = None
        self._plain = QTextCharFormat()
        self._plain.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
        self.clear_tokens()

    @staticmethod
    def _index(url: QUrl) -> int:
        return int(url.toString()) if url.toString() else -1

    def clear_tokens(self) -> None:
        self.clear()
        self.spans, self.values = [], []
        self._pinned = None
        spacing = QTextBlockFormat()  # a little air between lines, so coloured lines do not merge into a wall
        spacing.setLineHeight(135, QTextBlockFormat.LineHeightTypes.ProportionalHeight.value)
        self._end_cursor().setBlockFormat(spacing)  # blocks added later inherit it

    def add_plain(self, text: str) -> None:
        """Text that is not a token of the output (the prompt), shown dimmed."""
        cursor = self._end_cursor()
        cursor.insertText(text, self._plain)

    def add_tokens(self, tokens: list[TokenInfo], value: Callable[[TokenInfo], float | None]) -> None:
        scroll = self.verticalScrollBar()
        follow = scroll.value() >= scroll.maximum() - 4  # keep following the end unless the user scrolled up
        cursor = self._end_cursor()
        cursor.beginEditBlock()
        for token in tokens:
            start = cursor.position()
            self.values.append(value(token))
            if token.text:
                cursor.insertText(token.text.replace("\n", "⏎\n"), self._token_format(len(self.spans)))
            self.spans.append((start, cursor.position()))
        cursor.endEditBlock()
        if follow:
            scroll.setValue(scroll.maximum())

    def _token_format(self, index: int, pinned: bool = False) -> QTextCharFormat:
        fmt = QTextCharFormat()
        if pinned:  # inverted, so the token the inspector describes is easy to find again
            fmt.setBackground(PINNED_BACKGROUND)
            fmt.setForeground(QColor("white"))
        elif self.values[index] is not None:
            fmt.setBackground(probability_colour(self.values[index]))
            fmt.setForeground(TEXT_ON_COLOUR)
        fmt.setAnchor(True)
        fmt.setAnchorHref(str(index))
        return fmt

    def set_pinned(self, index: int | None) -> None:
        """Mark the pinned token, restoring the colour of the one pinned before."""
        for i, pinned in ((self._pinned, False), (index, True)):
            if i is not None and 0 <= i < len(self.spans):
                cursor = QTextCursor(self.document())
                cursor.setPosition(self.spans[i][0])
                cursor.setPosition(self.spans[i][1], QTextCursor.MoveMode.KeepAnchor)
                cursor.setCharFormat(self._token_format(i, pinned))
        self._pinned = index

    def token_rect(self, index: int) -> QRect:
        """Where the first character of token `index` is drawn, in viewport coordinates."""
        cursor = QTextCursor(self.document())
        cursor.setPosition(self.spans[index][0])
        left = self.cursorRect(cursor)
        cursor.setPosition(self.spans[index][0] + 1)
        return QRect(left.topLeft(), self.cursorRect(cursor).bottomLeft())

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor


class ColourLegend(QWidget):
    """The colour scale under a token view: probability of the chosen token, or (loss mode) its loss in nats."""

    def __init__(self, loss: bool = False, parent=None):
        super().__init__(parent)
        self.loss = loss
        self.setFixedSize(380, 34)
        self._title = "token loss (nats)" if loss else "token probability"
        self.setToolTip("The loss of each token under the model: red tokens surprised it" if loss else
                        "The probability the model gave each token it chose: red ones were unlikely")

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        title_width = metrics.horizontalAdvance(self._title) + 12
        bar = QRectF(title_width, 4, self.width() - title_width - 12, 12)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for position, colour in COLOUR_STOPS:
            gradient.setColorAt(position, QColor(colour))
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        painter.drawText(QRectF(0, 0, title_width, 20), Qt.AlignmentFlag.AlignVCenter, self._title)
        painter.setPen(QColor(0, 0, 0, 60))
        painter.setBrush(gradient)
        painter.drawRoundedRect(bar, 3, 3)
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        ticks = ([(math.exp(-loss), f"{loss:g}") for loss in LOSS_TICKS] if self.loss else
                 [(p, f"{p:g}") for p in PROBABILITY_TICKS])
        for p, label in ticks:
            x = bar.left() + scale_position(p) * bar.width()
            painter.drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 3))
            width = metrics.horizontalAdvance(label)
            left = min(max(x - width / 2, bar.left()), bar.right() - width)
            painter.drawText(QPointF(left, bar.bottom() + 3 + metrics.ascent()), label)


class CandidateBars(QWidget):
    """The top candidates at one position as horizontal probability bars, the chosen token marked."""

    ROW = 22

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[tuple[str, float, bool]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_rows(self, rows: list[tuple[str, float, bool]]) -> None:
        self.rows = rows
        self.setFixedHeight(self.ROW * max(len(rows), 1) + 4)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        mono = monospace_font()
        label_width, percent_width = 84, 50
        bar_width = max(20, self.width() - label_width - percent_width - 8)
        text_colour = self.palette().color(QPalette.ColorRole.WindowText)
        for row, (text, p, chosen) in enumerate(self.rows):
            top = 2 + row * self.ROW
            if chosen:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(self.palette().color(QPalette.ColorRole.Highlight).lighter(170))
                painter.drawRoundedRect(QRectF(0, top, self.width(), self.ROW - 2), 4, 4)
            font = QFont(mono)
            font.setBold(chosen)
            painter.setFont(font)
            painter.setPen(text_colour)
            marker = "▶ " if chosen else "  "
            label = painter.fontMetrics().elidedText(marker + visible_token(text), Qt.TextElideMode.ElideRight,
                                                     label_width - 4)
            painter.drawText(QRectF(4, top, label_width, self.ROW - 2), Qt.AlignmentFlag.AlignVCenter, label)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 14))  # the track: where probability 1 would reach
            painter.drawRoundedRect(QRectF(label_width, top + 4, bar_width, self.ROW - 10), 3, 3)
            painter.setPen(QColor(0, 0, 0, 50))
            painter.setBrush(probability_colour(p))
            painter.drawRoundedRect(QRectF(label_width, top + 4, max(2.0, p * bar_width), self.ROW - 10), 3, 3)
            painter.setFont(self.font())
            painter.setPen(text_colour)
            painter.drawText(QRectF(self.width() - percent_width, top, percent_width - 4, self.ROW - 2),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{100 * p:.1f}%")


class TokenInspector(QFrame):
    """Side panel: the hovered (or pinned) token, its probability or loss, the entropy and the top candidates."""

    unpin_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("section")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 8, 8)
        heading = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("runTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.pin_label = QPushButton("Unpin")
        self.pin_label.setToolTip("This token is pinned: hovering shows nothing else until you unpin it (Esc).")
        self.pin_label.clicked.connect(self.unpin_requested)
        heading.addWidget(self.title, 1)
        heading.addWidget(self.pin_label)
        layout.addLayout(heading)
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        layout.addWidget(self.stats)
        self.candidates_title = QLabel("Top candidates at this position")
        self.candidates_title.setObjectName("hint")
        layout.addWidget(self.candidates_title)
        self.bars = CandidateBars()
        layout.addWidget(self.bars)
        self.missing = QLabel()  # the chosen token when it is not among the top candidates
        self.missing.setWordWrap(True)
        layout.addWidget(self.missing)
        layout.addStretch(1)
        self.show_token(None)

    def show_token(self, token: TokenInfo | None, index: int = 0, pinned: bool = False) -> None:
        self.pin_label.setVisible(pinned and token is not None)
        self.candidates_title.setVisible(bool(token and token.candidates))
        self.missing.setVisible(False)
        if token is None:
            self.title.setText("Token inspector")
            self.stats.setText("Hover over a token to see what the model expected there; click it to pin it.")
            self.bars.set_rows([])
            return
        self.title.setText(f"#{index}  “{visible_token(token.text)}”")
        if token.probability is None:
            self.stats.setText("The first token: nothing comes before it to predict it from.")
        else:
            loss = f"\nloss {token.loss:.3f} nats" if token.loss is not None else ""
            self.stats.setText(f"probability {token.probability:.4f}{loss}\n"
                               f"entropy {token.entropy:.2f} nats  ·  {token.entropy / math.log(2):.2f} bits")
        self.bars.set_rows(token.candidates)
        if token.probability is not None and not any(chosen for _, _, chosen in token.candidates):
            self.missing.setText(f"▶ chosen “{visible_token(token.text)}”: {100 * token.probability:.2f}%, "
                                 "outside the top candidates")
            self.missing.setVisible(True)
