"""The Generate tab, driven through its real widgets: streaming, Stop and Continue, the token inspector (sampled
and raw distributions), score mode, side by side, saved prompts, chat, inline errors, the same text as `lmcore
sample`, and the tab's width."""
import json
import math
import shutil
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.generate.controls import SamplingControls
from app.generate.session import SECOND, parse_stop_strings
from app.generate.tab import GenerateTab
from app.generate.worker import EMIT_INTERVAL
from engine_helpers import tiny_config
from lmcore.checkpoint import load_trained_model
from lmcore.cli import main as lmcore_main
from lmcore.generation import SamplingSettings, generate, score_text
from lmcore.runs import list_runs
from lmcore.trainer import Trainer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path_factory.mktemp("gen-tab"), max_steps=20,
                                      eval_interval=10))
    assert trainer.run() == "finished"
    return trainer.folder.path


@pytest.fixture(scope="module")
def second_run(run_dir, small_corpus):
    """Another run in the same runs folder, trained longer from another seed: it writes other text."""
    trainer = Trainer.new(tiny_config(small_corpus, run_dir.parent, max_steps=40, eval_interval=20, seed=11))
    assert trainer.run() == "finished"
    return trainer.folder.path


@pytest.fixture(scope="module")
def dialogue_run(tmp_path_factory):
    """A model trained on dialogue-shaped text ("User: ...\nBot: ..."): it learns to end a reply by starting the
    user's next turn."""
    folder = tmp_path_factory.mktemp("dialogue")
    turns = ["User: hello\nBot: hi there\n", "User: how are you\nBot: very well\n", "User: bye\nBot: farewell\n"]
    corpus = folder / "chat.txt"
    corpus.write_text("".join(turns[i % 3] for i in range(600)), encoding="utf-8")
    trainer = Trainer.new(tiny_config(corpus, folder / "runs", max_steps=200, eval_interval=100))
    assert trainer.run() == "finished"
    return trainer.folder.path


def open_tab(qtbot, run_dir, prompts_dir, size=(1200, 700)):
    tab = GenerateTab(prompts_dir=prompts_dir)
    qtbot.addWidget(tab)
    tab.resize(*size)
    tab.show()
    qtbot.waitExposed(tab)
    tab.set_run(run_dir)
    qtbot.waitUntil(tab.generate_button.isEnabled, timeout=10_000)
    return tab


@pytest.fixture
def tab(qtbot, run_dir, tmp_path):
    return open_tab(qtbot, run_dir, tmp_path / "prompts")


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
    tab.worker.tokens.connect(lambda view, batch: batches.append(batch))
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
    assert inspector.showing_sampled()  # what the token was drawn from, first
    chosen = [row for row in inspector.bars.rows if row.chosen]
    assert len(chosen) == 1 and chosen[0].probability == pytest.approx(token.sampled_probability)
    qtbot.mouseClick(inspector.raw_button, Qt.MouseButton.LeftButton)
    assert not inspector.showing_sampled() and len(inspector.bars.rows) == 10
    chosen = [row for row in inspector.bars.rows if row.chosen]
    if chosen:
        assert len(chosen) == 1 and chosen[0].probability == pytest.approx(token.probability)
    else:  # repetition penalty can pick a token outside the raw top 10: it is shown below them
        assert inspector.missing.isVisibleTo(tab)
    assert f"{token.probability:.4f}" in inspector.stats.text() and "entropy" in inspector.stats.text()
    assert f"{token.sampled_probability:.4f}" in inspector.stats.text()

    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.token_rect(first).center())
    qtbot.waitUntil(lambda: inspector.pin_label.isVisibleTo(tab), timeout=3_000)
    qtbot.mouseMove(view.viewport(), view.token_rect(second).center())
    qtbot.wait(50)
    assert inspector.title.text().startswith(f"#{first} ")  # pinned: hovering elsewhere does not replace it
    qtbot.mouseClick(inspector.pin_label, Qt.MouseButton.LeftButton)
    assert not inspector.pin_label.isVisibleTo(tab)


def pin_token(qtbot, tab, view, index):
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.token_rect(index).center())
    qtbot.waitUntil(lambda: tab.inspector.title.text().startswith(f"#{index} "), timeout=3_000)


def test_the_inspector_shows_the_distribution_the_token_was_drawn_from_and_the_raw_one(qtbot, tab, run_dir):
    set_settings(tab, max_tokens=40, temperature=0.3, top_k=3, top_p=1.0, repetition=1.0)
    tab.prompt_edit.setPlainText("ROMEO:")
    generate_and_wait(qtbot, tab)
    inspector = tab.inspector
    model, tokenizer, _ = load_trained_model(run_dir, "best")
    engine = list(generate(model, tokenizer, "ROMEO:", SamplingSettings(40, 0.3, 3, 1.0, 1.0, seed=3)))
    # A position where the model hesitates, so that temperature and top-k visibly reshape its distribution
    index = max((i for i, t in enumerate(tab.session.generated) if t.text.strip()),
                key=lambda i: tab.session.generated[i].entropy)
    pin_token(qtbot, tab, tab.output_view, index)

    sampled = inspector.bars.rows
    assert 1 <= len(sampled) <= 3 and sum(row.probability for row in sampled) == pytest.approx(1.0, abs=1e-4)
    assert [(row.text, row.probability) for row in sampled] == pytest.approx(
        [(tokenizer.token_text(i), p) for i, p in engine[index].sampled_candidates])
    raw = [row.other for row in sampled]  # each candidate's raw probability, drawn beside its bar
    assert all(r is not None for r in raw) and sampled[0].probability > raw[0] + 0.05
    assert sum(raw) < 0.99
    assert "Sampled with temperature 0.3 · top-k 3" == inspector.sampling.text()

    qtbot.mouseClick(inspector.raw_button, Qt.MouseButton.LeftButton)
    rows = inspector.bars.rows
    assert len(rows) == 10 and [row.probability for row in rows[:len(raw)]] == pytest.approx(raw)
    assert [row.other for row in rows[len(sampled):]] == [0.0] * (10 - len(sampled))  # ruled out by top-k
    qtbot.mouseClick(inspector.sampled_button, Qt.MouseButton.LeftButton)
    assert inspector.bars.rows == sampled


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
    # Scored text has only the model's raw distribution: no sampled one, nothing beside the bars
    assert not tab.inspector.distribution_row.isVisibleTo(tab) and not tab.inspector.showing_sampled()
    assert len(tab.inspector.bars.rows) == 10 and all(row.other is None for row in tab.inspector.bars.rows)


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
    tab = GenerateTab(prompts_dir=tmp_path)
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


def choose_second_run(qtbot, tab, run, checkpoint="best"):
    combo = tab.second_run_combo
    combo.setCurrentIndex(combo.findData(str(run)))
    tab.second_checkpoint_combo.setCurrentText(checkpoint)
    qtbot.waitUntil(lambda: tab.session.summaries[1] is not None and tab.generate_button.isEnabled(), timeout=10_000)
    assert tab.session.summaries[1].run_dir == run


def test_side_by_side_generates_from_two_runs_with_the_same_prompt_and_seed(qtbot, tab, run_dir, second_run):
    set_settings(tab, max_tokens=25)
    tab.prompt_edit.setPlainText("ROMEO:")
    assert not tab.second_view.isVisibleTo(tab)
    qtbot.mouseClick(tab.side_by_side_check, Qt.MouseButton.LeftButton)
    assert tab.second_view.isVisibleTo(tab)
    offered = [Path(tab.second_run_combo.itemData(i)) for i in range(tab.second_run_combo.count())]
    assert sorted(offered) == sorted(info.path for info in list_runs(run_dir.parent)) and len(offered) == 2
    assert tab.session.runs[1] == second_run  # at first, the other run of the folder

    choose_second_run(qtbot, tab, run_dir)  # the same run and checkpoint: the same text
    generate_and_wait(qtbot, tab)
    first, second = tab.session.outputs["generate"], tab.session.outputs[SECOND]
    assert len(first.tokens) == len(second.tokens) == 25 and first.text() == second.text()
    assert tab.second_view.toPlainText() == tab.output_view.toPlainText()
    assert "seed 3" in tab.status_label.text() and "seed 3" in tab.second_status.text()

    choose_second_run(qtbot, tab, second_run)
    tab.controls.random_seed_check.setChecked(True)  # one seed is drawn for both columns
    generate_and_wait(qtbot, tab)
    seed = tab.session.seed
    assert f"seed {seed}" in tab.status_label.text() and f"seed {seed}" in tab.second_status.text()
    settings = SamplingSettings(25, 0.9, 10, 0.95, 1.1, seed=seed)
    for run, view in ((run_dir, "generate"), (second_run, SECOND)):
        model, tokenizer, _ = load_trained_model(run, "best")
        expected = [t.id for t in generate(model, tokenizer, "ROMEO:", settings)]
        assert tab.session.outputs[view].ids == tokenizer.encode("ROMEO:") + expected
    assert tab.session.outputs["generate"].text() != tab.session.outputs[SECOND].text()
    assert tab.second_view.toPlainText().replace("⏎", "") == tab.session.outputs[SECOND].text()

    # Hover and pin work in the second column as in the first
    index = next(i for i, t in enumerate(tab.session.outputs[SECOND].tokens) if t.text.strip())
    pin_token(qtbot, tab, tab.second_view, index)
    assert tab.session.pinned_view == SECOND and tab.inspector.pin_label.isVisibleTo(tab)
    assert tab.inspector.title.text().endswith(f"“{tab.session.outputs[SECOND].tokens[index].text}”")
    other = next(i for i, t in enumerate(tab.session.generated) if t.text.strip())
    pin_token(qtbot, tab, tab.output_view, other)  # pinning in one column unpins the other's
    assert tab.session.pinned_view == "generate" and tab.second_view._pinned is None


def test_a_saved_prompt_is_there_when_the_tab_is_opened_again(qtbot, run_dir, tmp_path):
    tab = open_tab(qtbot, run_dir, tmp_path)
    assert not tab.save_prompt_button.isEnabled() and tab.prompts_combo.count() == 0
    tab.prompt_edit.setPlainText("JULIET:\nO Romeo, Romeo!")
    qtbot.keyClicks(tab.prompts_combo.lineEdit(), "balcony")
    qtbot.mouseClick(tab.save_prompt_button, Qt.MouseButton.LeftButton)
    tab.prompt_edit.setPlainText("KING RICHARD:")
    tab.prompts_combo.setEditText("king")
    qtbot.mouseClick(tab.save_prompt_button, Qt.MouseButton.LeftButton)
    saved = json.loads((tmp_path / "prompts.json").read_text(encoding="utf-8"))
    assert saved["prompts"] == {"balcony": "JULIET:\nO Romeo, Romeo!", "king": "KING RICHARD:"}
    tab.shutdown()

    again = open_tab(qtbot, run_dir, tmp_path)
    combo = again.prompts_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["balcony", "king"]
    assert again.prompt_edit.toPlainText() == ""
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # picks the first saved prompt, as choosing it from the list does
    assert combo.currentText() == "balcony" and again.prompt_edit.toPlainText() == "JULIET:\nO Romeo, Romeo!"
    assert again.delete_prompt_button.isEnabled()
    qtbot.mouseClick(again.delete_prompt_button, Qt.MouseButton.LeftButton)
    assert json.loads((tmp_path / "prompts.json").read_text(encoding="utf-8"))["prompts"] == {
        "king": "KING RICHARD:"}
    assert [combo.itemText(i) for i in range(combo.count())] == ["king"]


def test_chat_builds_the_transcript_and_each_reply_stops_at_the_users_next_turn(qtbot, dialogue_run, tmp_path):
    tab = open_tab(qtbot, dialogue_run, tmp_path)
    set_settings(tab, max_tokens=60)
    tab.controls.greedy_check.setChecked(True)
    qtbot.mouseClick(tab.chat_mode_button, Qt.MouseButton.LeftButton)
    assert tab.pages.currentIndex() == 2 and (tab.user_edit.text(), tab.bot_edit.text()) == ("User", "Bot")
    requests = []
    tab._generate_requested.connect(requests.append)
    for message in ("hello", "bye"):
        qtbot.keyClicks(tab.message_edit, message)
        qtbot.keyClick(tab.message_edit, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not tab.stop_button.isEnabled(), timeout=20_000)
        assert tab.message_edit.text() == "" and "stop string found" in tab.chat_status.text()

    first, second = requests
    assert first.prompt == "User: hello\nBot:" and "\nUser:" in first.settings.stop
    transcript = tab.session.chat.text()
    assert second.prompt.startswith(first.prompt) and second.prompt.endswith("\nUser: bye\nBot:")
    assert transcript.startswith(second.prompt)  # the history is the next prompt
    model, tokenizer, _ = load_trained_model(dialogue_run, "best")
    reply = "".join(t.text for t in generate(model, tokenizer, first.prompt, first.settings))
    assert reply.endswith("\nUser:")  # the model starts the user's turn; the chat cuts it off
    assert second.prompt == first.prompt + reply[:-len("\nUser:")] + "\nUser: bye\nBot:"
    assert not transcript.endswith("\nUser:") and transcript.count("User:") == transcript.count("Bot:") == 2
    assert tab.chat_view.toPlainText().replace("⏎", "") == transcript
    qtbot.keyClicks(tab.message_edit, "hello!")  # a character the model never saw: the turn is refused
    qtbot.keyClick(tab.message_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(tab.message.isVisible, timeout=5_000)
    assert "'!'" in tab.message.text() and tab.message_edit.text() == "hello!"
    assert tab.session.chat.text() == transcript and tab.send_button.isEnabled()
    index = len(tab.session.chat.tokens()) - 1
    pin_token(qtbot, tab, tab.chat_view, index)
    assert tab.session.pinned_view == "chat"
    qtbot.mouseClick(tab.new_chat_button, Qt.MouseButton.LeftButton)
    assert tab.session.chat.text() == "" and tab.chat_view.toPlainText() == ""
    assert tab.session.pinned is None


def test_copy_is_enabled_only_with_an_output_to_copy(qtbot, tab):
    assert not tab.copy_button.isEnabled()
    tab.prompt_edit.setPlainText("ROMEO:")
    assert not tab.copy_button.isEnabled()  # a prompt alone is not an output
    set_settings(tab, max_tokens=5)
    generate_and_wait(qtbot, tab)
    assert tab.copy_button.isEnabled()
    qtbot.mouseClick(tab.copy_button, Qt.MouseButton.LeftButton)
    assert QApplication.clipboard().text() == tab.output_text() and len(tab.output_text()) > len("ROMEO:")


@pytest.mark.parametrize("mode", ["generate", "side by side", "chat"])
def test_the_tab_fits_a_1024_pixel_window(qtbot, tab, second_run, mode):
    """The window gives the tab what the runs browser leaves of 1024 pixels; the tab must not need more than
    1000 in any of its modes (tests/app/test_app_main_window.py checks the window)."""
    if mode == "side by side":
        qtbot.mouseClick(tab.side_by_side_check, Qt.MouseButton.LeftButton)
    elif mode == "chat":
        qtbot.mouseClick(tab.chat_mode_button, Qt.MouseButton.LeftButton)
    assert tab.minimumSizeHint().width() <= 1000
