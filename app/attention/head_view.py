"""The head view (bertviz's): the text twice, queries in a left column and keys in a right one, and a line from
each query to each key it attends to, as opaque as the weight; several heads of one layer overlaid, a colour each.
Hovering a token keeps only its lines; a click pins it.

Numpy picks the lines once per layer (a list of QLineF per head and strength, made when first drawn) and the
canvas paints each list with one drawLines call, under a transform from (0..1, row) to pixels: a resize or a
scroll builds nothing. Every line of the checked heads is kept as a picture of the rect last painted, so moving
the mouse off a token (back to all lines) costs a copy, not a redraw.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from .heatmap import LABEL_CHARS, LABEL_MARGINS
from ..common.style import MUTED
from ..common.text import visible_token

# Okabe & Ito's palette, told apart with every common colour-blindness; its pale yellow last (faint on white)
HEAD_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")
MIN_WEIGHT = 0.02  # fainter lines are left out: invisible anyway, and a long text would have tens of thousands
KEYS_PER_QUERY = 8  # and beyond a query's 8 strongest: a diffuse head's many faint lines cost a paint 100s of ms
LEVELS = 10  # weights are drawn in this many steps of opacity, one list of lines per step
# Pixel offsets of the one-pixel strokes that draw a line of each level: stronger lines are wider, as two or three
# side by side; a pen wider than a pixel leaves Qt's fast path and paints ten times slower with opacity.
STROKE_OFFSETS = {level: (0.0,) + ((0.8,) if level > LEVELS * 0.4 else ()) + ((-0.8,) if level > LEVELS * 0.7 else ())
                  for level in range(1, LEVELS + 1)}
FOCUS_FILL = QColor("#dce7fb")  # the runs list's selection colour
TITLES = ("query", "key")  # the columns' headings
TOP_LINES = 3  # the strongest lines of a focused token that the readout names
HINT = "Hover over a token to see only its lines; click to pin it."
WHAT_IS_DRAWN = f"opacity = weight; each query's {KEYS_PER_QUERY} strongest keys of {MIN_WEIGHT:g} or more"


def head_colour(head: int) -> QColor:
    return QColor(HEAD_COLOURS[head % len(HEAD_COLOURS)])


def strong_lines(weights: np.ndarray, causal: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(queries, keys, weights) of one head's [T, T] matrix: each query's KEYS_PER_QUERY strongest keys of
    MIN_WEIGHT or more, row by row; a causal query's future keys are left out whatever their weight."""
    shown = np.tril(weights) if causal else weights
    keep = shown >= MIN_WEIGHT
    if shown.shape[1] > KEYS_PER_QUERY:
        strongest = np.zeros_like(keep)
        top = np.argpartition(-shown, KEYS_PER_QUERY - 1, axis=1)[:, :KEYS_PER_QUERY]  # ties: any of them
        np.put_along_axis(strongest, top, True, axis=1)
        keep &= strongest
    queries, keys = np.nonzero(keep)
    return queries, keys, shown[queries, keys]


def _level(weights: np.ndarray) -> np.ndarray:
    """The step of opacity, 1..LEVELS, of each weight."""
    return np.clip(np.ceil(weights * LEVELS), 1, LEVELS).astype(int)


@dataclass
class LineSet:
    """The lines of one head: each a query → key with its weight."""
    head: int
    queries: np.ndarray
    keys: np.ndarray
    weights: np.ndarray

    @cached_property
    def levels(self) -> dict[int, list[QLineF]]:
        """level (1..LEVELS) -> the lines from (0, query row) to (1, key row); made when first drawn."""
        levels, lines = _level(self.weights), {}
        for level in np.unique(levels).tolist():
            chosen = levels == level
            lines[level] = [QLineF(0, q + 0.5, 1, k + 0.5)
                            for q, k in zip(self.queries[chosen].tolist(), self.keys[chosen].tolist(), strict=True)]
        return lines

    def only(self, selected: np.ndarray) -> LineSet:
        return LineSet(self.head, self.queries[selected], self.keys[selected], self.weights[selected])


class Token(NamedTuple):
    side: str  # "query" (left column) or "key" (right column)
    index: int


class Geometry(NamedTuple):
    left: float  # x of the query column
    label: float  # a column's width
    gap: float  # between the columns, where the lines go
    top: float  # y of the first row
    row: float  # a row's height

    @property
    def right(self) -> float:  # x of the key column
        return self.left + self.label + self.gap


class HeadCanvas(QWidget):
    """Paints the two columns and the lines of the checked heads; tracks the hovered and pinned token."""

    focus_changed = Signal()
    PAD = 8  # between a label and its lines
    MIN_GAP, MAX_GAP = 160, 420  # the lines' span: wider only flattens them

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.tokens: list[str] = []
        self.labels: list[str] = []
        self.heads: list[LineSet] = []  # every line of every head of the layer
        self.checked: list[int] = []
        self.line_sets: dict[int, LineSet] = {}  # what is drawn now: the checked heads, cut to the focus
        self.hover: Token | None = None
        self.pinned: Token | None = None
        metrics = QFontMetrics(self.font())
        self.min_row = metrics.height() + 4  # a long text scrolls rather than squeeze rows below this
        self.max_row = round(self.min_row * 1.5)
        self.title_height = metrics.height() + 10
        self.label_width = 0
        self._data_version = 0  # counts set_data calls: a key of the cached picture
        self._picture: tuple[tuple, QImage] | None = None  # (what it shows, the lines painted over a rect)

    # ---- data ----------------------------------------------------------------------------------
    def set_data(self, weights: np.ndarray, tokens: list[str], causal: bool) -> None:
        """weights [H, T, T] of one layer; the focus is kept when the text is the same (a live refresh)."""
        if tokens != self.tokens:
            self.hover = self.pinned = None
        self.tokens = list(tokens)
        self._data_version += 1
        self.labels = [visible_token(t, LABEL_CHARS) for t in tokens]
        self.heads = [LineSet(h, *strong_lines(w, causal)) for h, w in enumerate(weights)]
        bold = QFont(self.font())
        bold.setBold(True)  # the focused token is bold: its column must fit it
        metrics = QFontMetrics(bold)
        widest = max(metrics.horizontalAdvance(text) for text in (*self.labels, *TITLES))
        self.label_width = widest + 2 * self.PAD
        self.setMinimumSize(2 * self.label_width + self.MIN_GAP,
                            self.title_height + len(tokens) * self.min_row + self.PAD)
        self._rebuild()

    def set_checked(self, heads: list[int]) -> None:
        self.checked = sorted(heads)
        self._rebuild()

    def clear(self) -> None:
        self.tokens, self.labels, self.heads = [], [], []
        self._picture = None
        self.hover = self.pinned = None
        self.setMinimumSize(0, 0)
        self._rebuild()

    def focus(self) -> Token | None:
        return self.pinned or self.hover

    def _rebuild(self) -> None:
        """The lines to draw: those of the checked heads, only the focused token's when one is."""
        focus = self.focus()
        self.line_sets = {}
        for head in self.checked:
            if head < len(self.heads):
                lines = self.heads[head]
                if focus is not None:
                    lines = lines.only((lines.queries if focus.side == "query" else lines.keys) == focus.index)
                self.line_sets[head] = lines
        self.update()
        self.focus_changed.emit()

    # ---- geometry and hit testing --------------------------------------------------------------
    def geometry_now(self) -> Geometry:
        n = max(len(self.tokens), 1)
        gap = min(self.MAX_GAP, max(self.MIN_GAP, self.width() - 2 * self.label_width))
        row = min(self.max_row, max(self.min_row, (self.height() - self.title_height - self.PAD) / n))
        return Geometry((self.width() - gap) / 2 - self.label_width, self.label_width, gap, self.title_height, row)

    def token_at(self, pos: QPointF) -> Token | None:
        g = self.geometry_now()
        row = math.floor((pos.y() - g.top) / g.row)
        if not 0 <= row < len(self.tokens):
            return None
        if g.left <= pos.x() < g.left + g.label:
            return Token("query", row)
        if g.right <= pos.x() < g.right + g.label:
            return Token("key", row)
        return None

    def token_centre(self, token: Token) -> QPointF:
        g = self.geometry_now()
        x = g.left if token.side == "query" else g.right
        return QPointF(x + g.label / 2, g.top + (token.index + 0.5) * g.row)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return self.minimumSize()

    # ---- painting ------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(event.rect(), self.palette().color(QPalette.ColorRole.Base))
        if not self.tokens:
            return
        g = self.geometry_now()
        self._paint_titles(painter, g)
        if self.focus() is None:  # every line: kept as a picture, for a repaint with nothing changed
            painter.drawImage(event.rect().topLeft(), self._all_lines(g, event.rect()))
        else:  # one token's lines are few
            self._paint_lines(painter, g)
        first = max(0, math.floor((event.rect().top() - g.top) / g.row))
        last = min(len(self.tokens), math.ceil((event.rect().bottom() - g.top) / g.row) + 1)
        self._paint_tokens(painter, g, range(first, last))

    def _paint_titles(self, painter: QPainter, g: Geometry) -> None:
        painter.setPen(QColor(MUTED))
        for x, title, align in ((g.left, TITLES[0], Qt.AlignmentFlag.AlignRight),
                                (g.right, TITLES[1], Qt.AlignmentFlag.AlignLeft)):
            painter.drawText(QRectF(x + self.PAD, 0, g.label - 2 * self.PAD, g.top),
                             align | Qt.AlignmentFlag.AlignVCenter, title)

    def _all_lines(self, g: Geometry, rect: QRect) -> QImage:
        """The lines of the checked heads over `rect`, painted anew only when what they show has changed (leaving
        a token, or a layout settling, repaints the same lines)."""
        key = (self._data_version, tuple(self.line_sets), self.size().toTuple(), rect.getRect())
        if self._picture is None or self._picture[0] != key:
            ratio = self.devicePixelRatioF()
            picture = QImage(rect.size() * ratio, QImage.Format.Format_ARGB32_Premultiplied)  # the raster's own
            picture.setDevicePixelRatio(ratio)
            picture.fill(Qt.GlobalColor.transparent)
            painter = QPainter(picture)
            painter.translate(-rect.topLeft())
            self._paint_lines(painter, g)
            painter.end()
            self._picture = (key, picture)
        return self._picture[1]

    def _paint_lines(self, painter: QPainter, g: Geometry) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.translate(g.left + g.label, g.top)
        painter.scale(g.gap, g.row)  # lines are stored from (0, query row) to (1, key row)
        for level in range(1, LEVELS + 1):  # faint first, so strong lines of any head lie on top
            for head, lines in self.line_sets.items():
                if level in lines.levels:
                    colour = head_colour(head)
                    colour.setAlphaF(level / LEVELS)
                    pen = QPen(colour, 1.0)
                    pen.setCosmetic(True)  # one pixel, whatever the scale: Qt's fast path
                    painter.setPen(pen)
                    for offset in STROKE_OFFSETS[level]:
                        painter.translate(0, offset / g.row)
                        painter.drawLines(lines.levels[level])
                        painter.translate(0, -offset / g.row)
        painter.restore()

    def _paint_tokens(self, painter: QPainter, g: Geometry, rows: range) -> None:
        focus = self.focus()
        linked = None  # the tokens on the other side joined to the focused one
        if focus is not None:
            ends = [lines.keys if focus.side == "query" else lines.queries for lines in self.line_sets.values()]
            linked = set(np.concatenate(ends).tolist()) if ends else set()
        text, muted = self.palette().color(QPalette.ColorRole.Text), QColor(MUTED)
        bold = QFont(self.font())
        bold.setBold(True)
        for side, x, align in (("query", g.left, Qt.AlignmentFlag.AlignRight),
                               ("key", g.right, Qt.AlignmentFlag.AlignLeft)):
            for i in rows:
                rect = QRectF(x, g.top + i * g.row, g.label, g.row)
                focused = focus == (side, i)
                if focused:
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(FOCUS_FILL)
                    painter.drawRoundedRect(rect.adjusted(2, 1, -2, -1), 4, 4)
                dim = self.tokens[i].isspace() or (linked is not None and not focused and
                                                  (side == focus.side or i not in linked))
                painter.setFont(bold if focused else self.font())
                painter.setPen(muted if dim else text)
                painter.drawText(rect.adjusted(self.PAD, 0, -self.PAD, 0), align | Qt.AlignmentFlag.AlignVCenter,
                                 self.labels[i])

    # ---- the mouse -----------------------------------------------------------------------------
    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._set_hover(self.token_at(event.position()))

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._set_hover(None)
        super().leaveEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.button() == Qt.MouseButton.LeftButton:
            token = self.token_at(event.position())
            self.pinned = None if token == self.pinned else token  # a click elsewhere, or on it again, unpins
            self._rebuild()

    def _set_hover(self, token: Token | None) -> None:
        if token != self.hover:
            self.hover = token
            if self.pinned is None:  # a pinned token keeps its lines while the mouse moves on
                self._rebuild()

    # ---- words ---------------------------------------------------------------------------------
    def describe_focus(self) -> str:
        """The focused token and its strongest lines over the heads drawn, as rich text."""
        focus = self.focus()
        if focus is None:
            return html.escape(HINT)
        other = "key" if focus.side == "query" else "query"
        found = [(w, head, end) for head, lines in self.line_sets.items()
                 for w, end in zip(lines.weights.tolist(),
                                   (lines.keys if focus.side == "query" else lines.queries).tolist(), strict=True)]
        found.sort(key=lambda line: (-line[0], line[1]))  # strongest first; a tie goes to the lower head
        strongest = " · ".join(f"<span style='color:{head_colour(head).name()}'>■</span> head {head + 1}: "
                               f"{self._name(Token(other, end))} {w:.2f}" for w, head, end in found[:TOP_LINES])
        verb = "attends most to" if focus.side == "query" else "is attended most by"
        what = f"{verb}  {strongest}" if found else f"has no line of {MIN_WEIGHT:g} or more in the heads shown"
        pinned = "  (pinned: click it again to let go)" if self.pinned else ""
        return f"<b>{self._name(focus)}</b> {what}{pinned}"

    def _name(self, token: Token) -> str:
        return f"{token.side} {token.index} “{html.escape(visible_token(self.tokens[token.index], 20))}”"


class HeadView(QWidget):
    """The canvas in a vertical scroll, under a row of head chips (one colour each) with All and None."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.chips: list[QToolButton] = []
        self.chip_row = QHBoxLayout()
        self.chip_row.setContentsMargins(0, 0, 0, 0)
        self.chip_row.setSpacing(4)
        self.all_button = _small_button("All", "Overlay every head of the layer", lambda: self.check_heads(
            range(len(self.chips)), len(self.chips)))
        self.none_button = _small_button("None", "Hide every head", lambda: self.check_heads([], len(self.chips)))
        controls = QHBoxLayout()
        controls.setContentsMargins(*LABEL_MARGINS)
        controls.addWidget(QLabel("Heads"))
        controls.addLayout(self.chip_row)
        controls.addWidget(self.all_button)
        controls.addWidget(self.none_button)
        controls.addStretch(1)
        controls.addWidget(QLabel(WHAT_IS_DRAWN, objectName="hint"))
        self.readout = QLabel(html.escape(HINT))
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.readout.setContentsMargins(*LABEL_MARGINS)
        # a long readout is cut at the right rather than widen the tab (and the window) as the mouse moves
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.canvas = HeadCanvas()
        self.canvas.focus_changed.connect(lambda: self.readout.setText(self.canvas.describe_focus()))
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)  # the canvas fills the width, and is as tall as its rows need
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setWidget(self.canvas)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.readout)
        layout.addWidget(self.scroll, 1)

    @property
    def n_heads(self) -> int:
        return len(self.chips)

    def show_layer(self, weights: np.ndarray, tokens: list[str], causal: bool = True) -> None:
        """weights [H, T, T]: one layer's heads, drawn for the checked chips (every head when H is new)."""
        if len(weights) != self.n_heads:
            self.check_heads(range(len(weights)), len(weights))
        self.canvas.set_data(weights, tokens, causal)

    def check_heads(self, heads, n_heads: int) -> None:
        """Check exactly `heads` of `n_heads` chips (made anew when their number changes)."""
        if n_heads != self.n_heads:
            self._make_chips(n_heads)
        wanted = set(heads)
        for head, chip in enumerate(self.chips):
            chip.blockSignals(True)  # one redraw for all, not one per chip
            chip.setChecked(head in wanted)
            chip.blockSignals(False)
        self.canvas.set_checked(self.checked_heads())

    def checked_heads(self) -> list[int]:
        return [head for head, chip in enumerate(self.chips) if chip.isChecked()]

    def clear(self) -> None:
        self.canvas.clear()

    def save_png(self, path: Path) -> None:
        """The whole canvas, the rows scrolled out of sight included."""
        if not self.canvas.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")

    def _make_chips(self, n_heads: int) -> None:
        for chip in self.chips:
            self.chip_row.removeWidget(chip)
            chip.deleteLater()
        self.chips = []
        for head in range(n_heads):
            chip = QToolButton(text=str(head + 1), checkable=True, toolTip=f"Show head {head + 1}")
            chip.setStyleSheet(_chip_style(head_colour(head)))
            chip.toggled.connect(lambda _: self.canvas.set_checked(self.checked_heads()))
            self.chip_row.addWidget(chip)
            self.chips.append(chip)


def _small_button(text: str, tooltip: str, on_click) -> QToolButton:
    widget = QToolButton(text=text, toolTip=tooltip)
    widget.clicked.connect(on_click)
    return widget


def _chip_style(colour: QColor) -> str:
    """A round chip in the head's colour: outlined when off, filled when on (with text that reads on the fill)."""
    ink = "#000000" if colour.lightnessF() > 0.55 else "#ffffff"
    return (f"QToolButton {{ border: 2px solid {colour.name()}; border-radius: 10px; padding: 1px 6px; "
            f"min-width: 12px; font-weight: 600; background: transparent; }}"
            f"QToolButton:checked {{ background: {colour.name()}; color: {ink}; }}")
