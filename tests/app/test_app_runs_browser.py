"""The runs browser: what it lists, and rename, delete and open."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QInputDialog, QMessageBox

import app.runs.browser
from app.common.text import run_label
from app.runs.browser import DETAILS_ROLE, RunsBrowser
from app_helpers import make_run
from lmcore.runs import split_run_name


@pytest.fixture
def browser(qtbot, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    widget = RunsBrowser(runs)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def rows(browser):
    items = [browser.tree.topLevelItem(i) for i in range(browser.tree.topLevelItemCount())]
    return {item.text(0): item.data(0, DETAILS_ROLE) for item in items}


def select(browser, run: Path):
    browser.refresh()
    browser.select_run(run)
    assert browser.selected_run() == run


def test_lists_each_run_with_status_kind_size_and_best_loss(browser, tmp_path):
    runs = tmp_path / "runs"
    gpt = make_run(runs, "gpt", "finished", parameters=804_224, best_val_loss=1.8812)
    lstm = make_run(runs, "lstm", "stopped", "rnn", parameters=2_650_000)
    failed = make_run(runs, "nan", "failed")
    cut_off = make_run(runs, "cut", "running")  # "running" on disk, but nothing here trains it
    browser.refresh()
    listed = rows(browser)
    assert listed[gpt.name] == "finished · Transformer · 804 k · val 1.881"
    assert listed[lstm.name] == "stopped · RNN · 2.65 M"
    assert listed[failed.name].startswith("failed")
    assert listed[cut_off.name].startswith("interrupted")
    browser.set_active_run(cut_off, "paused")
    assert rows(browser)[cut_off.name].startswith("paused")


def test_new_run_folders_show_up_by_themselves(browser, qtbot, tmp_path):
    assert browser.empty_hint.isVisible()
    run = make_run(tmp_path / "runs", "late", "finished")
    qtbot.waitUntil(lambda: run.name in rows(browser), timeout=5000)
    assert not browser.empty_hint.isVisible()


def test_actions_follow_the_selected_runs_status(browser, tmp_path):
    stopped = make_run(tmp_path / "runs", "stopped", "stopped")
    finished = make_run(tmp_path / "runs", "finished", "finished")
    select(browser, stopped)
    assert browser.resume_button.isEnabled() and browser.fine_tune_button.isEnabled()
    select(browser, finished)
    assert not browser.resume_button.isEnabled() and browser.fine_tune_button.isEnabled()
    browser.set_active_run(finished, "running")
    assert not browser.rename_button.isEnabled() and not browser.delete_button.isEnabled()


def test_rename(browser, qtbot, tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs", "old", "finished")
    select(browser, run)
    browser.set_checked(run, True)
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("shakespeare-gpt", True))
    with qtbot.waitSignal(browser.run_removed) as removed:
        qtbot.mouseClick(browser.rename_button, Qt.LeftButton)
    assert removed.args == [run]
    renamed = tmp_path / "runs" / "shakespeare-gpt"
    assert renamed.is_dir() and not run.exists()
    assert browser.selected_run() == renamed and browser.checked_runs() == [renamed]


def test_delete_asks_first(browser, qtbot, tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs", "doomed", "stopped")
    select(browser, run)
    questions = []

    def answer(reply):
        return lambda parent, title, text, *args: (questions.append(text), reply)[1]

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.Cancel))
    qtbot.mouseClick(browser.delete_button, Qt.LeftButton)
    assert run.exists() and run.name in questions[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.Yes))
    qtbot.mouseClick(browser.delete_button, Qt.LeftButton)
    assert not run.exists() and run.name not in rows(browser)


def test_open_folder(browser, qtbot, tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs", "look", "finished")
    select(browser, run)
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    qtbot.mouseClick(browser.open_button, Qt.LeftButton)
    assert opened == [str(run)]


@pytest.mark.parametrize("name", ["a/b", ".", "..", "../x", "", pytest.param("x" * 300, id="300-chars")])
def test_a_bad_new_name_is_explained_and_the_run_kept(browser, qtbot, tmp_path, monkeypatch, name):
    run = make_run(tmp_path / "runs", "old", "finished")
    select(browser, run)
    before = sorted((tmp_path / "runs").rglob("*"))
    warnings = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: (name, True))
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *args: warnings.append(text))
    qtbot.mouseClick(browser.rename_button, Qt.LeftButton)
    assert len(warnings) == 1 and "New name" in warnings[0] and "Traceback" not in warnings[0]
    assert sorted((tmp_path / "runs").rglob("*")) == before and browser.selected_run() == run


def test_a_run_renamed_to_an_impossible_date_is_listed_as_it_is(make_window, tmp_path):
    """Issue 23: 30 February parsed as a date stamp raised in the list's painter, which crashed every launch."""
    made = make_run(tmp_path / "runs", "my-run", "finished")
    name = "my-run-20240230-120000"
    made.rename(made.parent / name)
    window = make_window()
    tree = window.runs_browser.tree
    tree.viewport().grab()  # paints the rows
    assert [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())] == [name]
    assert run_label(name) == name and split_run_name(name) == (name, None)


def test_a_bug_in_the_row_painter_shows_the_row_plainly(browser, tmp_path, monkeypatch, capfd):
    """Whatever the two-line painter raises must not reach Qt, which crashed on it (issue 23)."""
    run = make_run(tmp_path / "runs", "gpt", "finished")
    browser.refresh()

    def broken(name):
        raise ValueError(f"cannot split {name}")

    monkeypatch.setattr(app.runs.browser, "label_parts", broken)
    browser.tree.viewport().grab()
    assert f"ValueError: cannot split {run.name}" in capfd.readouterr().err
