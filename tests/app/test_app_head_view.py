"""The Attention tab's head view on weights made by hand: which lines it builds, and which it paints."""
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent
from PySide6.QtWidgets import QApplication

from app.attention.head_view import HEAD_COLOURS, KEYS_PER_QUERY, MIN_WEIGHT, HeadView, Token, strong_lines

TOKENS = list("abcdef")


def causal_rows(rng, n_head, T):
    """[n_head, T, T] softmax rows over keys 0..t, with a few weights under MIN_WEIGHT among them."""
    logits = rng.normal(0, 2.5, (n_head, T, T))
    logits[:, np.triu_indices(T, k=1)[0], np.triu_indices(T, k=1)[1]] = -np.inf
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def weights():
    w = causal_rows(np.random.default_rng(3), 3, len(TOKENS))
    w[0] = np.eye(len(TOKENS))  # head 1: every token to itself, weight 1 (lines drawn level, full colour)
    w[1, :, :] = 0
    w[1, :, 0] = 1  # head 2: every token to the first, weight 1
    w[2, 5, :] = [0.01, 0.01, 0.08, 0.2, 0.3, 0.4]  # head 3, last row: two weights under MIN_WEIGHT
    return w


@pytest.fixture
def view(qtbot):
    widget = HeadView()
    qtbot.addWidget(widget)
    with qtbot.waitExposed(widget):
        widget.show()
    return widget


def pairs(lines):
    """The (query, key) pairs of a LineSet, checked against its QLineF lists, which are what gets painted."""
    drawn = sorted((round(line.y1() - 0.5), round(line.y2() - 0.5)) for level in lines.levels.values()
                   for line in level)
    built = sorted(zip(lines.queries.tolist(), lines.keys.tolist(), strict=True))
    assert drawn == built
    return built


def expected_pairs(matrix, query=None, key=None):
    """Every (query, key) of a [T, T] matrix at MIN_WEIGHT or above, keys up to the query, optionally one token's."""
    return [(q, k) for q in range(len(matrix)) for k in range(q + 1)
            if matrix[q, k] >= MIN_WEIGHT and query in (None, q) and key in (None, k)]


def move_to(canvas, token):
    """A real mouse move (QTest.mouseMove moves the cursor, which offscreen Qt ignores)."""
    pos = canvas.token_centre(token) if isinstance(token, Token) else QPointF(token)
    move = QMouseEvent(QEvent.Type.MouseMove, pos, canvas.mapToGlobal(pos), Qt.MouseButton.NoButton,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, move)


def painted(view, colour):
    """How many pixels of the canvas, as painted, are `colour` at 60 % opacity or more over the white ground."""
    image = view.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    bits = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    pixels = bits[:, :image.width() * 4].reshape(-1, 4)[:, 2::-1].astype(float)  # BGRA in memory: RGB
    white, ink = np.full(3, 255.0), np.array(QColor(colour).getRgb()[:3], float)
    opacity = (white - pixels) @ (white - ink) / ((white - ink) @ (white - ink))
    off_the_blend = np.linalg.norm(white - opacity[:, None] * (white - ink) - pixels, axis=1)
    return int(((opacity >= 0.6) & (off_the_blend < 12)).sum())


def test_one_line_set_per_checked_head_with_a_line_for_each_weight_over_the_threshold(view, weights):
    view.show_layer(weights, TOKENS)
    assert view.checked_heads() == [0, 1, 2] and sorted(view.canvas.line_sets) == [0, 1, 2]
    for head in range(3):
        assert pairs(view.canvas.line_sets[head]) == expected_pairs(weights[head])
    assert pairs(view.canvas.line_sets[0]) == [(i, i) for i in range(6)]
    assert pairs(view.canvas.line_sets[1]) == [(i, 0) for i in range(6)]
    last_row = [k for q, k in pairs(view.canvas.line_sets[2]) if q == 5]
    assert last_row == [2, 3, 4, 5]  # 0.01 twice: left out
    assert view.canvas.line_sets[2].levels.keys() <= set(range(1, 11))


def test_the_head_chips_choose_what_is_drawn_and_painted(view, weights, qtbot):
    view.show_layer(weights, TOKENS)
    blue, vermillion = HEAD_COLOURS[0], HEAD_COLOURS[1]
    assert painted(view, blue) > 100 and painted(view, vermillion) > 100  # their lines of weight 1
    qtbot.mouseClick(view.chips[0], Qt.MouseButton.LeftButton)  # head 1 off
    assert sorted(view.canvas.line_sets) == [1, 2] and view.checked_heads() == [1, 2]
    assert painted(view, vermillion) > 100 and painted(view, blue) == 0
    qtbot.mouseClick(view.none_button, Qt.MouseButton.LeftButton)
    assert view.canvas.line_sets == {} and not any(chip.isChecked() for chip in view.chips)
    assert painted(view, blue) == painted(view, vermillion) == 0
    qtbot.mouseClick(view.chips[2], Qt.MouseButton.LeftButton)
    assert list(view.canvas.line_sets) == [2]
    qtbot.mouseClick(view.all_button, Qt.MouseButton.LeftButton)
    assert sorted(view.canvas.line_sets) == [0, 1, 2]


def test_hovering_a_token_keeps_only_its_lines_and_a_click_pins_it(view, weights, qtbot):
    view.show_layer(weights, TOKENS)
    canvas = view.canvas
    move_to(canvas, Token("query", 5))
    assert canvas.hover == Token("query", 5)
    for head, lines in canvas.line_sets.items():
        assert pairs(lines) == expected_pairs(weights[head], query=5)
    assert set(np.concatenate([lines.queries for lines in canvas.line_sets.values()]).tolist()) == {5}
    readout = view.readout.text()
    assert readout.startswith("<b>query 5 “f”</b> attends most to") and "head 1: key 5 “f” 1.00" in readout
    assert readout.index("head 1:") < readout.index("head 2: key 0 “a” 1.00") < readout.index("head 3: key 5")

    move_to(canvas, Token("key", 0))  # the other column: the lines that end there
    for head, lines in canvas.line_sets.items():
        assert pairs(lines) == expected_pairs(weights[head], key=0)
    assert sorted(canvas.line_sets[1].queries.tolist()) == list(range(6))

    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.token_centre(Token("query", 3)).toPoint())
    move_to(canvas, Token("query", 1))  # pinned: the mouse moving on changes nothing
    assert canvas.pinned == Token("query", 3)
    assert {q for lines in canvas.line_sets.values() for q in lines.queries.tolist()} == {3}
    assert "pinned" in view.readout.text()
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.token_centre(Token("query", 3)).toPoint())
    assert canvas.pinned is None and canvas.hover is not None  # let go: the hover counts again
    move_to(canvas, QPoint(canvas.width() // 2, canvas.height() - 2))  # between the columns: no token
    assert canvas.hover is None and sum(len(lines.queries) for lines in canvas.line_sets.values()) == sum(
        len(expected_pairs(weights[head])) for head in range(3))


def test_a_causal_snapshot_has_no_line_to_a_future_key(view):
    uniform = np.full((2, 6, 6), 1 / 6, dtype=np.float32)  # weights on the future too: a model that is not causal
    view.show_layer(uniform, TOKENS, causal=False)
    assert any(k > q for lines in view.canvas.line_sets.values() for q, k in pairs(lines))
    view.show_layer(uniform, TOKENS, causal=True)
    assert all(k <= q for lines in view.canvas.line_sets.values() for q, k in pairs(lines))
    assert sum(len(lines.queries) for lines in view.canvas.line_sets.values()) == 2 * 21


def test_a_diffuse_query_draws_only_its_strongest_keys():
    T = 40
    uniform = np.tril(np.ones((T, T), np.float32)) / np.arange(1, T + 1)[:, None]  # every weight >= 1/40
    queries, keys, _ = strong_lines(uniform, causal=True)
    assert np.bincount(queries).tolist() == [min(q + 1, KEYS_PER_QUERY) for q in range(T)]
    assert (keys <= queries).all()
    graded = uniform.copy()
    graded[30, :31] = np.linspace(0.01, 0.05, 31)  # query 30: its 8 strongest are keys 23..30
    queries, keys, weights = strong_lines(graded, causal=True)
    assert keys[queries == 30].tolist() == list(range(23, 31))
    np.testing.assert_allclose(weights[queries == 30], graded[30, 23:31])


def test_a_long_text_scrolls_rather_than_squeeze_its_rows(view, qtbot):
    T = 200
    tokens = [chr(ord("a") + i % 26) for i in range(T)]
    view.show_layer(causal_rows(np.random.default_rng(0), 4, T), tokens)
    qtbot.waitUntil(lambda: view.scroll.verticalScrollBar().maximum() > 0)
    g = view.canvas.geometry_now()
    assert g.row >= view.canvas.min_row and view.canvas.height() >= T * view.canvas.min_row
    assert view.canvas.font().pointSizeF() == view.font().pointSizeF()  # rows keep the ordinary font
    # the last token can be hovered once scrolled to
    view.scroll.verticalScrollBar().setValue(view.scroll.verticalScrollBar().maximum())
    move_to(view.canvas, Token("query", T - 1))
    assert view.canvas.hover == Token("query", T - 1)


def test_a_new_number_of_heads_makes_new_chips_and_checks_them_all(view, weights):
    view.show_layer(weights, TOKENS)
    view.check_heads([1], 3)
    view.show_layer(weights[::-1].copy(), TOKENS)  # same heads: the choice is kept (a live refresh)
    assert view.checked_heads() == [1]
    view.show_layer(np.concatenate([weights, weights]), TOKENS)
    assert len(view.chips) == 6 and view.checked_heads() == list(range(6))
    assert QColor(HEAD_COLOURS[5]).name() in view.chips[5].styleSheet()
