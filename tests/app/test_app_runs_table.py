"""The runs browser's table mode: a row a run, sorted, filtered, its columns chosen, two runs' configs compared."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QApplication

from app.runs.browser import RunsBrowser
from app.runs.table import ConfigDiffDialog
from app_helpers import make_run
from lmcore.run_table import MISSING_TEXT


def evaluation(step: int, loss: float, bits_per_char: float | None) -> dict:
    return {"kind": "eval", "step": step, "tokens": step * 64, "elapsed": step * 0.5, "val_loss": loss,
            "val_perplexity": 2.0, "val_bits_per_char": bits_per_char, "best": True}


def table_run(runs: Path, name: str, best: float | None = None, bits_per_char: float | None = None,
              family: str = "transformer", tokenizer: str = "char", layers: int | None = None,
              lr: float = 1e-3) -> Path:
    """A run folder as the trainer leaves it, with the settings the table shows, one evaluation at step 100."""
    metrics = [evaluation(100, best, bits_per_char)] if best is not None else []
    run = make_run(runs, name, "finished", family, parameters=123_456, best_val_loss=best, metrics=metrics)
    config = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))
    config["tokenizer"]["kind"] = tokenizer
    config["optim"]["lr"] = lr
    if layers is not None:
        config["model"]["n_layer"] = layers
    (run / "config.toml").write_text(tomli_w.dumps(config), encoding="utf-8")
    return run


@pytest.fixture
def runs(tmp_path):
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def browser(qtbot, runs, settings):
    widget = RunsBrowser(runs, settings=settings)
    qtbot.addWidget(widget)
    widget.resize(1000, 400)
    widget.show()
    return widget


def to_table(qtbot, browser) -> None:
    qtbot.mouseClick(browser.table_button, Qt.MouseButton.LeftButton)
    assert browser.is_table_mode() and browser.stack.currentWidget() is browser.table


def column(browser, key: str) -> int:
    return browser.table.model.column_of(key)


def shown(browser, key: str) -> list[str]:
    """One column's cells, top to bottom as shown."""
    proxy = browser.table.proxy
    return [proxy.index(row, column(browser, key)).data() for row in range(proxy.rowCount())]


def shown_names(browser) -> list[str]:
    return [row.path.name for row in browser.table.rows()]


def shown_headers(browser) -> list[str]:
    model, header = browser.table.model, browser.table.view.horizontalHeader()
    return [model.headerData(i, Qt.Orientation.Horizontal) for i in range(model.columnCount())
            if not header.isSectionHidden(i)]


def click_header(qtbot, browser, key: str) -> None:
    header = browser.table.view.horizontalHeader()
    section = column(browser, key)
    x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))


def click_row(qtbot, browser, run: Path, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    view, model = browser.table.view, browser.table.model
    index = browser.table.proxy.mapFromSource(model.index(model.row_of(run), column(browser, "family")))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, modifier, view.visualRect(index).center())


def test_the_table_shows_a_row_per_run_with_its_settings_and_results(qtbot, browser, runs):
    gpt = table_run(runs, "gpt", best=1.8812, bits_per_char=2.7141, layers=6, lr=3e-4)
    lstm = table_run(runs, "lstm", best=4.5, family="rnn", tokenizer="word")
    browser.refresh()
    assert not browser.table.isVisible()
    to_table(qtbot, browser)
    assert sorted(shown_names(browser)) == sorted([gpt.name, lstm.name])
    assert shown_headers(browser) == ["Run", "Model", "Layers", "Width", "Tokenizer", "Vocab", "LR", "Val loss",
                                      "Bits/char", "Tokens", "Time", "Params"]
    row = {key: browser.table.model.index(browser.table.model.row_of(gpt), column(browser, key)).data()
           for key in ("name", "status", "family", "layers", "width", "tokenizer", "lr", "best_val_loss",
                       "bits_per_char", "tokens", "wall_time", "parameters", "vocab")}
    assert row.pop("name").startswith("gpt · ")  # and the date, as the list writes it
    assert row == {"status": "finished", "family": "Transformer",
                   "layers": "6", "width": "128", "tokenizer": "char", "lr": "0.0003", "best_val_loss": "1.881",
                   "bits_per_char": "2.714", "tokens": "6.4 k", "wall_time": "50 s", "parameters": "123 k",
                   "vocab": MISSING_TEXT}  # no tokenizer saved: the vocabulary is not known
    lstm_row = browser.table.model.row_of(lstm)
    assert browser.table.model.index(lstm_row, column(browser, "family")).data() == "LSTM"
    assert browser.table.model.index(lstm_row, column(browser, "bits_per_char")).data() == MISSING_TEXT


def test_sorting_by_best_validation_loss_is_numeric_with_missing_values_last(qtbot, browser, runs):
    for name, best in (("ten", 10.5), ("nine", 9.25), ("none", None), ("two", 2.125)):
        table_run(runs, name, best=best)
    browser.refresh()
    to_table(qtbot, browser)
    click_header(qtbot, browser, "best_val_loss")
    assert shown(browser, "best_val_loss") == ["2.125", "9.250", "10.500", MISSING_TEXT]
    click_header(qtbot, browser, "best_val_loss")
    assert shown(browser, "best_val_loss") == ["10.500", "9.250", "2.125", MISSING_TEXT]


def test_the_filter_hides_the_rows_without_its_words(qtbot, browser, runs):
    table_run(runs, "gpt-small", layers=2)
    table_run(runs, "gpt-big", layers=8)
    lstm = table_run(runs, "lstm", family="rnn", tokenizer="word")
    browser.refresh()
    to_table(qtbot, browser)
    qtbot.keyClicks(browser.table.filter_edit, "LSTM")
    assert shown_names(browser) == [lstm.name]
    browser.table.filter_edit.setText("gpt char")  # every word, each in some cell
    assert sorted(shown(browser, "layers")) == ["2", "8"]
    browser.table.filter_edit.setText("gpt word")
    assert shown_names(browser) == []
    browser.table.filter_edit.clear()
    assert len(shown_names(browser)) == 3


def test_hidden_columns_stay_hidden_and_are_remembered(qtbot, browser, runs, settings):
    table_run(runs, "gpt")
    browser.refresh()
    to_table(qtbot, browser)
    browser.table.column_actions["lr"].trigger()  # as the Columns… menu does
    browser.table.column_actions["heads"].trigger()
    assert "LR" not in shown_headers(browser) and "Heads" in shown_headers(browser)
    browser.table.filter_edit.setText("0.001")  # a hidden column's text does not count
    assert shown_names(browser) == []
    browser.table.filter_edit.clear()

    again = RunsBrowser(runs, settings=settings)
    qtbot.addWidget(again)
    assert again.is_table_mode()
    assert "LR" not in shown_headers(again) and "Heads" in shown_headers(again)
    assert "lr" not in json.loads(settings.value("runs/table_columns"))


def test_without_settings_the_choice_of_columns_lasts_while_the_browser_does(qtbot, runs):
    table_run(runs, "gpt")
    browser = RunsBrowser(runs)
    qtbot.addWidget(browser)
    browser.set_table_mode(True)
    browser.table.column_actions["tokenizer"].trigger()
    browser.set_table_mode(False)
    browser.set_table_mode(True)
    assert "Tokenizer" not in shown_headers(browser)


def test_two_runs_selected_compare_their_configs(qtbot, browser, runs):
    a = table_run(runs, "alpha", best=2.0, layers=2, lr=3e-4)
    b = table_run(runs, "beta", best=1.5, layers=4, lr=3e-4)
    c = table_run(runs, "gamma", best=1.0, layers=4, lr=1e-3)
    browser.refresh()
    to_table(qtbot, browser)
    with qtbot.waitSignal(browser.selection_changed) as selected:
        click_row(qtbot, browser, a)
    assert selected.args == [a] and browser.selected_run() == a
    assert not browser.table.compare_button.isEnabled() and browser.rename_button.isEnabled()
    click_row(qtbot, browser, b, Qt.KeyboardModifier.ControlModifier)
    assert set(browser.selected_runs()) == {a, b} and browser.table.compare_button.isEnabled()
    assert not browser.rename_button.isEnabled()  # which run would it rename?
    qtbot.mouseClick(browser.table.compare_button, Qt.MouseButton.LeftButton)
    dialog = browser.diff_dialog
    assert isinstance(dialog, ConfigDiffDialog) and dialog.isVisible()
    assert dialog.differing_keys() == ["name", "model.n_layer"]
    values = {dialog.table.item(i, 0).text(): (dialog.table.item(i, 1).text(), dialog.table.item(i, 2).text())
              for i in range(dialog.table.rowCount())}
    first, second = browser.table.selected_runs()
    assert values["model.n_layer"] == (("2", "4") if first == a else ("4", "2"))
    dialog.close()

    click_row(qtbot, browser, c, Qt.KeyboardModifier.ControlModifier)  # three: nothing to compare two by two
    assert not browser.table.compare_button.isEnabled()


def test_the_table_ticks_the_runs_the_plots_overlay(qtbot, browser, runs):
    run = table_run(runs, "gpt")
    browser.refresh()
    to_table(qtbot, browser)
    model = browser.table.model
    index = browser.table.proxy.mapFromSource(model.index(model.row_of(run), 0))
    with qtbot.waitSignal(browser.compare_changed) as ticked:
        assert browser.table.proxy.setData(index, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert ticked.args == [[run]] and browser.checked_runs() == [run]
    browser.set_checked(run, False)
    assert index.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked


def test_a_refresh_keeps_the_sort_the_filter_and_the_selection(qtbot, browser, runs):
    for name, best in (("gpt-a", 3.0), ("gpt-b", 1.0), ("lstm", 2.0)):
        table_run(runs, name, best=best)
    browser.refresh()
    to_table(qtbot, browser)
    click_header(qtbot, browser, "best_val_loss")
    browser.table.filter_edit.setText("gpt")
    kept = browser.table.rows()[1].path
    click_row(qtbot, browser, kept)
    table_run(runs, "gpt-c", best=2.5)
    with qtbot.assertNotEmitted(browser.selection_changed):
        browser.refresh()
    assert shown(browser, "best_val_loss") == ["1.000", "2.500", "3.000"]
    assert browser.table.filter_edit.text() == "gpt" and browser.table.selected_runs() == [kept]
    assert browser.selected_run() == kept


def test_bad_values_show_as_a_dash(qtbot, browser, runs):
    run = table_run(runs, "odd", best=2.0)
    (run / "status.json").write_text('{"status": "finished", "parameters": true}')  # a count, not a flag
    (run / "metrics.jsonl").write_text('{"kind": "eval", "step": 1, "tokens": 1, "elapsed": 1, "val_loss": NaN, '
                                       '"val_perplexity": 1, "val_bits_per_char": null, "best": true}\n')
    broken = runs / "broken-20260101-000000"
    broken.mkdir()
    (broken / "config.toml").write_text("[model\n")
    browser.refresh()
    to_table(qtbot, browser)
    assert sorted(shown_names(browser)) == sorted([run.name, broken.name])
    model = browser.table.model
    for key in ("parameters", "best_val_loss", "layers"):
        assert model.index(model.row_of(broken), column(browser, key)).data() == MISSING_TEXT
    assert model.index(model.row_of(run), column(browser, "parameters")).data() == MISSING_TEXT
    browser.table.view.viewport().grab()  # paints every cell


def test_runs_with_different_tokenizers_always_show_bits_per_character(qtbot, browser, runs):
    table_run(runs, "chars", best=1.2, bits_per_char=1.7)
    browser.refresh()
    to_table(qtbot, browser)
    browser.table.column_actions["bits_per_char"].trigger()
    assert "Bits/char" not in shown_headers(browser) and not browser.table.fair_hint.isVisible()
    table_run(runs, "pieces", best=3.5, bits_per_char=1.6, tokenizer="sentencepiece")
    browser.refresh()
    assert "Bits/char" in shown_headers(browser) and browser.table.fair_hint.isVisible()
    assert not browser.table.column_actions["bits_per_char"].isEnabled()
    browser.table.select_runs([row.path for row in browser.table.rows()])
    browser.compare_selected()
    assert "bits per character" in browser.diff_dialog.findChild(type(browser.table.fair_hint), "fairHint").text()


def test_the_table_renders_at_a_readable_size(qtbot, themed_app, runs, tmp_path):
    for name, family, tokenizer, best, bits in (("baby-gpt-char", "transformer", "char", 1.77, 2.55),
                                                ("lstm-word", "rnn", "word", 5.1, 1.98),
                                                ("gpt-bpe", "transformer", "sentencepiece", 4.2, 1.91)):
        table_run(runs, name, best=best, bits_per_char=bits, family=family, tokenizer=tokenizer)
    browser = RunsBrowser(runs)
    qtbot.addWidget(browser)
    browser.resize(1000, 400)
    browser.set_table_mode(True)
    browser.show()
    qtbot.waitExposed(browser)
    QApplication.processEvents()
    header = browser.table.view.horizontalHeader()
    last = max(i for i in range(header.count()) if not header.isSectionHidden(i))
    assert header.sectionViewportPosition(last) + header.sectionSize(last) <= header.viewport().width()
    image = browser.grab()
    assert image.width() >= 1000 and image.save(str(tmp_path / "runs-table.png"))


def test_in_the_window_the_table_takes_the_whole_width_and_the_tabs_come_back(make_window, qtbot):
    window = make_window()
    window.resize(1024, 700)
    browser = window.runs_browser
    browser.set_table_mode(True)
    qtbot.wait(50)
    assert not window.tabs.isVisible() and window.width() == 1024  # the table did not widen the window
    browser.set_table_mode(False)
    assert window.tabs.isVisible()
