"""Training from the window, end to end: start, watch points arrive, pause, resume, stop, resume from the runs
browser, fine-tune, failures, and closing while training."""
from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from lmcore.runs import RunFolder
from lmcore.trainer import Trainer

from app.runs_browser import run_label
from app_helpers import set_field, use_tiny_settings
from engine_helpers import tiny_config

TIMEOUT = 60_000  # ms; generous, for a busy machine


def start_tiny_run(window, qtbot, corpus, monkeypatch, **settings):
    """Pick the corpus with the File… button, choose the preset, shrink the model, press Start."""
    tab = window.train_tab
    form = tab.form
    form.preset.setCurrentIndex(form.preset.findText("baby-gpt-char"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(corpus), "Text files"))
    file_button = next(b for b in form.corpus.findChildren(type(tab.start_button)) if b.text() == "File…")
    qtbot.mouseClick(file_button, Qt.LeftButton)
    use_tiny_settings(form, **settings)
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=5000)
    qtbot.mouseClick(tab.start_button, Qt.LeftButton)
    assert tab.is_training()
    return tab


def plotted_steps(tab) -> int:
    series = tab.plots.series.get(tab.plots.pinned)
    return series.steps.size if series else 0


def drawn_points(tab) -> int:
    curves = tab.plots.curves.get(tab.plots.pinned)
    return len(curves.raw_loss.data()[0]) if curves else 0


def test_start_watch_pause_resume_stop(make_window, qtbot, small_corpus, monkeypatch):
    window = make_window()
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch)
    worker = tab.worker
    assert window.attention_tab.workers == [worker]  # the attention tab may probe the live trainer
    qtbot.waitUntil(lambda: drawn_points(tab) >= 25, timeout=TIMEOUT)  # points arrive on the plot
    qtbot.waitUntil(lambda: tab.plots.series[tab.plots.pinned].evals.size >= 1, timeout=TIMEOUT)
    assert "tokens/s" in window.speed_label.text() and run_label(worker.run_dir.name) in window.run_label.text()
    assert tab.form.summary.values["Time / step"].text() != "–"
    assert not tab.form.sections["Model"].isEnabled()  # settings are locked while training

    qtbot.mouseClick(tab.pause_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: tab.state == "paused", timeout=TIMEOUT)
    assert tab.pause_button.text() == "Resume"
    paused_at = plotted_steps(tab)
    qtbot.wait(400)
    assert plotted_steps(tab) == paused_at  # nothing trains while paused
    qtbot.mouseClick(tab.pause_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: plotted_steps(tab) > paused_at + 3, timeout=TIMEOUT)

    qtbot.mouseClick(tab.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    run = worker.run_dir
    assert "Stopped at step" in tab.banner.text()
    assert f"step {worker.trainer.step:,} of " in tab.progress.text and 0 < tab.progress.fraction < 1
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert window.attention_tab.workers == [worker, None]
    assert tab.start_button.isEnabled() and tab.form.sections["Model"].isEnabled()


def test_resume_a_stopped_run_from_the_runs_browser(make_window, qtbot, small_corpus, tmp_path):
    config = tiny_config(small_corpus, tmp_path / "runs", max_steps=100_000, eval_interval=20)
    trainer = Trainer.new(config, tmp_path / "runs")
    trainer.subscribe(lambda event: trainer.request_stop() if getattr(event, "step", 0) >= 12 else None)
    assert trainer.run() == "stopped"
    run = trainer.folder.path

    window = make_window()
    browser, tab = window.runs_browser, window.train_tab
    browser.refresh()
    tree = browser.tree
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=tree.visualItemRect(tree.topLevelItem(0)).center())
    assert browser.selected_run() == run and "stopped" in tree.topLevelItem(0).data(0, Qt.UserRole + 1)
    qtbot.mouseClick(browser.resume_button, Qt.LeftButton)
    assert tab.is_training() and not browser.resume_button.isEnabled()
    qtbot.waitUntil(lambda: plotted_steps(tab) > 20, timeout=TIMEOUT)
    steps = tab.plots.series[run].steps["step"]
    assert steps[0] == 1 and list(steps[:20]) == list(range(1, 21))  # the history, then the new steps, once each
    qtbot.mouseClick(tab.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert json.loads((run / "status.json").read_text())["step"] > 12


def test_fine_tune_a_finished_run_on_new_text(make_window, qtbot, small_corpus, tmp_path):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path / "runs", max_steps=10, eval_interval=5))
    assert trainer.run() == "finished"
    source = trainer.folder.path
    new_text = tmp_path / "new.txt"
    new_text.write_text(small_corpus.read_text(encoding="utf-8")[::-1], encoding="utf-8")

    window = make_window(corpus=new_text)
    browser, tab = window.runs_browser, window.train_tab
    browser.refresh()
    browser.select_run(source)
    qtbot.mouseClick(browser.fine_tune_button, Qt.LeftButton)
    form = tab.form
    assert form.fine_tune_banner.isVisibleTo(form) and source.name in form.fine_tune_banner.text()
    assert not form.sections["Model"].isEnabled() and form.config().model["n_embd"] == 32
    set_field(form, "train.max_steps", 6)
    set_field(form, "train.eval_interval", 3)
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=5000)
    qtbot.mouseClick(tab.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert "Finished at step 6" in tab.banner.text()
    assert tab.progress.fraction == 1.0 and tab.progress.text.startswith("step 6 of 6")
    tuned = tab.plots.pinned  # a run of its own, started from the source's weights
    assert tuned != source and f'init_from = "{source}"' in (tuned / "config.toml").read_text()
    first_loss = [RunFolder(run).read_metrics()[0]["loss"] for run in (source, tuned)]
    assert first_loss[1] < first_loss[0]  # it starts where the source got to, not from scratch


def test_a_failure_inside_training_is_explained_and_the_run_marked_failed(make_window, qtbot, small_corpus,
                                                                            monkeypatch):
    window = make_window()
    tab = window.train_tab
    tab.form.sections["Optimizer"].expand()
    # SGD at a learning rate of 1e9 without clipping: the loss is NaN within two steps
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch, **{
        "optim.name": "sgd", "optim.lr": "1e9", "optim.grad_clip": "0", "schedule.kind": "constant"})
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert tab.banner.property("tone") == "error"
    assert "loss became nan" in tab.banner.text() and "Lower optim.lr" in tab.banner.text()
    run = tab.plots.pinned
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    window.runs_browser.refresh()
    assert "failed" in window.runs_browser.tree.topLevelItem(0).data(0, Qt.UserRole + 1)


def test_closing_during_training_asks_then_stops_and_saves(make_window, qtbot, small_corpus, monkeypatch):
    window = make_window()
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch)
    qtbot.waitUntil(lambda: plotted_steps(tab) >= 3, timeout=TIMEOUT)
    run = tab.worker.run_dir
    questions = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: (questions.append(args[2]), QMessageBox.Cancel)[1])
    window.close()
    assert window.isVisible() and tab.is_training() and "Stop it, save a checkpoint" in questions[0]
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.Yes)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT)
    assert not tab.is_training()
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
