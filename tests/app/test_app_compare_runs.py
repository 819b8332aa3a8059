"""Runs ticked in the runs browser, overlaid on the plots: read on the plots' loader thread and drawn when they
arrive, and compared in bits per character when their tokenizers differ (issue 23)."""
from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QObject, QThread, Qt

from lmcore.config import config_from_dict, config_to_dict
from lmcore.runs import RunFolder

import app.train.plots
from app.common.text import run_label
from app.train.plots import BITS

STEPS, EVAL_EVERY = 60, 20


def tokenized_run(runs_dir: Path, name: str, tokenizer: str, chars_per_token: float = 1.0,
                  partial: bool = False) -> Path:
    """A finished run whose tokenizer is `tokenizer`, its evaluations with bits per character (none when
    `partial`: part of the validation split was evaluated)."""
    config = config_from_dict({**config_to_dict(config_from_dict({})), "name": name,
                               "tokenizer": {"kind": tokenizer}})
    folder = RunFolder.create(runs_dir, name)
    folder.save_config(config)
    folder.write_status("finished")
    records = []
    for step in range(1, STEPS + 1):
        loss = (6.0 if tokenizer == "word" else 2.5) / (1 + step / 40)
        records.append({"kind": "step", "step": step, "tokens": 64 * step, "loss": loss, "lr": 1e-3,
                        "grad_norm": 1.0, "tokens_per_s": 900.0, "elapsed": 0.1 * step})
        if step % EVAL_EVERY == 0:
            bits = None if partial else round(loss / np.log(2) / chars_per_token, 6)
            records.append({"kind": "eval", "step": step, "tokens": 64 * step, "elapsed": 0.1 * step,
                            "val_loss": loss, "val_perplexity": float(np.exp(loss)), "val_bits_per_char": bits,
                            "best": True})
    folder.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder.path


def tick(window, runs: list[Path], ticked: bool = True) -> None:
    """As a user ticks (or unticks) each run's box in the runs list."""
    window.runs_browser.refresh()  # lists runs made after the window opened
    for run in runs:
        window.runs_browser.set_checked(run, ticked)


def drawn_points(plots, run: Path) -> int:
    curves = plots.curves.get(run)
    return len(curves.raw_loss.data()[0]) if curves is not None else 0


def wait_drawn(qtbot, plots, runs: list[Path]) -> None:
    qtbot.waitUntil(lambda: all(drawn_points(plots, run) == STEPS for run in runs) and not plots.is_loading(),
                    timeout=10_000)
    plots.refresh()


@pytest.fixture
def char_and_word(tmp_path):
    return (tokenized_run(tmp_path / "runs", "gpt-char", "char"),
            tokenized_run(tmp_path / "runs", "lstm-word", "word", chars_per_token=5.0))


def test_ticked_runs_are_read_off_the_gui_thread_and_drawn_when_they_arrive(make_window, qtbot, monkeypatch,
                                                                            char_and_word):
    threads = []
    read = app.train.plots.load_series

    def recording(*args, **kwargs):
        threads.append((threading.current_thread(), QThread.currentThread().objectName()))
        return read(*args, **kwargs)

    monkeypatch.setattr(app.train.plots, "load_series", recording)
    window = make_window()
    plots = window.train_tab.plots
    tick(window, list(char_and_word))
    assert not any(run in plots.curves for run in char_and_word)  # nothing yet: the data comes later
    wait_drawn(qtbot, plots, list(char_and_word))
    assert len(threads) == 2
    assert all(thread is not threading.main_thread() for thread, _ in threads)
    assert {name for _, name in threads} == {"series-loader"}
    assert [label.text for _, label in plots.legend.items] == [run_label(run.name) for run in char_and_word]


class Answers(QObject):
    """Counts the loader's answers on the GUI thread (qtbot.waitSignal's receiver, no QObject, would run on the
    loader's thread and race the wait)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def record(self, *_) -> None:
        self.count += 1


def test_a_run_unticked_before_its_data_arrives_is_not_drawn(make_window, qtbot, monkeypatch, char_and_word):
    started, release = threading.Event(), threading.Event()
    read = app.train.plots.load_series

    def held(*args, **kwargs):
        started.set()
        release.wait(10)
        return read(*args, **kwargs)

    monkeypatch.setattr(app.train.plots, "load_series", held)
    window = make_window()
    plots = window.train_tab.plots
    run = char_and_word[0]
    tick(window, [run])
    assert started.wait(10)  # being read
    tick(window, [run], ticked=False)
    answers = Answers()
    plots.loader.loaded.connect(answers.record)  # after the plots' own slot, on the GUI thread as theirs
    release.set()
    qtbot.waitUntil(lambda: answers.count == 1, timeout=10_000)  # the answer came, too late
    plots.refresh()
    assert run not in plots.series and run not in plots.curves and not plots.is_loading()
    assert plots.legend.items == []

    tick(window, [run])  # ticked again: read again
    wait_drawn(qtbot, plots, [run])


def test_a_char_run_and_a_word_run_are_compared_in_bits_per_character(make_window, qtbot, char_and_word):
    window = make_window()
    plots = window.train_tab.plots
    char, word = char_and_word
    tick(window, [char, word])
    wait_drawn(qtbot, plots, [char, word])
    assert plots.y_axis.currentData() == BITS
    assert plots.loss_plot.getAxis("left").labelText == "bits per character"
    for run, chars_per_token in ((char, 1.0), (word, 5.0)):
        x, y = plots.curves[run].val_loss.data()
        assert list(x) == [20, 40, 60]
        series = plots.series[run]
        assert y == pytest.approx(series.evals["val_loss"] / np.log(2) / chars_per_token, rel=1e-5)
        assert not plots.curves[run].smoothed_loss.history.isVisible()  # the loss per token has no bits/char
    # the word run's loss per token is far higher, its bits per character lower: the ranking the axis shows
    assert plots.series[word].evals["val_loss"][-1] > plots.series[char].evals["val_loss"][-1]
    assert plots.curves[word].val_loss.data()[1][-1] < plots.curves[char].val_loss.data()[1][-1]
    low, high = plots.loss_plot.vb.viewRange()[1]
    assert low < plots.curves[word].val_loss.data()[1].min() and plots.curves[char].val_loss.data()[1].max() < high
    assert "validation" not in [label.text for _, label in plots.legend.items]

    tick(window, [word], ticked=False)  # one tokenizer left: back to the loss per token
    plots.refresh()
    assert plots.y_axis.currentData() == "val_loss"
    assert plots.loss_plot.getAxis("left").labelText == "loss (nats/token)"
    assert plots.curves[char].smoothed_loss.history.isVisible()
    assert list(plots.curves[char].val_loss.data()[1]) == list(plots.series[char].evals["val_loss"])


def test_two_char_runs_stay_in_nats_per_token(make_window, qtbot, tmp_path):
    runs = [tokenized_run(tmp_path / "runs", name, "char") for name in ("a", "b")]
    window = make_window()
    plots = window.train_tab.plots
    tick(window, runs)
    wait_drawn(qtbot, plots, runs)
    assert plots.y_axis.currentData() == "val_loss"
    assert all(plots.curves[run].smoothed_loss.history.isVisible() for run in runs)


def test_the_live_runs_tokenizer_counts_too(qtbot, tmp_path, char_and_word):
    """The run being trained is not read back (its metrics come live), but its tokenizer is."""
    from app.train.plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.show()
    char, word = char_and_word
    plots.begin_live_run(char)
    plots.compare([word])
    qtbot.waitUntil(lambda: not plots.is_loading(), timeout=10_000)
    plots.refresh()
    assert plots.series[char].tokenizer == "char" and plots.series[char].steps.size == 0  # not read back
    assert plots.y_axis.currentData() == BITS


def choose(qtbot, combo, key: str) -> None:
    """Pick an item with the keyboard, as a user does (activated is emitted for the user's choices only)."""
    combo.setFocus()
    while combo.currentData() != key:
        qtbot.keyClick(combo, Qt.Key.Key_Down if combo.currentIndex() < combo.findData(key) else Qt.Key.Key_Up)


def test_the_users_choice_of_axis_sticks(make_window, qtbot, tmp_path, char_and_word):
    window = make_window()
    plots = window.train_tab.plots
    char, word = char_and_word
    choose(qtbot, plots.y_axis, BITS)
    another_char = tokenized_run(tmp_path / "runs", "another-char", "char")
    tick(window, [char, another_char])
    wait_drawn(qtbot, plots, [char, another_char])
    assert plots.y_axis.currentData() == BITS  # not back to the loss, though the tokenizers agree

    choose(qtbot, plots.y_axis, "val_loss")
    tick(window, [word])
    wait_drawn(qtbot, plots, [word])
    assert plots.y_axis.currentData() == "val_loss"  # not bits per character, though the tokenizers differ
    assert plots.curves[word].smoothed_loss.history.isVisible()


@pytest.fixture
def with_a_partial_run(make_window, qtbot, tmp_path, char_and_word):
    """The plots of a window showing a char run and a word run whose evaluations covered part of the validation
    split (so they have no bits per character); returns the plots and the two runs."""
    char, _ = char_and_word
    partial = tokenized_run(tmp_path / "runs", "partial-word", "word", partial=True)
    window = make_window()
    tick(window, [char, partial])
    wait_drawn(qtbot, window.train_tab.plots, [char, partial])
    return window.train_tab.plots, char, partial


def test_evaluations_without_bits_per_character_are_left_out_and_the_legend_says_so(with_a_partial_run):
    plots, char, partial = with_a_partial_run
    assert plots.y_axis.currentData() == BITS
    x, _ = plots.curves[partial].val_loss.data()
    assert x is None or len(x) == 0  # not drawn at 0 (pyqtgraph keeps no data as None)
    labels = [label.text for _, label in plots.legend.items]
    assert labels[1] == f"{run_label(partial.name)} (no bits per character: part of the validation split evaluated)"
    assert labels[0] == run_label(char.name)
    low, _ = plots.loss_plot.vb.viewRange()[1]
    assert low > 0.5  # fitted to the char run's curve, not pulled down to 0


def test_the_csv_export_has_bits_per_character(with_a_partial_run, tmp_path):
    plots, char, partial = with_a_partial_run
    plots.export_csv(tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv", encoding="utf-8") as table:
        rows = list(csv.DictReader(table))
    evals = {(row["run"], int(row["step"])): row for row in rows if row["kind"] == "eval"}
    expected = plots.series[char].evals["val_bits_per_char"][-1]
    assert float(evals[(char.name, 60)]["val_bits_per_char"]) == pytest.approx(expected)
    assert evals[(partial.name, 60)]["val_bits_per_char"] == ""  # none, rather than 0 or nan
    assert all(row["val_bits_per_char"] == "" for row in rows if row["kind"] == "step")


def test_runs_overlaid_while_nothing_trains_fill_the_views(qtbot, tmp_path, char_and_word):
    """The room kept past the newest point is for a run that trains; finished runs end where their data ends."""
    from app.train.plots import TrainingPlots

    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 600)
    plots.show()
    plots.compare([char_and_word[0]])
    qtbot.waitUntil(lambda: not plots.is_loading(), timeout=10_000)
    plots.refresh()
    for plot in (plots.loss_plot, plots.lr_plot):
        left, right = plot.vb.viewRange()[0]
        assert STEPS <= right < 1.1 * STEPS
