"""Training from the window, end to end, with a real `lmcore train --events -` child: start, watch points arrive,
pause, resume, stop, resume from the runs browser, fine-tune, failures, a killed child, closing while training
(stop, or keep training and follow the run again from a new window), and several processes through torchrun."""
from __future__ import annotations

import json
import os
import signal
import time

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from lmcore.checkpoint import load_trained_model
from lmcore.runs import RunFolder
from lmcore.trainer import Trainer

from app.common.text import run_label
from app.train.plots import LIVELY, pace_beside
from app.train.worker import TrainingWorker
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
    qtbot.waitUntil(lambda: " left" in tab.progress.text, timeout=TIMEOUT)  # from the run's pace, evaluations counted
    assert not tab.form.sections["Model"].isEnabled()  # settings are locked while training
    # The run keeps this machine's CPU threads busy (as many as PyTorch's here): the plots, and the reader that
    # brings them its events, keep the pace for that (SPARING where that is every core)
    pace = pace_beside(torch.get_num_threads())
    assert tab.plots.pace is pace and worker._reader.interval_s == pace.refresh_s

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
    assert f"step {worker.last_step:,} of " in tab.progress.text and 0 < tab.progress.fraction < 1
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert window.attention_tab.workers == [worker, None]
    assert tab.start_button.isEnabled() and tab.form.sections["Model"].isEnabled()
    assert tab.plots.pace is LIVELY  # nothing trains


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
    assert not form.sections["Model"].isEnabled() and form.config().model.n_embd == 32
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


def test_fine_tuning_on_text_the_tokenizer_cannot_represent_asks_first(make_window, qtbot, small_corpus, tmp_path,
                                                                      monkeypatch):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path / "runs", max_steps=2))
    assert trainer.run() == "finished"
    chinese = tmp_path / "chinese.txt"
    chinese.write_text("今天天气很好，我们一起去公园散步吧。\n" * 300, encoding="utf-8")  # all but "\n" unknown

    window = make_window(corpus=chinese)
    browser, tab = window.runs_browser, window.train_tab
    browser.refresh()
    browser.select_run(trainer.folder.path)
    qtbot.mouseClick(browser.fine_tune_button, Qt.LeftButton)
    form = tab.form
    set_field(form, "train.max_steps", 2)
    qtbot.waitUntil(lambda: "94.7% of this text is unknown to the model's tokenizer" in form.summary.warning.text(),
                    timeout=5000)
    assert form.summary.warning.isVisibleTo(form) and tab.start_button.isEnabled()  # Start asks, not refuses

    asked = []
    answer = QMessageBox.No
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *args: asked.append(text) or answer)
    qtbot.mouseClick(tab.start_button, Qt.LeftButton)
    assert len(asked) == 1 and "94.7%" in asked[0] and not tab.is_training()
    answer = QMessageBox.Yes
    qtbot.mouseClick(tab.start_button, Qt.LeftButton)
    assert len(asked) == 2 and tab.is_training()
    tab.stop()
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)


def test_a_failure_inside_training_is_explained_and_the_run_marked_failed(make_window, qtbot, small_corpus,
                                                                            monkeypatch):
    window = make_window()
    tab = window.train_tab
    tab.form.sections["Optimizer"].expand()
    # SGD at the highest learning rate the form takes, without clipping: the loss blows up within a few steps
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch, **{
        "optim.name": "sgd", "optim.lr": "100", "optim.grad_clip": "0", "schedule.kind": "constant"})
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert tab.banner.property("tone") == "error"
    text = tab.banner.text()
    assert ("loss became nan" in text or "loss diverged" in text) and "optim.lr" in text
    run = tab.plots.pinned
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    window.runs_browser.refresh()
    assert "failed" in window.runs_browser.tree.topLevelItem(0).data(0, Qt.UserRole + 1)


def answer_closing_with(monkeypatch, button: str, asked: list | None = None) -> None:
    """Click `button` in the question the window asks when it is closed while training."""
    def click(box):
        if asked is not None:
            asked.append(box.text())
        next(b for b in box.buttons() if b.text() == button).click()

    monkeypatch.setattr(QMessageBox, "exec", click)


def test_closing_during_training_asks_then_stops_and_saves(make_window, qtbot, small_corpus, monkeypatch):
    window = make_window()
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch)
    qtbot.waitUntil(lambda: plotted_steps(tab) >= 3, timeout=TIMEOUT)
    run = tab.worker.run_dir
    questions = []
    answer_closing_with(monkeypatch, "Cancel", questions)
    window.close()
    assert window.isVisible() and tab.is_training() and "Stop it and save a checkpoint" in questions[0]
    answer_closing_with(monkeypatch, "Stop and save")
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT)
    assert not tab.is_training()
    assert (run / "checkpoints" / "last.safetensors").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"


def wait_for_status(run, wanted: str, timeout_s: float = 120) -> dict:
    """status.json of a run training in a process no window watches, once it says `wanted`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = RunFolder(run).read_status()
        if status.get("status") == wanted:
            return status
        time.sleep(0.2)
    raise AssertionError(f"{run} still says {RunFolder(run).read_status().get('status')!r}, not {wanted!r}")


def test_killing_the_training_process_leaves_the_window_working_and_the_run_resumable(make_window, qtbot,
                                                                                       small_corpus, monkeypatch):
    window = make_window()
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch)
    qtbot.waitUntil(lambda: tab.worker.run_dir is not None and
                    (tab.worker.run_dir / "checkpoints" / "last.safetensors").is_file(), timeout=TIMEOUT)
    run = tab.worker.run_dir
    os.kill(tab.worker.process.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert tab.banner.property("tone") == "error" and "killed by signal 9" in tab.banner.text()
    assert "press Resume" in tab.banner.text() and tab.start_button.isEnabled()  # the window works on
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    _, _, meta = load_trained_model(run, "last")  # the last checkpoint loads
    saved_step = meta["step"]
    assert saved_step >= 20

    browser = window.runs_browser
    browser.refresh()
    browser.select_run(run)
    assert browser.resume_button.isEnabled()
    qtbot.mouseClick(browser.resume_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: plotted_steps(tab) > saved_step and tab.worker.last_step > saved_step + 3, timeout=TIMEOUT)
    steps = tab.plots.series[run].steps["step"]  # the history up to the checkpoint, then the new steps, once each
    assert list(steps[:saved_step + 3]) == list(range(1, saved_step + 4))
    qtbot.mouseClick(tab.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"


def test_keep_training_lets_the_run_finish_without_the_window(make_window, qtbot, small_corpus, monkeypatch):
    window = make_window()
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch, **{"train.max_steps": 150})
    qtbot.waitUntil(lambda: plotted_steps(tab) >= 3, timeout=TIMEOUT)
    run, child = tab.worker.run_dir, tab.worker.process
    answer_closing_with(monkeypatch, "Keep training")
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)  # at once: nothing to wait for
    status = wait_for_status(run, "finished")
    assert status["step"] == 150 and child.wait(timeout=60) == 0
    assert (run / "train.log").is_file()


def test_a_new_window_follows_a_run_that_kept_training(make_window, qtbot, small_corpus, monkeypatch):
    window = make_window()
    tab = start_tiny_run(window, qtbot, small_corpus, monkeypatch)
    qtbot.waitUntil(lambda: plotted_steps(tab) >= 3, timeout=TIMEOUT)
    run, child = tab.worker.run_dir, tab.worker.process
    answer_closing_with(monkeypatch, "Keep training")
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)

    window = make_window()  # the next start of the app
    tab = window.train_tab
    assert tab.is_training() and tab.worker.run_dir == run
    qtbot.waitUntil(lambda: tab.plots.pinned == run and plotted_steps(tab) >= 3, timeout=TIMEOUT)
    steps_seen = plotted_steps(tab)
    qtbot.waitUntil(lambda: plotted_steps(tab) > steps_seen + 5, timeout=TIMEOUT)  # live: still growing
    steps = tab.plots.series[run].steps["step"]
    assert list(steps[:10]) == list(range(1, 11))  # the history from metrics.jsonl, then the new steps
    assert not tab.pause_button.isEnabled() and tab.stop_button.isEnabled()
    qtbot.mouseClick(tab.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert "Stopped at step" in tab.banner.text()
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert child.wait(timeout=60) == 130  # stopped by an interrupt, as Ctrl-C stops `lmcore train`


def test_end_of_input_makes_the_child_save_and_exit(qtbot, small_corpus, tmp_path):
    """What happens when the window dies: the child's standard input closes."""
    worker = TrainingWorker.for_new_run(tiny_config(small_corpus, tmp_path, max_steps=100_000, eval_interval=1000),
                                    tmp_path)
    steps, endings = [], []
    worker.steps.connect(steps.extend)
    worker.finished.connect(endings.append)
    worker.start()
    qtbot.waitUntil(lambda: len(steps) >= 5, timeout=TIMEOUT)
    with qtbot.waitSignal(worker.done, timeout=TIMEOUT):
        worker.process.stdin.close()
    (ending,) = endings
    assert ending.status == "stopped" and worker.process.returncode == 0
    assert load_trained_model(worker.run_dir, "last")[2]["step"] == ending.step


def test_two_processes_over_gloo_train_from_the_worker_and_rank_0_alone_reports(qtbot, small_corpus, tmp_path):
    worker = TrainingWorker.for_new_run(tiny_config(small_corpus, tmp_path, max_steps=12, eval_interval=6), tmp_path,
                                    processes=2)
    started, steps, endings = [], [], []
    worker.started.connect(started.append)
    worker.steps.connect(steps.extend)
    worker.finished.connect(endings.append)
    with qtbot.waitSignal(worker.done, timeout=180_000):
        worker.start()
    assert [e.status for e in endings] == ["finished"], worker.process.returncode
    assert "2 processes" in started[0].device
    assert [e.step for e in steps] == list(range(1, 13))  # each step once: rank 0's events only
    assert started[0].tokens_per_step == 2 * 8 * 16  # both ranks' batches count


def test_live_attention_from_the_training_process_reaches_the_attention_tab(qtbot, small_corpus, tmp_path):
    from app.attention.tab import AttentionTab

    tab = AttentionTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.editor.setPlainText("To be, or not to be")
    tab.every.setValue(5)
    tab.live.setChecked(True)
    worker = TrainingWorker.for_new_run(tiny_config(small_corpus, tmp_path, max_steps=100_000, eval_interval=1000),
                                        tmp_path)
    saved = []
    worker.attention_saved.connect(saved.append)
    tab.attach_worker(worker)
    worker.start()
    qtbot.waitUntil(lambda: len(saved) >= 2 and "refreshed at step" in tab.live_status.text(), timeout=TIMEOUT)
    assert "live, step" in tab.run_label.text()
    assert "".join(tab._snapshot.tokens) == "To be, or not to be"[-16:]  # the model's context: 16 characters

    tab.editor.setPlainText("O Romeo")  # a new probe text mid-run: the child captures it from now on
    qtbot.mouseClick(tab.show_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: "live, step" in tab.run_label.text() and "".join(tab._snapshot.tokens) == "O Romeo",
                    timeout=TIMEOUT)
    with qtbot.waitSignal(worker.done, timeout=TIMEOUT):
        worker.stop()
    assert len(list((worker.run_dir / "attention").glob("*.npy"))) <= 5  # the newest few are kept
    tab.attach_worker(None)
    tab.shutdown()
