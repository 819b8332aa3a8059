"""An encoder run (a masked language model) in the app: the Generate tab's fill-in-the-blank view, the Attention
tab's full (non-causal) attention, and masked-token accuracy in the training plots."""
import numpy as np
import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QTextCursor

from app.attention.head_view import strong_lines
from app.attention.tab import FOCUS, HEAD, HEATMAP, MODEL
from app.generate.fill_mask import Chip, filled_parts, text_chips, toggled
from app.generate.tab import GenerateTab
from attention_helpers import one_torch_thread  # noqa: F401 - an autouse fixture
from engine_helpers import tiny_config
from lmcore import events as ev
from lmcore.attention import capture
from lmcore.checkpoint import load_trained_model
from lmcore.generation import fill_mask
from lmcore.metrics import read_metric_events
from lmcore.models.encoder import EncoderConfig
from lmcore.tokenizers import MASK, TokenizerConfig, train_tokenizer
from lmcore.trainer import Trainer

TEXT = "First Citizen:\nBefore we proceed"


@pytest.fixture(scope="module")
def encoder_run(small_corpus, tmp_path_factory):
    config = tiny_config(small_corpus, tmp_path_factory.mktemp("runs"), batch_size=16, max_steps=40,
                         eval_interval=20)
    config.name = "tiny-encoder"
    config.model = EncoderConfig(n_layer=2, n_head=2, n_embd=32, context_length=32)
    config.train.context = 32
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    return trainer.folder.path


@pytest.fixture(scope="module")
def gpt_run(encoder_run, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, encoder_run.parent, max_steps=10, eval_interval=10))
    assert trainer.run() == "finished"
    return trainer.folder.path


# ---- the Generate tab: fill in the blank ------------------------------------------------------------------------

@pytest.fixture
def generate_tab(qtbot, tmp_path):
    tab = GenerateTab(prompts_dir=tmp_path / "prompts")
    qtbot.addWidget(tab)
    tab.resize(1200, 760)
    tab.show()
    qtbot.waitExposed(tab)
    return tab


def open_encoder(qtbot, tab, run_dir):
    tab.set_run(run_dir)
    qtbot.waitUntil(tab.fill_view.fill_button.isEnabled, timeout=10_000)
    return tab.fill_view


def type_text(qtbot, view, text):
    view.editor.clear()
    qtbot.keyClicks(view.editor, text)


def click_chip(qtbot, view, index):
    """A real click on chip `index` of the token chips."""
    chips = view.chip_view
    qtbot.mouseClick(chips.viewport(), Qt.MouseButton.LeftButton, pos=chips.token_rect(index).center())


def fill(qtbot, tab):
    view = tab.fill_view
    qtbot.mouseClick(view.fill_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.fill_button.isEnabled() and view.results_text == view.text(), timeout=10_000)


def test_an_encoder_run_gets_fill_in_the_blank_and_a_gpt_run_the_modes_again(generate_tab, encoder_run, gpt_run,
                                                                             qtbot):
    tab = generate_tab
    view = open_encoder(qtbot, tab, encoder_run)
    assert tab.pages.currentWidget() is view and "Encoder" in tab.summary_label.text()
    assert not tab.controls.isVisible() and not tab.inspector.isVisible()  # sampling means nothing to an encoder
    assert not any(b.isVisible() for b in tab.mode_group.buttons())
    tab.set_run(gpt_run)
    qtbot.waitUntil(tab.generate_button.isEnabled, timeout=10_000)
    assert tab.pages.currentIndex() == 0 and tab.generate_button.isVisible()
    assert tab.controls.isVisible() and tab.inspector.isVisible()
    assert all(b.isVisible() for b in tab.mode_group.buttons())
    open_encoder(qtbot, tab, encoder_run)  # and back
    assert tab.pages.currentWidget() is view


def test_clicking_a_token_masks_it_and_fill_gives_fill_masks_candidates(generate_tab, encoder_run, qtbot):
    tab = generate_tab
    view = open_encoder(qtbot, tab, encoder_run)
    type_text(qtbot, view, "to be, or not to be")
    assert [chip.text for chip in view.chips] == list("to be, or not to be")  # a character tokenizer
    click_chip(qtbot, view, 3)  # the "b"
    assert view.text() == f"to {MASK}e, or not to be" and view.chips[3].masked
    click_chip(qtbot, view, 3)  # the mask: the "b" comes back
    assert view.text() == "to be, or not to be" and not any(chip.masked for chip in view.chips)
    click_chip(qtbot, view, 12)  # the "t" of "not"
    click_chip(qtbot, view, 3)  # the "b": the first mask moves the second along, and both are remembered
    assert view.text() == f"to {MASK}e, or no{MASK} to be" and view.token_count.text().endswith("2 blanks")
    fill(qtbot, tab)

    model, tokenizer, _ = load_trained_model(encoder_run, "best")
    expected = fill_mask(model, tokenizer, view.text())
    assert [offset for offset, _ in view.results] == [offset for offset, _ in expected] == [3, 17]
    for (_, shown), (_, wanted), column in zip(view.results, expected, view.blank_columns(), strict=True):
        assert [text for text, _ in shown] == [text for text, _ in wanted]
        np.testing.assert_allclose([p for _, p in shown], [p for _, p in wanted], atol=1e-6)
        rows = column.bars.rows  # the bars drawn: the candidates, the best marked as the one filled in
        assert [(row.text, row.chosen) for row in rows] == [(text, i == 0) for i, (text, _) in enumerate(wanted)]
    best = [candidates[0][0] for _, candidates in expected]
    assert view.filled_view.toPlainText() == f"to {best[0]}e, or no{best[1]} to be"
    click_chip(qtbot, view, 3)  # masks still toggle after a fill
    assert view.text() == f"to be, or no{MASK} to be"


def test_insert_mask_puts_one_at_the_cursor_and_a_typed_mask_stays_put(generate_tab, encoder_run, qtbot):
    view = open_encoder(qtbot, generate_tab, encoder_run)
    type_text(qtbot, view, "to be or")
    view.editor.moveCursor(QTextCursor.MoveOperation.Start)
    qtbot.keyClick(view.editor, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert view.text() == f"{MASK}to be or" and view.chips[0].masked
    click_chip(qtbot, view, 0)  # typed: nothing to put back
    assert view.text() == f"{MASK}to be or"
    qtbot.keyClick(view.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Enter fills
    qtbot.waitUntil(lambda: view.results_text == view.text(), timeout=10_000)
    assert len(view.blank_columns()) == 1


def test_a_text_without_a_mask_gets_fill_masks_message(generate_tab, encoder_run, qtbot):
    tab = generate_tab
    view = open_encoder(qtbot, tab, encoder_run)
    type_text(qtbot, view, "no blanks here")
    qtbot.mouseClick(view.fill_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(tab.message.isVisible, timeout=10_000)
    assert "no [MASK]" in tab.message.text() and view.fill_button.isEnabled() and not view.status.text()


def test_chips_follow_the_tokenizer_and_toggling_keeps_what_each_mask_hid():
    words = train_tokenizer(TokenizerConfig(kind="word"), "to be or not to be")
    text = f"to  be {MASK} xyz to"
    chips = text_chips(words, text)
    assert chips == [Chip("to", 0, 2), Chip("be", 4, 6), Chip(MASK, 7, 13), Chip("<unk>", -1, -1),
                     Chip("to", 18, 20)]  # whitespace dropped; an unknown word cannot be pointed at
    assert toggled(text, chips[3], {}) is None and toggled(text, chips[2], {}) is None  # unknown; typed mask
    text, hidden = toggled(text, chips[0], {})
    assert text == f"{MASK}  be {MASK} xyz to" and hidden == {0: "to"}
    text, hidden = toggled(text, Chip(MASK, 0, 6), hidden)
    assert text == f"to  be {MASK} xyz to" and hidden == {}
    subwords = train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=300),
                               "to be, or not to be: that is the question. " * 50)
    text = "to be, or not"
    assert [text[chip.start:chip.end] for chip in text_chips(subwords, text)] == ["to", " be", ",", " or", " not"]
    assert filled_parts("a[MASK]c", [(1, [("b", 0.9), ("x", 0.1)])]) == ["a", ("b", 0.9), "c"]


# ---- the Attention tab: an encoder's attention is full ----------------------------------------------------------

def test_an_encoders_attention_is_shown_whole_in_every_view(attention_tab, encoder_run, qtbot):
    tab = attention_tab
    tab.set_run(encoder_run)
    tab.show_text(TEXT)
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=20_000)
    model, tokenizer, _ = load_trained_model(encoder_run, "best")
    weights = capture(model, tokenizer, TEXT).weights
    assert "later ones too" in tab.run_label.text() and tab.views.isTabEnabled(HEAD) and tab.views.isTabEnabled(MODEL)
    assert tab.views.currentIndex() == HEATMAP
    shown = tab.heatmap.image.image
    np.testing.assert_allclose(shown, weights[1].mean(0), atol=1e-6)  # the upper triangle too: nothing masked
    assert np.isfinite(shown).all() and shown[0, 1:].sum() > 0 and not tab.heatmap.legend.isVisible()

    tab.views.setCurrentIndex(HEAD)
    drawn = tab.head_view.canvas.line_sets
    for head in (0, 1):
        queries, keys, _ = strong_lines(weights[1, head], causal=False)
        np.testing.assert_array_equal(drawn[head].queries, queries)
        np.testing.assert_array_equal(drawn[head].keys, keys)
    assert any((line_set.keys > line_set.queries).any() for line_set in drawn.values())  # lines to later keys

    tab.views.setCurrentIndex(FOCUS)
    tab.focus.text.anchorClicked.emit(QUrl("#3"))
    np.testing.assert_allclose(tab.focus.heatmap.image.image, weights[:, :, 3, :].mean(1), atol=1e-6)  # every key


# ---- the training plots: masked-token accuracy --------------------------------------------------------------------

def test_a_live_encoder_runs_accuracy_is_plotted_and_read_out(plots, tmp_path):
    live = tmp_path / "live"
    plots.begin_live_run(live)
    plots.add_steps([ev.StepMetrics(i, i * 100, 3.0, 1e-3, 1.0, 5000.0, i * 0.1) for i in range(1, 21)])
    plots.refresh()
    assert plots.accuracy_plot not in plots.graphics.ci.items  # no accuracy yet: no empty plot
    plots.add_evals([ev.EvalMetrics(10, 1000, 1.0, 2.5, 2.9, None, True, 0.25),
                     ev.EvalMetrics(20, 2000, 2.0, 2.4, 2.8, None, True, 0.375)])
    plots.refresh()
    assert plots.accuracy_plot in plots.graphics.ci.items
    x, y = plots.curves[live].val_accuracy.data()
    assert list(x) == [10, 20] and list(y) == [0.25, 0.375]
    assert "accuracy 37.5%" in " ".join(plots.values_at(20))


def test_a_finished_encoder_runs_accuracy_is_replayed_and_a_gpt_run_has_none(plots, encoder_run, gpt_run, qtbot,
                                                                              tmp_path):
    plots.begin_live_run(tmp_path / "live")
    plots.compare([gpt_run])
    qtbot.waitUntil(lambda: not plots.is_loading(), timeout=10_000)
    plots.refresh()
    assert plots.accuracy_plot not in plots.graphics.ci.items
    plots.compare([gpt_run, encoder_run])
    qtbot.waitUntil(lambda: not plots.is_loading(), timeout=10_000)
    plots.refresh()
    recorded = [e for e in read_metric_events(encoder_run / "metrics.jsonl") if isinstance(e, ev.EvalMetrics)]
    x, y = plots.curves[encoder_run].val_accuracy.data()
    assert list(x) == [e.step for e in recorded] == [20, 40]
    assert list(y) == [e.val_accuracy for e in recorded] and all(0 < a <= 1 for a in y)
    assert plots.accuracy_plot in plots.graphics.ci.items
    assert plots.curves[gpt_run].val_accuracy.data()[0] is None  # no points: its evaluations have no accuracy
    plots.compare([gpt_run])  # the encoder unticked: the accuracy plot goes
    plots.refresh()
    assert plots.accuracy_plot not in plots.graphics.ci.items
