"""The Generate tab's session (app/generate/session.py), chat transcript (chat.py) and saved prompts (prompts.py)
on their own: no widget, no worker, no model; the worker's answers are written by hand."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.generate.chat import ChatTranscript, Speakers
from app.generate.prompts import PromptLibrary, PromptLibraryError
from app.generate.session import (CHAT, CHECKPOINTS, FILL, GENERATE, SCORE, SECOND, Actions, Candidate, CandidateRow,
                                  GenerationFinished, GenerationSession, GenerationStarted, JobFailed, ModelSummary,
                                  TokenInfo, candidate_rows, checkpoints_to_offer, describe_sampling, describe_score)
from lmcore.generation import PRESETS, SamplingSettings
from lmcore.runs import RunFolder

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = SamplingSettings(max_new_tokens=5, seed=7)


def summary(run_dir, slot=0) -> ModelSummary:
    return ModelSummary(Path(run_dir), "best", "transformer", "a model", "best checkpoint", "char tokenizer", 16,
                        slot)


def tokens(text: str, first_id: int = 100) -> list[TokenInfo]:
    return [TokenInfo(first_id + i, c, 0.5, 1.0, []) for i, c in enumerate(text)]


def loaded_session(run_dir="runs/a", slot=0, session=None) -> GenerationSession:
    session = session or GenerationSession()
    session.select_run(Path(run_dir), slot)
    assert session.start_loading(slot)
    assert session.model_loaded(summary(run_dir, slot)) == "new run"
    return session


def generated(session: GenerationSession, prompt="AB", text="cde") -> None:
    """A whole generation from `prompt`, as the worker answers it."""
    [request] = session.generate(prompt, SETTINGS)
    assert request.prompt == prompt and request.settings is SETTINGS and request.view == GENERATE
    assert session.generation_started(GenerationStarted([1, 2], seed=7))
    session.tokens_received(GENERATE, tokens(text))
    session.generation_finished(GenerationFinished(len(text), 0.5, 0.01, "max tokens"))


def test_the_session_module_imports_no_qt():
    code = "import app.generate.session, sys; print([m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


NOTHING = Actions(generate=False, score=False, continue_output=False, stop=False, choose_checkpoint=False,
                  reload=False, send_output=False, copy=False, send_chat=False, side_by_side=True, fill=False,
                  ensemble=False)


def test_which_actions_each_state_allows():
    session = GenerationSession()
    assert session.actions() == NOTHING  # no run chosen
    session.select_run(Path("runs/a"))
    assert session.start_loading() and session.awaiting_model()
    loading = replace(NOTHING, choose_checkpoint=True, reload=True)
    assert session.actions() == loading
    session.model_loaded(summary("runs/a"))
    assert not session.awaiting_model()
    ready = replace(loading, generate=True, score=True, send_chat=True, ensemble=True)
    assert session.actions() == ready
    session.generate("AB", SETTINGS)
    assert session.actions() == replace(loading, stop=True, reload=False, side_by_side=False)
    session.generation_started(GenerationStarted([1, 2], 7))
    session.tokens_received(GENERATE, tokens("c"))
    session.generation_finished(GenerationFinished(1, 0.1, 0.1, "stopped"))
    assert session.actions() == replace(ready, continue_output=True, send_output=True, copy=True)
    session.start_scoring()
    assert session.actions() == replace(loading, reload=False, copy=True, side_by_side=False)


def test_an_encoder_fills_blanks_one_job_at_a_time():
    session = GenerationSession()
    session.select_run(Path("runs/bert"))
    session.start_loading()
    session.model_loaded(replace(summary("runs/bert"), family="encoder"))
    assert session.summary.fills_blanks and session.actions().fill
    session.start_filling()
    assert not session.actions().fill and not session.actions().reload and session.escape_action() is None
    session.blanks_filled()
    assert session.actions().fill
    session.start_filling()
    session.job_failed(JobFailed("The text has no [MASK]", FILL))
    assert session.job is None and session.actions().fill
    session.model_loaded(summary("runs/bert"))  # a model that continues text (reloaded) has no blanks to fill
    assert not session.summary.fills_blanks and not session.actions().fill


def test_copy_is_disabled_while_there_is_nothing_to_copy():
    session = loaded_session()
    assert not session.actions().copy
    session.generate("AB", SETTINGS)  # the prompt is not the output until the worker starts on it
    assert not session.actions().copy
    session.job_failed(JobFailed("no such character", GENERATE))
    assert not session.actions().copy
    generated(session, "AB", "")  # nothing generated (stopped at once): the prompt is still there to copy
    assert session.output_text() == "AB" and session.actions().copy
    session.select_run(Path("runs/b"))
    session.start_loading()
    session.model_loaded(summary("runs/b"))  # another run: the output is gone
    assert not session.actions().copy


def test_a_generation_leaves_the_output_and_its_status_line():
    session = loaded_session()
    generated(session, "AB", "cde")
    assert session.job is None and session.output_text() == "ABcde"
    assert session.ids == [1, 2, 100, 101, 102] and [t.text for t in session.generated] == list("cde")
    done = GenerationFinished(tokens=40, seconds=2.0, first_token_seconds=0.012, reason="stop string")
    assert (session.generation_finished(done)
            == "40 tokens · 20 tok/s · first token 12 ms · seed 7 · stop string found")
    stopped = GenerationFinished(tokens=0, seconds=0.0, first_token_seconds=None, reason="stopped")
    assert session.generation_finished(stopped) == "0 tokens · seed 7 · stopped"


def test_continue_sends_the_ids_and_the_tokens_go_on_after_the_output():
    session = loaded_session()
    generated(session, "AB", "cde")
    [request] = session.continue_output(SETTINGS)
    assert request.prompt == [1, 2, 100, 101, 102] and request.prompt is not session.ids
    assert not session.generation_started(GenerationStarted(request.prompt, seed=9))  # the output is kept
    session.tokens_received(GENERATE, tokens("fg", first_id=200))
    assert session.output_text() == "ABcdefg" and session.ids == [1, 2, 100, 101, 102, 200, 201]
    assert session.seed == 9
    generated(session, "X", "y")  # a new prompt starts a new output
    assert session.output_text() == "Xy" and session.ids == [1, 2, 100]


def test_a_new_prompt_keeps_the_output_until_the_worker_starts_on_it():
    session = loaded_session()
    generated(session, "AB", "cde")
    session.pin(GENERATE, 1)
    session.generate("", SETTINGS)
    assert session.output_text() == "ABcde" and session.pinned == 1  # e.g. a bad prompt fails before `started`
    session.job_failed(JobFailed("the prompt is empty", GENERATE))
    assert session.job is None and session.output_text() == "ABcde"


def test_a_model_of_another_run_clears_the_outputs_and_a_stale_one_is_ignored():
    session = loaded_session("runs/a")
    generated(session)
    session.text_scored(tokens("xyz"))
    session.start_loading()  # reload: the same run's tokenizer, the outputs stay
    assert session.model_loaded(summary("runs/a")) == "same run" and session.output_text() == "ABcde"
    session.select_run(Path("runs/b"))
    session.start_loading()
    assert session.model_loaded(summary("runs/a")) == "stale" and session.summary is None
    assert session.model_loaded(summary("runs/b")) == "new run"
    assert (session.output_text(), session.ids, session.generated, session.scored) == ("", [], [], [])
    assert session.loaded_runs[0] == Path("runs/b") and session.summary.run_dir == Path("runs/b")


def test_no_run_means_nothing_to_load_and_a_failed_load_leaves_no_model():
    session = GenerationSession()
    assert not session.start_loading() and not session.awaiting_model()
    session.select_run(Path("runs/a"))
    session.start_loading()
    session.job_failed(JobFailed("no checkpoint"))  # the failure was the load's
    assert session.awaiting_model() and session.job is None


def test_pinning_hovering_and_escape():
    session = loaded_session()
    generated(session, "AB", "cdef")
    assert session.hovered(GENERATE, 2).text == "e" and session.hovered(GENERATE, 4) is None
    assert session.hovered(GENERATE, -1) is None and session.hovered(SCORE, 0) is None
    assert session.pin(GENERATE, 9) is None and session.pinned is None  # off the tokens
    assert session.pin(GENERATE, session.click_target(GENERATE, 1)).text == "d" and session.pinned == 1
    assert session.pinned_token().text == "d" and session.pinned_view == GENERATE
    assert session.hovered(GENERATE, 2) is None  # pinned: a hover shows nothing else
    assert session.escape_action() == "unpin"
    assert session.click_target(GENERATE, 1) is None and session.click_target(GENERATE, 3) == 3
    assert session.click_target(SECOND, 1) == 1  # the same index in another view is another token
    session.generate("AB", SETTINGS)
    assert session.escape_action() == "stop"
    session.generation_started(GenerationStarted([1], 7))
    assert session.pinned is None  # a new output: the pinned token is gone
    session.generation_finished(GenerationFinished(0, 0.1, None, "stopped"))
    assert session.escape_action() is None


def test_a_pin_belongs_to_its_view():
    session = loaded_session()
    generated(session, "AB", "cd")
    session.start_scoring()
    session.text_scored(tokens("wxyz"))
    assert session.tokens(SCORE) == session.scored and session.pin(SCORE, 3).text == "z"
    assert session.pin(GENERATE, 3) is None and session.pin(GENERATE, 1).text == "d"
    session.start_scoring()
    session.text_scored(tokens("uv"))  # new scored text leaves the pin in the output alone
    assert (session.pinned_view, session.pinned) == (GENERATE, 1)


def test_the_checkpoints_offered_are_those_the_run_has(tmp_path):
    folder = RunFolder(tmp_path)
    assert checkpoints_to_offer(tmp_path, "last") == (list(CHECKPOINTS), "last")  # none yet: all, to say why
    path = folder.checkpoint_path("last")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    assert checkpoints_to_offer(tmp_path, "best") == (["last"], "last")
    folder.checkpoint_path("best").write_bytes(b"")
    assert checkpoints_to_offer(tmp_path, "last") == (["best", "last"], "last")


def test_the_score_totals():
    result = SimpleNamespace(mean_loss=1.5, perplexity=4.4817, bits_per_char=2.1640, total_loss=30.0, predicted=20)
    assert describe_score(result) == ("loss <b>1.500</b> nats/token · perplexity <b>4.48</b> · <b>2.164</b> "
                                      "bits/char<br>total 30.0 nats over 20 predicted tokens")



# ---- side by side ------------------------------------------------------------------------------------------------
def side_by_side_session() -> GenerationSession:
    session = loaded_session("runs/a")
    session.side_by_side = True
    assert not session.actions().generate  # the second column's model is not loaded yet
    return loaded_session("runs/b", slot=1, session=session)


def test_side_by_side_pairs_two_generations_with_one_prompt_and_one_seed():
    session = side_by_side_session()
    assert session.actions().generate
    first, second = session.generate("AB", replace(SETTINGS, seed=None))
    assert (first.view, first.slot, second.view, second.slot) == (GENERATE, 0, SECOND, 1)
    assert first.prompt == second.prompt == "AB"
    assert first.settings.seed is not None and first.settings == second.settings  # one seed, drawn for both
    for view, text in ((GENERATE, "cd"), (SECOND, "xyz")):
        assert session.generation_started(GenerationStarted([1, 2], first.settings.seed, view))
        session.tokens_received(view, tokens(text))
        assert session.job == GENERATE and session.actions().stop  # until both columns are done
        session.generation_finished(GenerationFinished(len(text), 0.1, 0.01, "max tokens", view))
    assert session.job is None and not session.pending
    assert (session.outputs[GENERATE].text(), session.outputs[SECOND].text()) == ("ABcd", "ABxyz")

    continued = session.continue_output(SETTINGS)  # each column goes on from its own ids
    assert [(r.view, r.prompt) for r in continued] == [(GENERATE, [1, 2, 100, 101]), (SECOND, [1, 2, 100, 101, 102])]
    assert not session.generation_started(GenerationStarted([], 7, SECOND))
    session.job_failed(JobFailed("out of memory", SECOND, slot=1))  # one column failing ends only its part
    assert session.job == GENERATE and session.pending == {GENERATE}
    session.generation_finished(GenerationFinished(0, 0.1, None, "stopped", GENERATE))
    assert session.job is None


def test_the_second_columns_model_is_its_own():
    session = side_by_side_session()
    session.generate("AB", SETTINGS)
    for view in (GENERATE, SECOND):
        session.generation_started(GenerationStarted([1], 7, view))
        session.tokens_received(view, tokens("cd"))
        session.generation_finished(GenerationFinished(2, 0.1, 0.01, "max tokens", view))
    session.pin(SECOND, 1)
    session.select_run(Path("runs/a"), 1)  # another run for the second column: only its output goes
    session.start_loading(1)
    assert session.awaiting_model(1) and not session.awaiting_model(0) and not session.actions().generate
    assert session.model_loaded(summary("runs/b", 1)) == "stale"
    assert session.model_loaded(summary("runs/a", 1)) == "new run"  # the first column's run, in the second
    assert session.outputs[SECOND].tokens == [] and session.outputs[GENERATE].text() == "ABcd"
    assert session.pinned is None and session.actions().continue_output is False  # the second has nothing yet
    session.side_by_side = False
    assert session.actions().continue_output and [r.view for r in session.generate("A", SETTINGS)] == [GENERATE]


# ---- the inspector's distributions ------------------------------------------------------------------------------
def test_the_inspector_rows_pair_the_sampled_distribution_with_the_raw_one():
    raw = [Candidate(i, f"t{i}", p) for i, p in enumerate([0.4, 0.2, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01])]
    token = TokenInfo(1, "t1", 0.2, 1.5, raw, sampled_probability=0.3,
                      sampled_candidates=[Candidate(0, "t0", 0.6), Candidate(1, "t1", 0.3), Candidate(2, "t2", 0.1)],
                      sampling="temperature 0.5 · top-k 3")
    assert candidate_rows(token, sampled=True) == [CandidateRow("t0", 0.6, False, 0.4),
                                                   CandidateRow("t1", 0.3, True, 0.2),
                                                   CandidateRow("t2", 0.1, False, 0.1)]
    rows = candidate_rows(token, sampled=False)
    assert [row.probability for row in rows] == [c.probability for c in raw] and rows[1].chosen
    assert [row.other for row in rows] == [0.6, 0.3, 0.1] + [0.0] * 7  # three tokens listed: the rest ruled out
    others = [Candidate(100 + i, "u", 0.05) for i in range(10)]  # ten listed: the rest are less likely, not 0
    assert candidate_rows(replace(token, candidates=others), sampled=True)[0].other is None
    scored = TokenInfo(1, "t1", 0.2, 1.5, raw, loss=1.6)  # scored text: the raw distribution alone
    assert all(row.other is None for row in candidate_rows(scored, sampled=False))


@pytest.mark.parametrize("settings, text", [
    (SamplingSettings(temperature=0.3, top_k=3), "temperature 0.3 · top-k 3"),
    (PRESETS["precise"], "temperature 0.5 · top-k 20 · top-p 0.9 · repetition penalty 1.1"),
    (SamplingSettings(temperature=1.0), "temperature 1"),
    (SamplingSettings(greedy=True, top_k=5, repetition_penalty=1.2), "greedy · repetition penalty 1.2"),
])
def test_the_settings_that_shaped_a_distribution_are_named(settings, text):
    assert describe_sampling(settings) == text


# ---- chat ---------------------------------------------------------------------------------------------------------
def test_a_chat_turn_asks_for_the_reply_and_cuts_it_where_the_user_would_speak_next():
    session = loaded_session()
    speakers = Speakers("ROMEO", "JULIET")
    [request] = session.send_chat("Good night", speakers, replace(SETTINGS, stop=["THE END"]))
    assert request.view == CHAT and request.prompt == "ROMEO: Good night\nJULIET:"
    assert request.settings.stop == ["THE END", "\nROMEO:"] and SETTINGS.stop == []
    assert session.chat.text() == ""  # the turn joins the transcript when the worker starts on it
    assert session.generation_started(GenerationStarted([1, 2, 3], 7, CHAT))
    assert session.tokens_received(CHAT, tokens(" Sweet")) == 6
    session.tokens_received(CHAT, tokens("!\nROMEO:"))
    session.pin(CHAT, 10)  # a token of the stop string, which is about to go
    assert session.generation_finished(GenerationFinished(13, 0.1, 0.01, "stop string", CHAT)).endswith(
        "stop string found")
    assert session.chat.text() == "ROMEO: Good night\nJULIET: Sweet!" and len(session.chat.tokens()) == 7
    assert session.pinned is None and session.job is None

    [second] = session.send_chat("Parting", speakers, SETTINGS)  # the history is the prompt
    assert second.prompt == "ROMEO: Good night\nJULIET: Sweet!\nROMEO: Parting\nJULIET:"
    session.job_failed(JobFailed("an unknown character", CHAT))  # a refused turn leaves the transcript as it was
    assert session.chat.text() == "ROMEO: Good night\nJULIET: Sweet!" and session.job is None


def test_a_reply_without_the_stop_string_is_kept_whole():
    chat = ChatTranscript()
    assert chat.begin_turn("hi", Speakers()) == "User: hi\nBot:"
    chat.reply_started()
    chat.add(tokens(" hello\nUs"))  # max tokens reached before the user's whole prefix
    chat.reply_finished()
    assert chat.text() == "User: hi\nBot: hello\nUs"
    assert [part if isinstance(part, str) else "".join(t.text for t in part) for part in chat.parts] == [
        "User: hi\nBot:", " hello\nUs"]


def test_a_stop_string_inside_a_token_cuts_the_reply_before_that_token():
    chat = ChatTranscript()
    chat.begin_turn("hi", Speakers())
    chat.reply_started()
    chat.add([TokenInfo(1, " fine", 0.5, 1.0, []), TokenInfo(2, ".\nUser", 0.5, 1.0, []),
              TokenInfo(3, ":", 0.5, 1.0, [])])
    chat.reply_finished()
    assert chat.text() == "User: hi\nBot: fine"


# ---- saved prompts ----------------------------------------------------------------------------------------------
def test_saved_prompts_are_read_back_from_their_json_file(tmp_path):
    library = PromptLibrary(tmp_path / "config")
    assert library.names() == [] and library.problem is None
    assert library.save("  balcony ", "JULIET:\nO Romeo") == "balcony"
    library.save("Abbey", "FRIAR LAURENCE:")
    library.save("balcony", "JULIET:\nO Romeo, Romeo!")  # the same name replaces it
    again = PromptLibrary(tmp_path / "config")
    assert again.names() == ["Abbey", "balcony"] and again.text("balcony") == "JULIET:\nO Romeo, Romeo!"
    assert json.loads((tmp_path / "config" / "prompts.json").read_text(encoding="utf-8")) == {
        "version": 1, "prompts": {"balcony": "JULIET:\nO Romeo, Romeo!", "Abbey": "FRIAR LAURENCE:"}}
    again.delete("Abbey")
    assert PromptLibrary(tmp_path / "config").names() == ["balcony"]
    with pytest.raises(PromptLibraryError, match="Type a name"):
        again.save("  ", "text")


@pytest.mark.parametrize("content", ["{not json", '{"prompts": ["a list"]}', '{"prompts": {"a": 1}}'])
def test_a_prompt_file_that_cannot_be_read_is_reported_and_never_written_over(tmp_path, content):
    path = tmp_path / "prompts.json"
    path.write_text(content, encoding="utf-8")
    library = PromptLibrary(tmp_path)
    assert library.names() == [] and str(path) in library.problem and "fix or remove" in library.problem
    with pytest.raises(PromptLibraryError):
        library.save("new", "text")
    assert path.read_text(encoding="utf-8") == content
