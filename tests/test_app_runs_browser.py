"""The runs browser: what it lists, and rename, delete and open."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QInputDialog, QMessageBox

from app.runs_browser import DETAILS_ROLE, RunsBrowser
from app_helpers import make_run


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
