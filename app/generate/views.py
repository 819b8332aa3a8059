"""The Generate tab's token views: text coloured token by token, the colour legend, and the candidate inspector."""
from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, QUrl, Signal
from PySide6.QtGui import (QColor, QFont, QFontMetrics, QLinearGradient, QPainter, QPalette, QPen, QTextBlockFormat,
                           QTextCharFormat, QTextCursor)
from PySide6.QtWidgets import (QButtonGroup, QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QTextBrowser,
                               QVBoxLayout, QWidget)

from ..common.style import monospace_font
from ..common.text import visible_token
from .session import CandidateRow, TokenInfo, candidate_rows

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
    for (x0, c0), (x1, c1) in zip(COLOUR_STOPS, COLOUR_STOPS[1:], strict=False):
        if x <= x1:
            t = (x - x0) / (x1 - x0)
            a, b = QColor(c0).getRgbF()[:3], QColor(c1).getRgbF()[:3]
            return QColor.fromRgbF(*(u + (v - u) * t for u, v in zip(a, b, strict=True)))
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
        self._placeholder = ""
        self._plain = QTextCharFormat()
        self._plain.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
        self.clear_tokens()

    @staticmethod
    def _index(url: QUrl) -> int:
        return int(url.toString()) if url.toString() else -1

    def setPlaceholderText(self, text: str) -> None:  # noqa: N802 - Qt's name
        # Drawn by paintEvent: Qt clips its own to the empty document's single line, and cuts a wrapped one off.
        self._placeholder = text
        self.viewport().update()

    def placeholderText(self) -> str:  # noqa: N802 - Qt's name
        return self._placeholder

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)
        if self._placeholder and self.document().isEmpty():
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            margin = int(self.document().documentMargin())
            painter.drawText(self.viewport().rect().adjusted(margin, margin, -margin, -margin),
                             Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap, self._placeholder)

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

    LEAST_BAR = 120  # px: room for the first, a middle and the last tick label (those that would touch are left out)

    def __init__(self, loss: bool = False, parent=None):
        super().__init__(parent)
        self.loss = loss
        self._titles = ("token loss (nats)", "loss (nats)") if loss else ("token probability", "probability")
        # 380 px where there is room; in a narrow window the short title, and a bar just long enough for its tick
        # labels to clear one another
        self.setFixedHeight(34)
        self.setMinimumWidth(self._width_with(self._titles[1], self.LEAST_BAR))
        self.setMaximumWidth(380)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setToolTip("The loss of each token under the model: red tokens surprised it" if loss else
                        "The probability the model gave each token it chose: red ones were unlikely")

    def _width_with(self, title: str, bar: int) -> int:
        return self.fontMetrics().horizontalAdvance(title) + 12 + bar + 12

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(380, 34)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        full, short = self._titles
        title = full if self.width() >= self._width_with(full, self.LEAST_BAR) else short
        title_width = metrics.horizontalAdvance(title) + 12
        bar = QRectF(title_width, 4, self.width() - title_width - 12, 12)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for position, colour in COLOUR_STOPS:
            gradient.setColorAt(position, QColor(colour))
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        painter.drawText(QRectF(0, 0, title_width, 20), Qt.AlignmentFlag.AlignVCenter, title)
        painter.setPen(QColor(0, 0, 0, 60))
        painter.setBrush(gradient)
        painter.drawRoundedRect(bar, 3, 3)
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        ticks = ([(math.exp(-loss), f"{loss:g}") for loss in LOSS_TICKS] if self.loss else
                 [(p, f"{p:g}") for p in PROBABILITY_TICKS])
        written_to = -math.inf  # where the last tick label ends: on a short bar, one that would touch it is left out
        for p, label in ticks:
            x = bar.left() + scale_position(p) * bar.width()
            painter.drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 3))
            width = metrics.horizontalAdvance(label)
            left = min(max(x - width / 2, bar.left()), bar.right() - width)
            if left >= written_to + 6:
                painter.drawText(QPointF(left, bar.bottom() + 3 + metrics.ascent()), label)
                written_to = left + width


class CandidateBars(QWidget):
    """The top candidates at one position as horizontal probability bars, the chosen token marked. A row may carry
    the candidate's probability in a second distribution (CandidateRow.other): drawn as a faint bar behind its own
    with a mark where it ends, and written in a second, dimmer column."""

    ROW = 22
    HEADER = 16
    LABEL = 72  # the token column's widest, in pixels
    BAR = 34  # the bars' least width; the second number column is left out rather than squeeze them below it

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[CandidateRow] = []
        self.titles: tuple[str, str] = ("", "")  # the headings of the two number columns, e.g. sampled and raw
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_rows(self, rows: list[CandidateRow], titles: tuple[str, str] = ("", "")) -> None:
        self.rows, self.titles = rows, titles
        self.setFixedHeight(self._header_height() + self.ROW * max(len(rows), 1) + 4)
        self.update()

    def _header_height(self) -> int:
        return self.HEADER if any(self.titles) else 0

    def _number_width(self) -> int:
        return self.fontMetrics().horizontalAdvance("100.0%") + 8

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name: one number column, as a narrow inspector shows
        return QSize(self.LABEL + 6 + self.BAR + self._number_width(), 0)

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        mono = monospace_font()
        number_width = self._number_width()
        numbers = [self.width() - number_width]  # where each number column starts
        room = self.width() >= self.minimumSizeHint().width() + number_width  # else the faint bars and marks alone
        if room and any(row.other is not None for row in self.rows):
            numbers.insert(0, numbers[0] - number_width)
        bold = QFont(mono)
        bold.setBold(True)
        widest = max((QFontMetrics(bold).horizontalAdvance("▶ " + visible_token(row.text)) for row in self.rows),
                     default=0)
        label_width = min(self.LABEL, widest + 10)  # short tokens (characters) leave the bars more room
        bar_width = max(20, numbers[0] - label_width - 6)
        text_colour = self.palette().color(QPalette.ColorRole.WindowText)
        dim_colour = self.palette().color(QPalette.ColorRole.PlaceholderText)
        header = self._header_height()
        painter.setPen(dim_colour)
        for left, title in zip(numbers, self.titles, strict=False):  # one number column: no second title
            painter.drawText(QRectF(left, 0, number_width - 4, header), Qt.AlignmentFlag.AlignRight, title)
        for row, candidate in enumerate(self.rows):
            top = header + 2 + row * self.ROW
            if candidate.chosen:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(self.palette().color(QPalette.ColorRole.Highlight).lighter(170))
                painter.drawRoundedRect(QRectF(0, top, self.width(), self.ROW - 2), 4, 4)
            font = QFont(mono)
            font.setBold(candidate.chosen)
            painter.setFont(font)
            painter.setPen(text_colour)
            marker = "▶ " if candidate.chosen else "  "
            label = painter.fontMetrics().elidedText(marker + visible_token(candidate.text),
                                                     Qt.TextElideMode.ElideRight, label_width - 4)
            painter.drawText(QRectF(4, top, label_width, self.ROW - 2), Qt.AlignmentFlag.AlignVCenter, label)
            bar = QRectF(label_width, top + 4, bar_width, self.ROW - 10)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 14))  # the track: where probability 1 would reach
            painter.drawRoundedRect(bar, 3, 3)
            if candidate.other:  # behind the bar, so the distribution shown stays in front
                painter.setBrush(QColor(0, 0, 0, 30))
                painter.drawRoundedRect(QRectF(bar.left(), bar.top(), candidate.other * bar_width, bar.height()), 3, 3)
            painter.setPen(QColor(0, 0, 0, 50))
            painter.setBrush(probability_colour(candidate.probability))
            painter.drawRoundedRect(QRectF(bar.left(), bar.top(), max(2.0, candidate.probability * bar_width),
                                           bar.height()), 3, 3)
            if candidate.other:  # a mark where the other bar ends, seen even where this one covers it
                x = bar.left() + candidate.other * bar_width
                painter.setPen(QPen(text_colour, 1.5))
                painter.drawLine(QPointF(x, bar.top() - 2), QPointF(x, bar.bottom() + 2))
            painter.setFont(self.font())
            values = (candidate.probability, candidate.other)
            for left, value, colour in zip(numbers, values, (text_colour, dim_colour), strict=False):
                painter.setPen(colour)
                painter.drawText(QRectF(left, top, number_width - 4, self.ROW - 2),
                                 Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                                 "–" if value is None else f"{100 * value:.1f}%")


class TokenInspector(QFrame):
    """Side panel: the hovered (or pinned) token, its probability or loss, the entropy and the top candidates.

    A generated token was drawn from the model's distribution as the sampling settings reshaped it: the inspector
    shows that one ("sampled") with the model's own beside it, or the other way round ("raw"), and names the
    settings, so that what each of them does can be seen. Scored text has only the raw distribution."""

    unpin_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("section")
        self._token: TokenInfo | None = None
        self._index = 0
        self._pinned = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 8, 8)
        heading = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("runTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setWordWrap(True)  # a long token wraps, rather than widening the inspector and the tab
        self.pin_label = QPushButton("Unpin")
        self.pin_label.setToolTip("This token is pinned: hovering shows nothing else until you unpin it (Esc).")
        self.pin_label.clicked.connect(self.unpin_requested)
        heading.addWidget(self.title, 1)
        heading.addWidget(self.pin_label)
        layout.addLayout(heading)
        self.stats = QLabel()
        self.stats.setWordWrap(True)
        layout.addWidget(self.stats)
        self.sampling = QLabel()  # the settings that shaped the sampled distribution
        self.sampling.setWordWrap(True)
        layout.addWidget(self.sampling)
        self.sampled_button = QPushButton("Sampled")
        self.sampled_button.setToolTip("The distribution the token was drawn from: the model's, after the "
                                       "repetition penalty, temperature, top-k and top-p")
        self.raw_button = QPushButton("Raw")
        self.raw_button.setToolTip("The model's own distribution, before the sampling settings")
        self.distribution_group = QButtonGroup(self)
        for choice in (self.sampled_button, self.raw_button):
            choice.setCheckable(True)
            choice.setObjectName("mode")
            choice.setMinimumWidth(84)  # room for the text in bold, as the tab's style draws the checked one
            self.distribution_group.addButton(choice)
        self.sampled_button.setChecked(True)
        self.distribution_group.buttonToggled.connect(lambda *_: self._show())
        self.distribution_row = QWidget()
        switch = QHBoxLayout(self.distribution_row)
        switch.setContentsMargins(0, 4, 0, 0)
        switch.setSpacing(0)
        switch.addWidget(self.sampled_button)
        switch.addWidget(self.raw_button)
        switch.addStretch(1)
        layout.addWidget(self.distribution_row)
        self.candidates_title = QLabel()
        self.candidates_title.setObjectName("hint")
        self.candidates_title.setWordWrap(True)
        layout.addWidget(self.candidates_title)
        self.bars = CandidateBars()
        layout.addWidget(self.bars)
        self.missing = QLabel()  # the chosen token when it is not among the top candidates
        self.missing.setWordWrap(True)
        layout.addWidget(self.missing)
        layout.addStretch(1)
        self.show_token(None)

    def show_token(self, token: TokenInfo | None, index: int = 0, pinned: bool = False) -> None:
        self._token, self._index, self._pinned = token, index, pinned
        self._show()

    def showing_sampled(self) -> bool:
        """Whether the bars show the sampled distribution (a generated token, with "Sampled" chosen)."""
        return (self._token is not None and self._token.sampled_probability is not None
                and self.sampled_button.isChecked())

    def _show(self) -> None:
        token = self._token
        generated = token is not None and token.sampled_probability is not None
        sampled = self.showing_sampled()
        self.pin_label.setVisible(self._pinned and token is not None)
        self.candidates_title.setVisible(bool(token and token.candidates))
        self.distribution_row.setVisible(generated)
        self.sampling.setVisible(generated)
        self.missing.setVisible(False)
        if token is None:
            self.title.setText("Token inspector")
            self.stats.setText("Hover over a token to see what the model expected there; click it to pin it.")
            self.bars.set_rows([])
            return
        self.title.setText(f"#{self._index}  “{visible_token(token.text)}”")
        entropy = (f"entropy {token.entropy:.2f} nats  ·  {token.entropy / math.log(2):.2f} bits"
                   if token.entropy is not None else "")
        if token.probability is None:
            self.stats.setText("The first token: nothing comes before it to predict it from.")
        elif generated:
            self.stats.setText(f"probability {token.sampled_probability:.4f} (raw {token.probability:.4f})\n"
                               f"{entropy} (raw)")
            self.sampling.setText(f"Sampled with {token.sampling}")
        else:
            loss = f"\nloss {token.loss:.3f} nats" if token.loss is not None else ""
            self.stats.setText(f"probability {token.probability:.4f}{loss}\n{entropy}")
        self.candidates_title.setText("What it was drawn from (the marks: raw)" if sampled else
                                      "The model's own distribution (the marks: sampled)" if generated else
                                      "Top candidates at this position")
        rows = candidate_rows(token, sampled)
        self.bars.set_rows(rows, ("sampled", "raw") if sampled else ("raw", "sampled") if generated else ("", ""))
        shown = token.sampled_probability if sampled else token.probability
        if shown is not None and not any(row.chosen for row in rows):
            self.missing.setText(f"▶ chosen “{visible_token(token.text)}”: {100 * shown:.2f}%, "
                                 "outside the top candidates")
            self.missing.setVisible(True)
