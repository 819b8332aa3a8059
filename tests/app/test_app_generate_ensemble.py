"""The Generate tab with models made of models: an ensemble of runs that share a tokenizer (generation and the
Score view's table), and an int8 copy, which runs on the CPU whatever device the tab loads models onto."""
from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt

from engine_helpers import tiny_config
from lmcore.checkpoint import load_trained_model
from lmcore.ensemble import load_ensemble
from lmcore.generation import SamplingSettings, generate, score_text
from lmcore.quantize import quantize_run
from lmcore.trainer import Trainer
from test_app_generate import generate_and_wait, open_tab, set_settings

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak."


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_corpus):
    """Two runs with the same tokenizer, and one (trained on other text) with another, in one runs folder."""
    folder = tmp_path_factory.mktemp("ensemble-runs")
    paths = []
    for seed in (1, 2):
        trainer = Trainer.new(tiny_config(small_corpus, folder, max_steps=20, eval_interval=10, seed=seed))
        assert trainer.run() == "finished"
        paths.append(trainer.folder.path)
    other_text = small_corpus.parent / "digits.txt"
    other_text.write_text("0123456789 " * 500, encoding="utf-8")
    trainer = Trainer.new(tiny_config(other_text, folder, max_steps=2, eval_interval=2))
    assert trainer.run() == "finished"
    return [*paths, trainer.folder.path]


def choose_ensemble(qtbot, tab, runs, mean="probability") -> None:
    """Tick `runs` in the Ensemble dialog, choose the mean, press OK, and wait for the ensemble to load."""
    qtbot.mouseClick(tab.ensemble_button, Qt.MouseButton.LeftButton)
    dialog = tab.ensemble_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=3_000)
    for i in range(dialog.runs.count()):
        item = dialog.runs.item(i)
        ticked = any(str(run) == item.data(Qt.ItemDataRole.UserRole) for run in runs)
        item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
    dialog.mean.setCurrentIndex(dialog.mean.findData(mean))
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.session.summary is not None and tab.generate_button.isEnabled(), timeout=10_000)


def offered(qtbot, tab) -> list[str]:
    qtbot.mouseClick(tab.ensemble_button, Qt.MouseButton.LeftButton)
    dialog = tab.ensemble_dialog
    names = [dialog.runs.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dialog.runs.count())]
    dialog.reject()
    return names


def test_only_runs_with_the_runs_tokenizer_are_offered(qtbot, runs, tmp_path):
    first, second, other = runs
    tab = open_tab(qtbot, first, tmp_path / "prompts")
    assert sorted(offered(qtbot, tab)) == sorted([str(first), str(second)])  # the run itself too, not `other`
    tab.set_run(other)
    qtbot.waitUntil(tab.generate_button.isEnabled, timeout=10_000)
    assert offered(qtbot, tab) == [str(other)]


def test_a_run_with_another_tokenizer_is_refused_with_the_engines_message(qtbot, runs, tmp_path):
    first, _, other = runs
    tab = open_tab(qtbot, first, tmp_path / "prompts")
    tab.session.ensemble = [other]  # as if its checkpoint had not recorded its tokenizer, so the dialog offered it
    tab._load(0)
    qtbot.waitUntil(lambda: tab.message.isVisible() and tab.generate_button.isEnabled(), timeout=10_000)
    assert "another tokenizer" in tab.message.text() and "used alone" in tab.message.text()
    assert tab.session.summary.members == [] and tab.session.ensemble == []


@pytest.mark.parametrize("mean", ["probability", "log-probability"])
def test_scoring_with_an_ensemble_shows_each_members_perplexity_and_the_ensembles(qtbot, runs, tmp_path, mean):
    first, second, _ = runs
    tab = open_tab(qtbot, first, tmp_path / "prompts")
    choose_ensemble(qtbot, tab, [second], mean)
    assert "Ensemble of 2 runs" in tab.summary_label.text()
    qtbot.mouseClick(tab.score_mode_button, Qt.MouseButton.LeftButton)
    tab.score_edit.setPlainText(TEXT)
    qtbot.mouseClick(tab.score_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "perplexity" in tab.score_summary.text(), timeout=10_000)

    table = tab.score_table
    assert table.isVisible() and table.rowCount() == 3
    perplexity = [float(table.item(i, 2).text()) for i in range(3)]
    for i, run in enumerate((first, second)):
        model, tokenizer, _ = load_trained_model(run)
        assert table.item(i, 0).text().startswith("tiny-transformer")
        assert perplexity[i] == pytest.approx(score_text(model, tokenizer, TEXT).perplexity, abs=1e-3)
    ensemble, tokenizer, _ = load_ensemble([first, second], mean=mean)
    expected = score_text(ensemble, tokenizer, TEXT)
    assert table.item(2, 0).text().startswith("ensemble")
    assert perplexity[2] == pytest.approx(expected.perplexity, abs=1e-3)
    assert f"{expected.perplexity:.2f}" in tab.score_summary.text()  # the tokens coloured are the ensemble's

    choose_ensemble(qtbot, tab, [])  # none ticked: the run alone, and no table
    qtbot.mouseClick(tab.score_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.score_table.isVisible() and tab.score_button.isEnabled(), timeout=10_000)


def test_an_ensemble_of_a_run_with_itself_generates_the_runs_own_text(qtbot, runs, tmp_path):
    tab = open_tab(qtbot, runs[0], tmp_path / "prompts")
    # Past the context (16), so the members' windows slide. No repetition penalty: it acts on logits, and an
    # ensemble's are log-probabilities, all negative, which the penalty scales otherwise (docs/distill.md)
    set_settings(tab, max_tokens=40, repetition=1.0)
    tab.prompt_edit.setPlainText("ROMEO:")
    generate_and_wait(qtbot, tab)
    alone = tab.output_text()
    choose_ensemble(qtbot, tab, [runs[0]])
    assert tab.session.summary.members == [runs[0], runs[0]]
    generate_and_wait(qtbot, tab)
    assert tab.output_text() == alone and "seed 3" in tab.status_label.text()


def test_an_int8_copy_generates_in_the_tab_when_models_load_onto_another_device(qtbot, runs, tmp_path, monkeypatch):
    """Where a GPU exists the tab loads models onto it; an int8 copy stays on the CPU, and its inputs go there.
    The meta device stands in for the GPU: an input sent there could not be computed with."""
    import app.generate.worker

    copy = quantize_run(runs[0], tmp_path / "int8")
    monkeypatch.setattr(app.generate.worker, "pick_device", lambda _: torch.device("meta"))
    tab = open_tab(qtbot, copy, tmp_path / "prompts")
    assert "CPU" in tab.summary_label.text()
    set_settings(tab, max_tokens=30)
    tab.prompt_edit.setPlainText("ROMEO:")
    generate_and_wait(qtbot, tab)
    model, tokenizer, _ = load_trained_model(copy)
    expected = generate(model, tokenizer, "ROMEO:", SamplingSettings(30, 0.9, 10, 0.95, 1.1, seed=3))
    assert tab.output_text() == "ROMEO:" + "".join(token.text for token in expected)
    assert not tab.message.isVisible()
