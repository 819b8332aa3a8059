"""The Generate tab for an encoder run (a masked language model): fill in the blank.

The user writes a text with [MASK] where a token is missing (Insert [MASK], or Ctrl+M, puts one at the cursor),
or clicks one of the text's tokens, shown as chips under it, to hide it behind a mask; a click on that mask puts
the token back. Fill asks the tab's worker for lmcore.generation.fill_mask, on its thread; the view then shows, at
each blank, the top candidates with their probabilities as bars, and the text with each blank's best candidate
filled in, coloured by its probability as the tab's other token views colour tokens.

The chips come from the loaded model's tokenizer, on the GUI thread as the user types: a tokenizer never changes
once loaded, and a text the model can read whole is short.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut, QTextCharFormat
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from lmcore.masking import FRAME
from lmcore.tokenizers import MASK

from ..common.style import ACCENT, ERROR, MUTED, TEXT
from ..common.text import visible_token
from ..common.widgets import button, row, text_editor
from .session import CandidateRow, TokenInfo
from .views import CandidateBars, ColourLegend, TokenView

CHIP_SHADES = ("#e3e8f1", "#d3dae7")  # alternate, so that where one token ends and the next begins shows
CONTEXT_CHARS = 8  # of the text on each side of a blank, in its column's title
BLANK_WIDTH = 190  # px: a column of candidates
EXAMPLE = "To be, or not to be, that is the [MASK]uestion."


@dataclass(frozen=True)
class Chip:
    """A token of the text as the model reads it, or a mask."""
    text: str  # the token's text, or MASK
    start: int  # where it stands in the text; -1 when it is not found there (an unknown word): not clickable
    end: int

    @property
    def masked(self) -> bool:
        return self.text == MASK  # the text is cut at its masks before it is tokenized: no token is one


def text_chips(tokenizer, text: str) -> list[Chip]:
    """The chips of a text: the tokens of the text between its masks, and the masks, in order."""
    chips, position = [], 0
    for n, piece in enumerate(text.split(MASK)):
        if n:  # a mask stood before this piece
            chips.append(Chip(MASK, position, position + len(MASK)))
            position += len(MASK)
        chips += _piece_chips(tokenizer, piece, position)
        position += len(piece)
    return chips


def _piece_chips(tokenizer, piece: str, offset: int) -> list[Chip]:
    """Each token of `piece`, found in it from where the last one ended: past the whitespace a word tokenizer
    drops, or past whatever a token not found in it (an unknown word, a byte of a character) stood for."""
    chips, at, lost = [], 0, False
    for token_id in tokenizer.encode(piece, unknown="replace") if piece else []:
        token = tokenizer.decode([token_id])
        found = piece.find(token, at) if token else -1
        if found < 0 or (piece[at:found].strip() and not lost):
            chips.append(Chip(tokenizer.token_text(token_id), -1, -1))
            lost = True
        else:
            chips.append(Chip(token, offset + found, offset + found + len(token)))
            at, lost = found + len(token), False
    return chips


def toggled(text: str, chip: Chip, hidden: dict[int, str]) -> tuple[str, dict[int, str]] | None:
    """The text with the token `chip` masked, or with the mask `chip` replaced by the token a click hid behind it;
    and `hidden` (what each mask made by a click hid, by where the mask stands) moved to match. None when there is
    nothing to do: a token not found in the text, a mask the user typed."""
    if chip.start < 0 or (chip.masked and chip.start not in hidden):
        return None
    replacement = hidden[chip.start] if chip.masked else MASK
    shift = len(replacement) - (chip.end - chip.start)
    moved = {at + shift if at > chip.start else at: token for at, token in hidden.items() if at != chip.start}
    if not chip.masked:
        moved[chip.start] = chip.text
    return text[:chip.start] + replacement + text[chip.end:], moved


def filled_parts(text: str, found: list[tuple[int, list[tuple[str, float]]]]) -> list[str | tuple[str, float]]:
    """fill_mask's answer for `text` as the text with each blank's best candidate in it: the text between the
    blanks, and (candidate, probability) for each blank."""
    parts: list[str | tuple[str, float]] = []
    at = 0
    for offset, candidates in found:
        parts += [text[at:offset], candidates[0]]
        at = offset + len(MASK)
    return [*parts, text[at:]]


def blank_context(text: str, offset: int) -> str:
    """The text on both sides of the blank at `offset`, as rich text for its column: every blank written ▢, this
    one in bold."""
    def shown(part: str) -> str:
        return html.escape(visible_token(part)) if part else ""

    before, after = (part.replace(MASK, "▢") for part in (text[:offset], text[offset + len(MASK):]))  # then cut
    before = ("…" + before[-CONTEXT_CHARS:]) if len(before) > CONTEXT_CHARS else before
    after = (after[:CONTEXT_CHARS] + "…") if len(after) > CONTEXT_CHARS else after
    return f"{shown(before)}<b style='color:{ACCENT}'>▢</b>{shown(after)}"


class ChipView(TokenView):
    """The text's tokens as chips, in alternating shades, masks in the accent colour. `clicked(index)` says which
    chip was clicked (chips not found in the text are not links)."""

    def show_chips(self, chips: list[Chip]) -> None:
        self.clear_tokens()
        cursor = self._end_cursor()
        gap = QTextCharFormat()
        for index, chip in enumerate(chips):
            start = cursor.position()
            cursor.insertText(MASK if chip.masked else visible_token(chip.text), self._chip_format(chip, index))
            self.spans.append((start, cursor.position()))
            self.values.append(None)
            cursor.insertText("\u2009", gap)  # a thin space: chips of one character stay apart

    @staticmethod
    def _chip_format(chip: Chip, index: int) -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(ACCENT if chip.masked else CHIP_SHADES[index % 2]))
        fmt.setForeground(QColor("white" if chip.masked else TEXT if chip.start >= 0 else MUTED))
        if chip.start >= 0:
            fmt.setAnchor(True)
            fmt.setAnchorHref(str(index))
        return fmt


class BlankColumn(QFrame):
    """One blank's candidates: where it is in the text, and the top candidates as bars, the best one marked."""

    def __init__(self, number: int, context: str, candidates: list[tuple[str, float]]):
        super().__init__()
        self.setObjectName("section")
        self.setFixedWidth(BLANK_WIDTH)
        title = QLabel(f"<b>Blank {number}</b>")
        where = QLabel(context)
        where.setObjectName("hint")
        where.setMinimumWidth(1)  # a long context is cut, rather than widening the column
        self.bars = CandidateBars()
        self.bars.set_rows([CandidateRow(text, p, i == 0, None) for i, (text, p) in enumerate(candidates)])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(2)
        for widget in (title, where, self.bars):
            layout.addWidget(widget)
        layout.addStretch(1)


class FillMaskView(QWidget):
    """Fill in the blank, the Generate tab's view of an encoder run. The tab gives it the loaded model's tokenizer
    (set_model), sends its fill requests to the worker and hands back the answer (show_results)."""

    fill_requested = Signal(str)  # the text to fill in

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tokenizer = None
        self.max_tokens: int | None = None  # the model's context, less [CLS] and [SEP]
        self.chips: list[Chip] = []
        self.hidden: dict[int, str] = {}  # what each mask made by a click hid, by where it stands (toggled)
        self.results: list[tuple[int, list[tuple[str, float]]]] = []  # fill_mask's answer for results_text
        self.results_text = ""
        self._editing = False  # while a click rewrites the text: the change is not the user's typing

        intro = QLabel(f"A masked language model fills in blanks: write {MASK} where a token is missing, or click a "
                       "token below to hide it (click the mask to put it back), then Fill.")
        intro.setObjectName("hint")
        intro.setWordWrap(True)
        self.editor = text_editor(f"A text with {MASK} where the model should fill in a token", 60)
        self.editor.textChanged.connect(self._on_text_edited)
        self.insert_button = button(f"Insert {MASK}", self.insert_mask,
                                    tooltip=f"Put {MASK} at the cursor, in place of any text selected (Ctrl+M)")
        self.fill_button = button("▶ Fill", self.request_fill, name="primary",
                                  tooltip="What the model would put in each blank (Ctrl+Enter)")
        self.status = QLabel()
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self.status.setMinimumWidth(1)
        self.chip_view = ChipView()
        self.chip_view.setPlaceholderText("The text's tokens appear here once a model is loaded.")
        self.chip_view.setMaximumHeight(64)  # two lines of chips; more scroll
        self.chip_view.clicked.connect(self.toggle)
        self.chip_view.hovered.connect(self._explain_chip)
        self.token_count = QLabel()
        self.token_count.setObjectName("hint")

        self.columns = QHBoxLayout()
        self.columns.setContentsMargins(0, 0, 0, 0)
        self.columns.addStretch(1)
        holder = QWidget()
        holder.setLayout(self.columns)
        self.blanks = QScrollArea()
        self.blanks.setWidget(holder)
        self.blanks.setWidgetResizable(True)
        self.blanks.setFrameShape(QFrame.Shape.NoFrame)
        self.blanks.setMinimumHeight(150)
        self.filled_view = TokenView()
        self.filled_view.setPlaceholderText("The text with the best candidate in each blank appears here, each "
                                            "coloured by its probability.")
        self.filled_view.setMaximumHeight(64)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(intro)
        layout.addWidget(self.editor)
        layout.addLayout(row(self.insert_button, self.fill_button, (self.status, 1), self.token_count))
        layout.addWidget(self.chip_view)
        layout.addWidget(_caption("Candidates at each blank"))
        layout.addWidget(self.blanks, 1)
        layout.addLayout(row(_caption("Best guesses filled in"), 1, ColourLegend()))
        layout.addWidget(self.filled_view)
        QShortcut(QKeySequence("Ctrl+M"), self, self.insert_mask, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.editor.setPlainText(EXAMPLE)

    # ---- the text and its chips ---------------------------------------------------------------
    def set_model(self, tokenizer, context_length: int) -> None:
        """The loaded encoder's tokenizer and context: the chips are cut with it; another model's answers go."""
        self.tokenizer, self.max_tokens = tokenizer, context_length - FRAME
        self._show_chips()
        self.show_results("", [])
        self.status.clear()

    def text(self) -> str:
        return self.editor.toPlainText()

    def insert_mask(self) -> None:
        self.editor.insertPlainText(MASK)
        self.editor.setFocus()

    def toggle(self, index: int) -> None:
        """A click on chip `index`: mask the token, or put back the one its mask hid."""
        change = toggled(self.text(), self.chips[index], self.hidden) if 0 <= index < len(self.chips) else None
        if change is None:
            return
        text, self.hidden = change
        self._editing = True
        self.editor.setPlainText(text)
        self._editing = False

    def _on_text_edited(self) -> None:
        if not self._editing:  # typed: where the masks made by clicks stand, and what they hid, is no longer known
            self.hidden = {}
        self._show_chips()

    def _show_chips(self) -> None:
        if self.tokenizer is None:
            return
        self.chips = text_chips(self.tokenizer, self.text())
        self.chip_view.show_chips(self.chips)
        masks = sum(chip.masked for chip in self.chips)
        self.token_count.setText(f"{len(self.chips)} of at most {self.max_tokens} tokens · "
                                 f"{masks} blank{'s' * (masks != 1)}")
        too_long = self.max_tokens is not None and len(self.chips) > self.max_tokens
        self.token_count.setStyleSheet(f"color: {ERROR};" if too_long else "")

    def _explain_chip(self, index: int) -> None:
        """The hovered chip's tooltip: what a click on it does."""
        chip = self.chips[index] if 0 <= index < len(self.chips) else None
        self.chip_view.setToolTip(
            "" if chip is None else
            f"Not found in the text as the tokenizer writes it (“{chip.text}”)" if chip.start < 0 else
            f"Click to put back “{self.hidden[chip.start]}”" if chip.start in self.hidden else
            f"A {MASK} you typed: type over it to change it" if chip.masked else "Click to mask this token")

    # ---- filling ------------------------------------------------------------------------------
    def request_fill(self) -> None:
        if self.fill_button.isEnabled():
            self.fill_requested.emit(self.text())

    def show_results(self, text: str, found: list[tuple[int, list[tuple[str, float]]]]) -> None:
        """fill_mask's answer for `text`: a column of candidates per blank, and the text filled in."""
        self.results_text, self.results = text, found
        while self.columns.count() > 1:  # the last item is the stretch that keeps the columns left
            self.columns.takeAt(0).widget().deleteLater()
        for number, (offset, candidates) in enumerate(found, start=1):
            self.columns.insertWidget(number - 1, BlankColumn(number, blank_context(text, offset), candidates))
        self.filled_view.clear_tokens()
        for part in filled_parts(text, found):
            if isinstance(part, str):
                self.filled_view.add_plain(part)
            else:  # fill_mask names its candidates by their text: no id
                self.filled_view.add_tokens([TokenInfo(-1, part[0], part[1], None, [])], lambda t: t.probability)
        if found:
            self.status.setText(f"{len(found)} blank{'s' * (len(found) != 1)} filled")

    def blank_columns(self) -> list[BlankColumn]:
        return [self.columns.itemAt(i).widget() for i in range(self.columns.count() - 1)]


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("hint")
    return label
