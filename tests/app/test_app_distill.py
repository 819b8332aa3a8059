"""Distil from run…: the runs browser hands a run to the Train form as the teacher of a smaller student; a
distilled run's plots show the two parts of its loss."""
from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from app_helpers import fake_metrics, make_run
from engine_helpers import tiny_config
from lmcore.events import StepMetrics
from lmcore.metrics import read_metric_events
from lmcore.runs import RunFolder
from lmcore.trainer import Trainer
from test_app_plots import compare


def test_distil_from_run_prefills_a_smaller_student_of_that_run(make_window, tmp_path):
    teacher = make_run(tmp_path / "runs", "teacher", "finished")
    window = make_window()
    browser, form = window.runs_browser, window.train_tab.form
    browser.refresh()
    browser.select_run(teacher)
    assert browser.distill_button.isEnabled()
    browser.distill_button.click()
    assert window.tabs.currentWidget() is window.train_tab
    settings = form.settings()  # (the teacher made here has no corpus, so the form waits for one)
    assert settings["distill"]["teacher"] == str(teacher) and settings["name"] == "teacher-student"
    assert (settings["model"]["n_layer"], settings["model"]["n_embd"]) == (2, 64)  # half of 4 layers, 128 wide


@pytest.fixture(scope="module")
def student(tmp_path_factory, small_corpus):
    """A tiny run distilled for a few steps from a tiny teacher (trained here too)."""
    runs = tmp_path_factory.mktemp("distill-runs")
    teacher = Trainer.new(tiny_config(small_corpus, runs, max_steps=4, eval_interval=4))
    assert teacher.run() == "finished"
    config = tiny_config(small_corpus, runs, max_steps=6, eval_interval=6, seed=3)
    config.distill = dataclasses.replace(config.distill, teacher=str(teacher.folder.path), alpha=0.3)
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    return trainer.folder.path


def part_curves(plots, run) -> dict[str, np.ndarray]:
    """The y values drawn of each loss part's curve."""
    return {name: getattr(plots.curves[run], name).data()[1] for name in ("text_loss", "teacher_loss")}


def smoothed(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased moving average, as the plots smooth the loss."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = average * weight + (1 - weight) * value
        out.append(average / (1 - weight ** i))
    return out


def test_a_distilled_runs_loss_parts_are_drawn_live_with_their_legend_and_readout(plots, student):
    steps = [e for e in read_metric_events(RunFolder(student).metrics_path) if isinstance(e, StepMetrics)]
    plots.begin_live_run(student)
    plots.add_steps(steps)  # as the training worker hands them over
    plots.refresh()
    weight = plots.series.smoothing
    for name, drawn in part_curves(plots, student).items():
        assert drawn == pytest.approx(smoothed([getattr(s, name) for s in steps], weight))
        x, _ = getattr(plots.curves[student], name).data()
        assert list(x) == [s.step for s in steps]
    labels = [label.text for _, label in plots.legend.items]
    assert labels[-2:] == ["CE (labels)", "KL (teacher)"]
    reading = " ".join(plots.values_at(steps[-1].step))
    assert f"CE (labels) {steps[-1].text_loss:.3f}" in reading
    assert f"KL (teacher) {steps[-1].teacher_loss:.3f}" in reading


def test_a_finished_distilled_run_replays_its_loss_parts_and_exports_them(plots, qtbot, student, tmp_path):
    compare(qtbot, plots, [student])
    steps = [e for e in read_metric_events(RunFolder(student).metrics_path) if isinstance(e, StepMetrics)]
    assert all(len(drawn) == len(steps) for drawn in part_curves(plots, student).values())
    plots.smoothing.setValue(0)  # the raw parts
    plots.refresh()
    assert list(part_curves(plots, student)["teacher_loss"]) == pytest.approx([s.teacher_loss for s in steps])
    plots.export_csv(tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv", encoding="utf-8") as table:
        rows = [row for row in csv.DictReader(table) if row["kind"] == "step"]
    assert [float(row["text_loss"]) for row in rows] == pytest.approx([s.text_loss for s in steps])
    assert [float(row["teacher_loss"]) for row in rows] == pytest.approx([s.teacher_loss for s in steps])


def test_a_run_without_a_teacher_has_no_loss_parts(plots, tmp_path):
    run = make_run(tmp_path / "runs", "plain", "finished", metrics=fake_metrics(20))
    plots.begin_live_run(run, history=read_metric_events(RunFolder(run).metrics_path))
    plots.refresh()
    assert all(len(drawn) == 0 for drawn in part_curves(plots, run).values())
    assert "CE (labels)" not in [label.text for _, label in plots.legend.items]
    assert "CE" not in " ".join(plots.values_at(10))
    plots.export_csv(tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv", encoding="utf-8") as table:
        assert all(row["text_loss"] == "" for row in csv.DictReader(table))
