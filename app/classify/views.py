"""The Classify tab's views: the class probabilities as bars, and the text's tokens coloured by how much each pushed
the model towards (red) or away from (blue) the class it explains, with the colour scale's legend."""
from __future__ import annotations

import html

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QUrl
from PySide6.QtGui import QColor, QCursor, QFont, QFontMetrics, QLinearGradient, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QTextBrowser, QToolTip, QWidget

from ..common.style import monospace_font
from ..common.text import visible_token

# ColorBrewer's RdBu (colour-blind safe, diverging): against the class blue, neutral white, for it red.
AGAINST, NEUTRAL, FOR = QColor("#2166ac"), QColor("#f7f7f7"), QColor("#b2182b")
TEXT_ON_LIGHT, TEXT_ON_DARK = QColor("#1b1b1b"), QColor("#ffffff")
BAR_COLOUR, PREDICTED_COLOUR = QColor("#9db8e8"), QColor("#2f6fde")


def score_colour(score: float, scale: float) -> QColor:
    """A token's colour: `score` relative to `scale` (the largest magnitude in the text), from blue (-scale) through
    white (0) to red (+scale)."""
    t = max(-1.0, min(1.0, score / scale)) if scale > 0 else 0.0
    end = FOR if t > 0 else AGAINST
    a, b = NEUTRAL.getRgbF()[:3], end.getRgbF()[:3]
    return QColor.fromRgbF(*(u + (v - u) * abs(t) for u, v in zip(a, b, strict=True)))


class ProbabilityBars(QWidget):
    """One row per class: its name, a bar as long as its probability and the percentage; the most likely class
    is drawn bold, its bar in the accent colour."""

    ROW = 24
    NAME = 140  # the name column's widest, in pixels

    def __init__(self, parent=None):
        super().__init__(parent)
        self.labels: list[str] = []
        self.probabilities: list[float] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("The model's probability for each class")
        self.show_probabilities([], [])

    def show_probabilities(self, labels: list[str], probabilities: list[float]) -> None:
        self.labels, self.probabilities = list(labels), list(probabilities)
        self.setFixedHeight(self.ROW * max(len(labels), 1) + 4)
        self.update()

    def _number_width(self) -> int:
        return self.fontMetrics().horizontalAdvance("100.0%") + 8

    def _name_width(self) -> int:
        bold = QFont(self.font())
        bold.setBold(True)
        widest = max((QFontMetrics(bold).horizontalAdvance(name) for name in self.labels), default=0)
        return min(self.NAME, widest + 12)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.NAME // 2 + 60 + self._number_width(), self.height())

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_colour = self.palette().color(QPalette.ColorRole.WindowText)
        if not self.labels:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignVCenter, "Classify a text to see each class's probability.")
            return
        name_width, number_width = self._name_width(), self._number_width()
        bar_width = max(20, self.width() - name_width - number_width - 6)
        best = max(range(len(self.probabilities)), key=self.probabilities.__getitem__)
        for row, (name, p) in enumerate(zip(self.labels, self.probabilities, strict=True)):
            top = 2 + row * self.ROW
            font = QFont(self.font())
            font.setBold(row == best)
            painter.setFont(font)
            painter.setPen(text_colour)
            shown = painter.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, name_width - 6)
            painter.drawText(QRectF(2, top, name_width - 4, self.ROW - 2), Qt.AlignmentFlag.AlignVCenter, shown)
            bar = QRectF(name_width, top + 5, bar_width, self.ROW - 12)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 14))  # the track: where probability 1 would reach
            painter.drawRoundedRect(bar, 3, 3)
            painter.setBrush(PREDICTED_COLOUR if row == best else BAR_COLOUR)
            painter.drawRoundedRect(QRectF(bar.left(), bar.top(), max(2.0, p * bar_width), bar.height()), 3, 3)
            painter.setPen(text_colour)
            painter.drawText(QRectF(self.width() - number_width, top, number_width - 4, self.ROW - 2),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{100 * p:.1f}%")


class AttributionView(QTextBrowser):
    """The text, token by token, each on its colour (score_colour); hovering a token shows its score."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setOpenLinks(False)  # anchors are token indices, not places to navigate to
        self.setFont(monospace_font())
        self.document().setDocumentMargin(10)
        self.tokens: list[str] = []
        self.scores: list[float] = []
        self.colours: list[QColor] = []
        self.label = ""  # the class explained
        self.highlighted.connect(self._show_score)
        self.setPlaceholderText("Each token of the text, coloured by how much it pushed the model towards the class "
                                "explained (red) or away from it (blue).")

    def show_scores(self, tokens: list[str], scores: list[float], label: str) -> None:
        self.tokens, self.scores, self.label = list(tokens), list(scores), label
        scale = max((abs(s) for s in scores), default=0.0)
        self.colours = [score_colour(s, scale) for s in scores]
        spans = []
        for i, (token, colour) in enumerate(zip(tokens, self.colours, strict=True)):
            text = TEXT_ON_DARK if colour.lightnessF() < 0.5 else TEXT_ON_LIGHT
            word = token.lstrip(" ")  # the space before a word stays uncoloured, between the coloured words
            spans.append(" " * (len(token) > len(word)) +
                         f"<a href='{i}' style='background-color:{colour.name()}; color:{text.name()}; "
                         f"text-decoration:none'>{html.escape(word).replace(chr(10), '⏎<br>')}</a>")
        self.setHtml(f"<div style='line-height:140%'>{''.join(spans)}</div>")

    def clear_scores(self) -> None:
        self.tokens, self.scores, self.colours = [], [], []
        self.clear()

    def _show_score(self, url: QUrl) -> None:
        if not url.toString():
            QToolTip.hideText()
            return
        i = int(url.toString())
        QToolTip.showText(QCursor.pos(), self.score_text(i), self)

    def score_text(self, i: int) -> str:
        """The tooltip of token i: the token and its score, in words."""
        score = self.scores[i]
        way = "towards" if score > 0 else "away from" if score < 0 else "neither towards nor away from"
        return f"“{visible_token(self.tokens[i])}”: {score:+.4f}, pushed {way} “{self.label}”"


class AttributionLegend(QWidget):
    """The colour scale under the tokens: blue (away from the class) through white to red (towards it)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedHeight(34)
        self.setMinimumWidth(260)
        self.setMaximumWidth(420)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setToolTip("Gradient × input: how much each token's embedding raised (red) or lowered (blue) the "
                        "explained class's score, relative to the strongest token of this text.")

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(420, 34)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        bar = QRectF(6, 4, self.width() - 12, 12)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for position, colour in ((0.0, AGAINST), (0.5, NEUTRAL), (1.0, FOR)):
            gradient.setColorAt(position, colour)
        painter.setPen(QColor(0, 0, 0, 60))
        painter.setBrush(gradient)
        painter.drawRoundedRect(bar, 3, 3)
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        baseline = bar.bottom() + 3 + painter.fontMetrics().ascent()
        painter.drawText(QPointF(bar.left(), baseline), "← away from the class")
        right = "towards it →"
        painter.drawText(QPointF(bar.right() - painter.fontMetrics().horizontalAdvance(right), baseline), right)
        painter.drawLine(QPointF(bar.center().x(), bar.bottom()), QPointF(bar.center().x(), bar.bottom() + 3))
