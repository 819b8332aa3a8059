import json
import threading

import numpy as np
import pyqtgraph as pg
import pytest
from attention_helpers import one_torch_thread  # noqa: F401 - an autouse fixture
from engine_helpers import tiny_config
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QThread, QUrl, Signal
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.attention.heatmap import COLOUR_MAP, COLOUR_TABLE, LABEL_CHARS, MASK_FILL, grid_mosaic
from app.common.text import visible_token
from app.attention.head_view import strong_lines
from app.attention.tab import FOCUS, HEAD, HEATMAP, MODEL, NO_RUN_TIP, SHOW_TIP
from lmcore.attention import capture, save_snapshot
from lmcore.checkpoint import load_trained_model
from lmcore.events import AttentionSaved
from lmcore.trainer import Trainer
import app.attention.worker as attention_worker

TEXT = "First Citizen:\nBefore we proceed"


def two_layer_config(corpus, runs_dir, **train):
    config = tiny_config(corpus, runs_dir, "transformer", **train)
    config.model.n_layer, config.model.n_head, config.model.context_length = 2, 2, 32
    return config


@pytest.fixture(scope="module")
def transformer_run(small_corpus, tmp_path_factory):
    trainer = Trainer.new(two_layer_config(small_corpus, tmp_path_factory.mktemp("runs"), max_steps=20))
    assert trainer.run() == "finished"
    return trainer.folder.path


@pytest.fixture(scope="module")
def rnn_run(small_corpus, tmp_path_factory):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path_factory.mktemp("runs"), "rnn", max_steps=10))
    assert trainer.run() == "finished"
    return trainer.folder.path


@pytest.fixture
def tab(attention_tab):
    return attention_tab


def show_and_wait(qtbot, tab, text):
    """Show `text` as the user would, and wait for the worker thread's answer to be drawn."""
    tab.show_text(text)
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=20_000)


def expected_snapshot(run_dir, text):
    model, tokenizer, _ = load_trained_model(run_dir, "best")
    return capture(model, tokenizer, text)


def masked(matrix):
    shown = matrix.astype(np.float32).copy()
    shown[np.triu_indices(len(shown), k=1)] = np.nan
    return shown


def hover_cell(heatmap, row, col):
    """A real mouse move over the cell's centre (QTest.mouseMove moves the cursor, which offscreen Qt ignores)."""
    view = heatmap.canvas
    pos = QPointF(view.mapFromScene(heatmap.plot.getViewBox().mapViewToScene(QPointF(col + 0.5, row + 0.5))))
    move = QMouseEvent(QEvent.Type.MouseMove, pos, view.viewport().mapToGlobal(pos), Qt.MouseButton.NoButton,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), move)


def test_the_heatmap_shows_the_chosen_layer_and_head_with_the_future_masked(tab, transformer_run, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    weights = expected_snapshot(transformer_run, TEXT).weights
    assert tab.views.currentIndex() == HEATMAP and tab.layer.currentText() == "layer 2"  # the last layer first
    np.testing.assert_allclose(tab.heatmap.image.image, masked(weights[1].mean(0)), atol=1e-6)  # what is drawn
    tab.layer.setCurrentIndex(0)
    tab.head.setCurrentIndex(2)  # head 2
    np.testing.assert_allclose(tab.heatmap.image.image, masked(weights[0, 1]), atol=1e-6)
    assert "Layer 1 · head 2" in tab.heatmap.plot.titleLabel.text
    shown = tab.heatmap.image.image
    assert np.isnan(shown[0, 1]) and not np.isnan(shown[1, 0])  # masked cells are not zeros
    assert tab.heatmap.legend.isVisible() and tab.heatmap.legend.text == "masked (future)"


def test_hovering_reads_out_query_key_and_weight(tab, transformer_run, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    tab.layer.setCurrentIndex(0)
    tab.head.setCurrentIndex(1)
    weight = expected_snapshot(transformer_run, TEXT).weights[0, 0, 15, 14]
    hover_cell(tab.heatmap, 15, 14)
    assert tab.heatmap.readout.text() == f"query 15 “B”  →  key 14 “⏎”:  {weight:.4f}"
    assert tab.heatmap.hover.isVisible() and tab.heatmap.hover.pos() == QPointF(14, 15)
    qtbot.wait(50)  # pyqtgraph drops mouse moves that come faster than it redraws
    hover_cell(tab.heatmap, 3, 9)
    assert tab.heatmap.readout.text().startswith("query 3 “s”  →  key 9 “i”:  masked (future)")


def test_a_long_text_keeps_the_last_context_tokens_and_thins_the_labels(tab, transformer_run, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT * 3)
    assert "last 32 of" in tab.notice.text() and tab.notice.isVisible()
    assert tab.heatmap.axes["bottom"].labels == [visible_token(c, LABEL_CHARS) for c in (TEXT * 3)[-32:]]
    axis = tab.heatmap.axes["left"]
    tab.resize(tab.width(), 500)  # a short map: 32 rows of labels no longer fit
    qtbot.waitUntil(lambda: axis.geometry().height() < 32 * axis.label_extent())

    def drawn_ticks():  # what the axis draws for its current range and size
        (step, values), = axis.tickValues(*axis.range, axis.geometry().height())
        return step, values

    step, values = drawn_ticks()
    pixels_per_row = axis.geometry().height() / 32
    assert step > 1 and step * pixels_per_row >= axis.label_extent() and values[:2] == [0.5, step + 0.5]
    tab.heatmap.plot.getViewBox().setRange(yRange=(4, 8), padding=0)  # zoomed in: every label fits again
    qtbot.waitUntil(lambda: sorted(axis.range) == [4, 8])
    assert drawn_ticks() == (1, [4.5, 5.5, 6.5, 7.5])


def coloured(matrix):
    """A [T, T] map as the model view colours it, by pyqtgraph's own colour map: 0 to the top weight of the rows
    after the first, the future grey."""
    shown = masked(matrix)
    rgba = pg.colormap.get(COLOUR_MAP).map(np.nan_to_num(shown) / np.nanmax(shown[1:]), mode="byte")
    rgba[np.isnan(shown)] = (*MASK_FILL.getRgb()[:3], 255)
    return rgba


def test_the_model_view_shows_every_head_and_a_click_opens_one(tab, transformer_run, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    tab.views.setCurrentIndex(MODEL)
    weights = expected_snapshot(transformer_run, TEXT).weights
    mosaic = tab.grid.mosaic
    assert (mosaic.n_layer, mosaic.n_head, mosaic.side) == (2, 2, len(TEXT))
    np.testing.assert_array_equal(tab.grid.image.image, mosaic.rgba)  # the one picture drawn
    for layer, head in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        np.testing.assert_allclose(mosaic.map_rgba(layer, head), coloured(weights[layer, head]), atol=2)
    assert [label for _, label in tab.grid.axes["top"]._tickLevels[0]] == ["head 1", "head 2"]
    view, canvas = tab.grid.plot.getViewBox(), tab.grid.canvas
    centre = canvas.mapFromScene(view.mapViewToScene(mosaic.rect(0, 1).center()))  # layer 1, head 2
    move = QMouseEvent(QEvent.Type.MouseMove, QPointF(centre), canvas.viewport().mapToGlobal(QPointF(centre)),
                       Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas.viewport(), move)
    assert tab.grid.frame.isVisible() and tab.grid.frame.rect() == mosaic.rect(0, 1)
    assert tab.grid.readout.text().startswith("layer 1, head 2")
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert tab.views.currentIndex() == HEATMAP
    assert (tab.layer.currentText(), tab.head.currentText()) == ("layer 1", "head 2")
    np.testing.assert_allclose(tab.heatmap.image.image, masked(weights[0, 1]), atol=1e-6)


def test_a_long_texts_maps_are_averaged_down_and_the_future_stays_grey():
    T = 250  # more than MAX_MAP_SIDE (128): blocks of 2 × 2 cells
    rng = np.random.default_rng(1)
    weights = np.tril(rng.random((2, 3, T, T), dtype=np.float32))
    mosaic = grid_mosaic(weights)
    assert (mosaic.side, mosaic.n_layer, mosaic.n_head) == (125, 2, 3)
    pitch = mosaic.side + mosaic.gap
    assert mosaic.rgba.shape == (2 * pitch - mosaic.gap, 3 * pitch - mosaic.gap, 4)
    assert mosaic.map_at(*mosaic.rect(1, 2).center().toTuple()) == (1, 2) and mosaic.map_at(130, 10) is None  # in a gap
    block = mosaic.map_rgba(1, 2)
    grey = (*MASK_FILL.getRgb()[:3], 255)
    assert (block[0, 1] == grey).all() and not (block[1, 1] == grey).all()  # wholly future; on the diagonal
    matrix = weights[1, 2]
    top = matrix[1:].max()
    q, k = 101, 40  # block (101, 40): the mean of cells 202..203 × 80..81, all in the past
    mean = matrix[2 * q:2 * q + 2, 2 * k:2 * k + 2].mean() / top
    np.testing.assert_array_equal(block[q, k], COLOUR_TABLE[int(mean * 255 + 0.5)])
    assert (mosaic.rgba[mosaic.side:pitch, :, 3] == 0).all()  # the gaps between maps are see-through


def test_token_focus_shows_every_layers_weights_from_the_clicked_token(tab, transformer_run, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    tab.views.setCurrentIndex(FOCUS)
    weights = expected_snapshot(transformer_run, TEXT).weights
    tab.focus.text.anchorClicked.emit(QUrl("#12"))  # a click on the 13th token of the text
    np.testing.assert_allclose(tab.focus.heatmap.image.image, weights[:, :, 12, :13].mean(1), atol=1e-6)
    assert tab.focus.heatmap.axes["left"].labels == ["layer 1", "layer 2"]
    top = int(weights[1, :, 12, :13].mean(0).argmax())
    assert f"@{top}" in tab.focus.summary.text()
    tab.head.setCurrentIndex(1)  # head 1 instead of the mean
    np.testing.assert_allclose(tab.focus.heatmap.image.image, weights[:, 0, 12, :13], atol=1e-6)


def assert_draws(head_view, weights, layer, heads):
    """The head view draws exactly the lines of `heads` of `layer` that strong_lines picks, with their weights."""
    drawn = head_view.canvas.line_sets
    assert sorted(drawn) == heads
    for head in heads:
        queries, keys, values = strong_lines(weights[layer, head], causal=True)
        np.testing.assert_array_equal(drawn[head].queries, queries)
        np.testing.assert_array_equal(drawn[head].keys, keys)
        np.testing.assert_allclose(drawn[head].weights, values, atol=1e-6)


def test_the_head_view_follows_the_layer_and_head_controls(tab, transformer_run, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    tab.views.setCurrentIndex(HEAD)
    weights = expected_snapshot(transformer_run, TEXT).weights
    assert tab.layer.isEnabled() and tab.head.isEnabled() and not tab.fit.isEnabled()
    assert tab.head_view.checked_heads() == [0, 1]  # "mean over heads": every head, overlaid
    assert_draws(tab.head_view, weights, 1, [0, 1])
    tab.head.setCurrentIndex(2)  # head 2 alone
    assert_draws(tab.head_view, weights, 1, [1])
    tab.layer.setCurrentIndex(0)
    assert_draws(tab.head_view, weights, 0, [1])
    canvas = tab.head_view.canvas
    assert canvas.labels == list(TEXT.replace("\n", "⏎").replace(" ", "·"))
    tab.resize(tab.width(), 400)  # too short for the text: it scrolls
    qtbot.waitUntil(lambda: tab.head_view.scroll.verticalScrollBar().maximum() > 0)
    png = transformer_run.parent / "head-view.png"
    tab.export_png_to(png)
    assert QImage(str(png)).height() >= len(TEXT) * canvas.min_row  # the whole text, scrolled-off rows too


def test_an_rnn_run_has_no_head_view(tab, rnn_run, transformer_run, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    tab.views.setCurrentIndex(HEAD)
    assert tab.views.isTabEnabled(HEAD) and tab.head_view.canvas.line_sets
    tab.set_run(rnn_run)
    show_and_wait(qtbot, tab, TEXT)
    assert not tab.views.isTabEnabled(HEAD) and "no heads" in tab.views.tabToolTip(HEAD)
    assert tab.views.currentIndex() == HEATMAP  # moved off the head view it was on
    bar = tab.views.tabBar()
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(HEAD).center())  # a disabled tab: no way in
    assert tab.views.currentIndex() == HEATMAP


def test_show_attention_needs_a_run(tab, transformer_run, qtbot):
    assert not tab.show_button.isEnabled() and tab.show_button.toolTip() == NO_RUN_TIP
    assert "runs list" in NO_RUN_TIP
    tab.editor.setPlainText(TEXT)
    tab.editor.setFocus()
    QTest.keyClick(tab.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # the shortcut still works
    assert tab.notice.isVisible() and "No run selected" in tab.notice.text() and "runs list" in tab.notice.text()
    assert not tab.is_busy()
    tab.set_run(transformer_run)
    assert tab.show_button.isEnabled() and tab.show_button.toolTip() == SHOW_TIP
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=20_000)
    tab.set_run(None)
    assert not tab.show_button.isEnabled() and tab.show_button.toolTip() == NO_RUN_TIP


def test_a_captures_heavy_steps_run_on_the_worker_thread(tab, transformer_run, qtbot, monkeypatch):
    """The GUI thread only draws: loading the checkpoint and capturing happen on the worker's thread."""
    threads = {}

    def on_thread(name, function):
        def recorded(*args, **kwargs):
            threads[name] = (threading.current_thread(), QThread.currentThread())
            return function(*args, **kwargs)
        monkeypatch.setattr(attention_worker, name, recorded)

    on_thread("load_trained_model", attention_worker.load_trained_model)
    on_thread("capture", attention_worker.capture)
    on_thread("grid_mosaic", attention_worker.grid_mosaic)  # the model view's picture, 12 × 12 maps and more
    tab.worker._loaded = None  # a fresh load, not the model kept from an earlier test
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    assert sorted(threads) == ["capture", "grid_mosaic", "load_trained_model"] and tab.heatmap.values is not None
    for python_thread, qt_thread in threads.values():
        assert python_thread is not threading.main_thread()
        assert qt_thread is tab._thread and qt_thread is not QApplication.instance().thread()


def test_export_writes_the_picture_and_the_raw_weights(tab, transformer_run, tmp_path, qtbot):
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    tab.export_png_to(tmp_path / "map.png")
    tab.export_npy_to(tmp_path / "weights.npy")
    image = QImage(str(tmp_path / "map.png"))
    assert image.width() > 300 and image.height() > 300
    np.testing.assert_array_equal(np.load(tmp_path / "weights.npy"), expected_snapshot(transformer_run, TEXT).weights)
    meta = json.loads((tmp_path / "weights.tokens.json").read_text(encoding="utf-8"))
    assert meta["tokens"] == list(TEXT) and meta["axes"] == ["layer", "head", "query", "key"]


def test_an_rnn_run_gets_the_saliency_view_and_says_why(tab, rnn_run, qtbot):
    tab.set_run(rnn_run)
    show_and_wait(qtbot, tab, TEXT)
    assert "An RNN has no attention" in tab.notice.text() and tab.notice.isVisible()
    assert tab.show_button.text() == "Show saliency" and not tab.views.isTabEnabled(MODEL)
    assert tab.layer.isHidden() and tab.head.isHidden()
    model, tokenizer, _ = load_trained_model(rnn_run, "best")
    saliency = capture(model, tokenizer, TEXT)
    np.testing.assert_allclose(tab.heatmap.image.image, masked(saliency.weights[0, 0]), atol=1e-6)
    assert tab.heatmap.colorbar.axis.labelText == "saliency (share of row)"
    assert tab.heatmap.rows.name == "prediction at" and "predicts" in tab.heatmap.describe_cell(5, 2)


def test_a_run_without_checkpoints_says_so(tab, small_corpus, tmp_path, qtbot):
    fresh = Trainer.new(tiny_config(small_corpus, tmp_path))  # created, never trained
    tab.set_run(fresh.folder.path)
    show_and_wait(qtbot, tab, TEXT)
    assert "no checkpoints yet" in tab.notice.text() and tab.heatmap.values is None


def test_capturing_runs_in_the_background_and_a_stale_answer_is_dropped(tab, transformer_run, qtbot):
    answered = []  # every answer the worker gives, stale or not
    tab.worker.captured.connect(lambda request_id, answer: answered.append(answer.source))
    tab.set_run(transformer_run)  # captures the run's opening text...
    assert tab.notice.text() == "Capturing…" and QApplication.overrideCursor() is None  # the window stays usable
    tab.set_run(None)  # ...but the user unselects the run before the answer comes
    qtbot.waitUntil(lambda: len(answered) == 1, timeout=20_000)
    QApplication.processEvents()  # the answer was queued to the tab before it reached the list
    assert tab.heatmap.values is None and not tab.notice.isVisible() and "No run selected" in tab.run_label.text()
    tab.set_run(transformer_run)
    show_and_wait(qtbot, tab, TEXT)
    assert "best checkpoint, step 20" in tab.run_label.text() and not tab.notice.isVisible()


class StandInTrainingWorker(QObject):
    """Plays app.train.worker.TrainingWorker's part for the tab: records the probe lines it would send to the
    training process, and announces snapshots the test writes as that process would."""

    attention_saved = Signal(object)  # AttentionSaved

    def __init__(self, run_dir=None):
        super().__init__()
        self.run_dir = run_dir
        self.probe_lines = []

    def set_probe(self, text, every):
        self.probe_lines.append((text, every))

    def clear_probe(self):
        self.probe_lines.append("off")


def test_the_live_probe_follows_the_controls(tab, qtbot):
    tab.editor.setPlainText(TEXT)
    tab.every.setValue(5)
    tab.live.setChecked(True)
    assert tab.live_status.text() == "starts when a run trains in this window"
    worker = StandInTrainingWorker()  # just started: its run folder is not known yet
    tab.attach_worker(worker)
    assert worker.probe_lines == [(TEXT, 5)] and tab.live_status.text() == "waiting for the next refresh…"
    tab.every.setValue(7)
    tab.editor.setPlainText("ROMEO:")
    qtbot.mouseClick(tab.show_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(tab.show_button, Qt.MouseButton.LeftButton)  # nothing changed: nothing to send
    tab.live.setChecked(False)
    assert worker.probe_lines == [(TEXT, 5), (TEXT, 7), ("ROMEO:", 7), "off"] and tab.live_status.text() == ""
    tab.attach_worker(None)
    tab.live.setChecked(True)
    assert tab.live_status.text() == "starts when a run trains in this window"
    next_run = StandInTrainingWorker()
    tab.attach_worker(next_run)
    assert next_run.probe_lines == [("ROMEO:", 7)] and worker.probe_lines[-1] == "off"


def test_live_refresh_shows_the_snapshots_the_training_run_writes(tab, transformer_run, tmp_path, qtbot):
    model, tokenizer, _ = load_trained_model(transformer_run, "last")
    folder = tmp_path / "attention"
    tab.editor.setPlainText(TEXT)
    tab.live.setChecked(True)
    worker = StandInTrainingWorker(transformer_run)
    tab.attach_worker(worker)

    def announce(step, text=TEXT, vanish=False):
        path = save_snapshot(capture(model, tokenizer, text, step=step), folder)
        if vanish:
            path.unlink()
        worker.attention_saved.emit(AttentionSaved(step, path, "attention"))
        qtbot.waitUntil(lambda: not tab.is_busy(), timeout=20_000)
        return path

    saved = announce(5)
    assert tab.live_status.text() == f"refreshed at step 5 ({transformer_run.name})"
    assert "live, step 5" in tab.run_label.text() and transformer_run.name in tab.run_label.text()
    tab.export_npy_to(tmp_path / "shown.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "shown.npy"), np.load(saved))
    np.testing.assert_allclose(tab.heatmap.image.image, masked(np.load(saved)[1].mean(0)), atol=1e-6)

    announce(10, text="ROMEO:", vanish=True)  # e.g. rotated away before the tab came to read it
    assert tab.live_status.text() == "could not read the snapshot of step 10; waiting for the next one"
    assert "live, step 5" in tab.run_label.text()
    assert tab.heatmap.axes["bottom"].labels == [visible_token(c, LABEL_CHARS) for c in TEXT]

    tab.live.setChecked(False)
    announce(15, text="ROMEO:")  # the training process may still write one before it hears "probe off"
    assert "live, step 5" in tab.run_label.text()
    tab.live.setChecked(True)

    tab.attach_worker(None)
    assert tab.live_status.text() == "training ended; showing step 5"


def test_the_model_view_numbers_many_heads_under_one_title(qtbot):
    """GPT-2 small's 12 heads leave no room for "head N" over each column: numbers, with the axis titled "head"."""
    from app.attention.heatmap import ModelGridView

    view = ModelGridView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(2)
    for n_head, ticks, title in ((4, ["head 1", "head 2", "head 3", "head 4"], False),
                                 (12, [str(h) for h in range(1, 13)], True)):
        view.show_mosaic(grid_mosaic(np.tril(rng.random((12, n_head, 8, 8), dtype=np.float32))))
        top = view.axes["top"]
        assert [text for _, text in top._tickLevels[0]] == ticks
        assert top.label.isVisible() == title and (top.labelText == "head") == title
