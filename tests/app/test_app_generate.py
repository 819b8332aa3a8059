"""The Generate tab, driven through its real widgets: streaming, Stop and Continue, the token inspector,
score mode, inline errors, and the same text as `lmcore sample`."""
import math
import shutil
import time

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.generate.controls import SamplingControls
from app.generate.session import parse_stop_strings
from app.generate.tab import GenerateTab
from app.generate.worker import EMIT_INTERVAL
from engine_helpers import tiny_config
from lmcore.checkpoint import load_trained_model
from lmcore.cli import main as lmcore_main
from lmcore.generation import SamplingSettings, generate, score_text
from lmcore.trainer import Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path_factory.mktemp("gen-tab"), max_steps=20,
                                      eval_interval=10))
    assert trainer.run() == "finished"
    return trainer.folder.path


def open_tab(qtbot, run_dir):
    tab = GenerateTab()
    qtbot.addWidget(tab)
    tab.resize(1200, 700)
    tab.show()
    qtbot.waitExposed(tab)
    tab.set_run(run_dir)
    qtbot.waitUntil(tab.generate_button.isEnabled, timeout=10_000)
    return tab


@pytest.fixture
def tab(qtbot, run_dir):
    return open_tab(qtbot, run_dir)


def set_settings(tab, max_tokens, seed=3, temperature=0.9, top_k=10, top_p=0.95, repetition=1.1):
    tab.controls.max_tokens_spin.setValue(max_tokens)
    tab.controls.temperature_spin.setValue(temperature)
    tab.controls.top_k_spin.setValue(top_k)
    tab.controls.top_p_spin.setValue(top_p)
    tab.controls.repetition_spin.setValue(repetition)
    tab.controls.random_seed_check.setChecked(False)
    tab.controls.seed_spin.setValue(seed)


def generate_and_wait(qtbot, tab, button=None):
    qtbot.mouseClick(button or tab.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.stop_button.isEnabled(), timeout=20_000)


def test_the_tab_shows_the_model_and_tokenizer_and_needs_a_run(tab):
    summary = tab.summary_label.text()
    assert "Transformer" in summary and "context 16" in summary and "char tokenizer" in summary
    assert "best checkpoint · step" in summary and tab.run_title.text().startswith("tiny-transformer")
    tab.set_run(None)
    assert not tab.generate_button.isEnabled() and "Pick a trained run" in tab.summary_label.text()


def test_the_streamed_text_is_what_lmcore_sample_prints(qtbot, tab, run_dir, capsys):
    set_settings(tab, max_tokens=60)
    qtbot.keyClicks(tab.prompt_edit, "ROMEO:")
    batches = []
    tab.worker.tokens.connect(batches.append)
    begin = time.perf_counter()
    generate_and_wait(qtbot, tab)
    elapsed = time.perf_counter() - begin

    assert lmcore_main(["sample", str(run_dir), "--prompt", "ROMEO:", "--seed", "3", "--max-new-tokens", "60",
                        "--temperature", "0.9", "--top-k", "10", "--top-p", "0.95",
                        "--repetition-penalty", "1.1"]) == 0
    assert capsys.readouterr().out == tab.output_text() + "\n"
    assert tab.output_view.toPlainText().replace("⏎", "") == tab.output_text()

    model, tokenizer, _ = load_trained_model(run_dir, "best")
    settings = SamplingSettings(60, 0.9, 10, 0.95, 1.1, seed=3)
    expected = [t.id for t in generate(model, tokenizer, "ROMEO:", settings)]
    assert [t.id for batch in batches for t in batch] == expected  # every token, in order
    assert len(batches) <= 2 + elapsed / EMIT_INTERVAL  # batched: the event loop is never flooded
    assert "60 tokens" in tab.status_label.text() and "seed 3" in tab.status_label.text()


def test_stop_works_mid_generation_and_continue_goes_on_from_there(qtbot, tab, run_dir):
    set_settings(tab, max_tokens=100_000)
    tab.prompt_edit.setPlainText("MENENIUS:")
    ticks = []
    timer = QTimer(interval=10, timeout=lambda: ticks.append(1))
    timer.start()
    qtbot.mouseClick(tab.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(tab.session.generated) >= 5, timeout=10_000)
    assert ticks and tab.stop_button.isEnabled() and not tab.generate_button.isEnabled()  # the GUI stays live
    qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.stop_button.isEnabled(), timeout=5_000)
    timer.stop()
    stopped_at = list(tab.session.ids)
    assert len(tab.session.generated) < 100_000 and "stopped" in tab.status_label.text()
    text_before = tab.output_text()

    tab.controls.max_tokens_spin.setValue(15)
    generate_and_wait(qtbot, tab, tab.continue_button)
    assert tab.session.ids[:len(stopped_at)] == stopped_at and len(tab.session.ids) == len(stopped_at) + 15
    assert tab.output_text().startswith(text_before)
    model, tokenizer, _ = load_trained_model(run_dir, "best")
    settings = SamplingSettings(15, 0.9, 10, 0.95, 1.1, seed=3)
    assert tab.session.ids[len(stopped_at):] == [t.id for t in generate(model, tokenizer, stopped_at, settings)]


def test_hovering_a_token_shows_its_candidates_and_clicking_pins_it(qtbot, tab):
    set_settings(tab, max_tokens=30)
    tab.prompt_edit.setPlainText("ROMEO:")
    generate_and_wait(qtbot, tab)
    view, inspector = tab.output_view, tab.inspector
    visible = [i for i, t in enumerate(tab.session.generated) if t.text.strip()]
    first, second = visible[2], visible[5]

    qtbot.mouseMove(view.viewport(), view.token_rect(first).center())
    qtbot.waitUntil(lambda: inspector.title.text().startswith(f"#{first} "), timeout=3_000)
    token = tab.session.generated[first]
    assert len(inspector.bars.rows) == 10
    chosen = [row for row in inspector.bars.rows if row[2]]
    if chosen:
        assert len(chosen) == 1 and chosen[0][1] == pytest.approx(token.probability)
    else:  # repetition penalty can pick a token outside the raw top 10: it is shown below them
        assert inspector.missing.isVisibleTo(tab)
    assert f"{token.probability:.4f}" in inspector.stats.text() and "entropy" in inspector.stats.text()

    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.token_rect(first).center())
    qtbot.waitUntil(lambda: inspector.pin_label.isVisibleTo(tab), timeout=3_000)
    qtbot.mouseMove(view.viewport(), view.token_rect(second).center())
    qtbot.wait(50)
    assert inspector.title.text().startswith(f"#{first} ")  # pinned: hovering elsewhere does not replace it
    qtbot.mouseClick(inspector.pin_label, Qt.MouseButton.LeftButton)
    assert not inspector.pin_label.isVisibleTo(tab)


def test_presets_fill_the_settings_and_editing_one_makes_them_custom(tab):
    tab.controls.preset_combo.setCurrentText("precise")
    assert (tab.controls.temperature_spin.value(), tab.controls.top_k_spin.value(), tab.controls.top_p_spin.value(),
            tab.controls.repetition_spin.value()) == (0.5, 20, 0.9, 1.1)
    tab.controls.temperature_spin.setValue(0.7)
    assert tab.controls.preset_combo.currentText() == "custom"
    tab.controls.greedy_check.setChecked(True)
    assert not tab.controls.temperature_spin.isEnabled() and tab.controls.settings().greedy
    tab.controls.random_seed_check.setChecked(True)
    assert tab.controls.settings().seed is None


def test_the_sampling_controls_say_once_per_edit_that_they_changed(qtbot):
    controls = SamplingControls()
    qtbot.addWidget(controls)
    changes = []
    controls.changed.connect(lambda: changes.append(controls.settings()))
    controls.preset_combo.setCurrentText("creative")
    controls.top_k_spin.setValue(7)
    controls.stop_edit.setText(r"\n\n")
    controls.random_seed_check.setChecked(True)
    assert [(s.temperature, s.top_k, s.stop, s.seed) for s in changes] == [
        (1.1, 0, [], 1337), (1.1, 7, [], 1337), (1.1, 7, ["\n\n"], 1337), (1.1, 7, ["\n\n"], None)]
    assert controls.preset_combo.currentText() == "custom" and not controls.seed_spin.isEnabled()
    controls.show_seed(42)  # a drawn seed is shown, so that unticking "random" repeats it
    controls.random_seed_check.setChecked(False)
    assert controls.settings().seed == 42


def test_stop_strings_are_comma_separated_with_escapes():
    assert parse_stop_strings(r"\n\n, THE END ,a\,b, ") == ["\n\n", "THE END", "a,b"]
    assert parse_stop_strings("") == []


def test_score_mode_colours_tokens_by_loss_and_reports_the_totals(qtbot, tab, run_dir):
    qtbot.mouseClick(tab.score_mode_button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(tab.score_edit, "First Citizen:")
    qtbot.keyClick(tab.score_edit, Qt.Key.Key_Return)
    qtbot.keyClicks(tab.score_edit, "Before we proceed any further, hear me speak.")
    text = "First Citizen:\nBefore we proceed any further, hear me speak."
    qtbot.mouseClick(tab.score_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "perplexity" in tab.score_summary.text(), timeout=10_000)
    model, tokenizer, _ = load_trained_model(run_dir, "best")
    result = score_text(model, tokenizer, text)
    summary = tab.score_summary.text()
    assert f"{result.perplexity:.2f}" in summary and f"{result.bits_per_char:.3f}" in summary
    assert len(tab.score_view.spans) == len(text)
    assert [t.loss for t in tab.session.scored[1:]] == pytest.approx([t.loss for t in result.tokens[1:]])
    qtbot.mouseMove(tab.score_view.viewport(), tab.score_view.token_rect(8).center())
    qtbot.waitUntil(lambda: "loss" in tab.inspector.stats.text(), timeout=3_000)
    assert math.exp(-tab.session.scored[8].loss) == pytest.approx(tab.session.scored[8].probability)


@pytest.mark.parametrize("prompt, words", [("", "prompt is empty"), ("Price: 5€", "'€'")])
def test_bad_prompts_get_an_inline_message(qtbot, tab, prompt, words):
    tab.prompt_edit.setPlainText(prompt)
    qtbot.mouseClick(tab.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(tab.message.isVisible, timeout=5_000)
    assert words in tab.message.text() and tab.generate_button.isEnabled()
    assert not any(isinstance(w, QMessageBox) for w in QApplication.topLevelWidgets())


def test_a_run_without_its_tokenizer_gets_an_inline_message(qtbot, run_dir, tmp_path):
    broken = shutil.copytree(run_dir, tmp_path / "broken")
    shutil.rmtree(broken / "tokenizer")
    tab = GenerateTab()
    qtbot.addWidget(tab)
    tab.set_run(broken)
    qtbot.waitUntil(lambda: not tab.message.isHidden(), timeout=10_000)
    assert "tokenizer" in tab.message.text() and "does not exist" in tab.message.text()
    assert not tab.generate_button.isEnabled()


def test_send_to_attention_emits_the_prompt_and_output(qtbot, tab):
    set_settings(tab, max_tokens=10)
    tab.prompt_edit.setPlainText("ROMEO:")
    generate_and_wait(qtbot, tab)
    with qtbot.waitSignal(tab.send_to_attention, timeout=1_000) as signal:
        qtbot.mouseClick(tab.attention_button, Qt.MouseButton.LeftButton)
    assert signal.args == [tab.output_text()] and signal.args[0].startswith("ROMEO:") and len(signal.args[0]) > 6
