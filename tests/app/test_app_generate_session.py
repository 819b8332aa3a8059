"""The Generate tab's session (app/generate/session.py) on its own: no widget, no worker, no model; the worker's
answers are written by hand."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from app.generate.session import (CHECKPOINTS, GENERATE, SCORE, Actions, GenerationFinished, GenerationSession,
                                  GenerationStarted, ModelSummary, TokenInfo, checkpoints_to_offer, describe_score)
from lmcore.generation import SamplingSettings
from lmcore.runs import RunFolder

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = SamplingSettings(max_new_tokens=5, seed=7)


def summary(run_dir) -> ModelSummary:
    return ModelSummary(Path(run_dir), "best", "transformer", "a model", "best checkpoint", "char tokenizer", 16)


def tokens(text: str, first_id: int = 100) -> list[TokenInfo]:
    return [TokenInfo(first_id + i, c, 0.5, 1.0, []) for i, c in enumerate(text)]


def loaded_session(run_dir="runs/a") -> GenerationSession:
    session = GenerationSession()
    session.select_run(Path(run_dir))
    assert session.start_loading()
    assert session.model_loaded(summary(run_dir)) == "new run"
    return session


def generated(session: GenerationSession, prompt="AB", text="cde") -> None:
    """A whole generation from `prompt`, as the worker answers it."""
    request = session.generate(prompt, SETTINGS)
    assert request.prompt == prompt and request.settings is SETTINGS
    assert session.generation_started(GenerationStarted([1, 2], seed=7))
    session.tokens_received(tokens(text))
    session.generation_finished(GenerationFinished(len(text), 0.5, 0.01, "max tokens"))


def test_the_session_module_imports_no_qt():
    code = "import app.generate.session, sys; print([m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_which_actions_each_state_allows():
    session = GenerationSession()
    none = Actions(generate=False, score=False, continue_output=False, stop=False, choose_checkpoint=False,
                   reload=False, send_output=False)
    assert session.actions() == none  # no run chosen
    session.select_run(Path("runs/a"))
    assert session.start_loading() and session.awaiting_model
    assert session.actions() == Actions(False, False, False, False, choose_checkpoint=True, reload=True,
                                        send_output=False)
    session.model_loaded(summary("runs/a"))
    assert not session.awaiting_model
    assert session.actions() == Actions(generate=True, score=True, continue_output=False, stop=False,
                                        choose_checkpoint=True, reload=True, send_output=False)
    session.generate("AB", SETTINGS)
    assert session.actions() == Actions(False, False, False, stop=True, choose_checkpoint=True, reload=False,
                                        send_output=False)
    session.generation_started(GenerationStarted([1, 2], 7))
    session.tokens_received(tokens("c"))
    session.generation_finished(GenerationFinished(1, 0.1, 0.1, "stopped"))
    assert session.actions() == Actions(True, True, continue_output=True, stop=False, choose_checkpoint=True,
                                        reload=True, send_output=True)
    session.start_scoring()
    assert session.actions() == Actions(False, False, False, stop=False, choose_checkpoint=True, reload=False,
                                        send_output=False)


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
    request = session.continue_output(SETTINGS)
    assert request.prompt == [1, 2, 100, 101, 102] and request.prompt is not session.ids
    assert not session.generation_started(GenerationStarted(request.prompt, seed=9))  # the output is kept
    session.tokens_received(tokens("fg", first_id=200))
    assert session.output_text() == "ABcdefg" and session.ids == [1, 2, 100, 101, 102, 200, 201]
    assert session.seed == 9
    generated(session, "X", "y")  # a new prompt starts a new output
    assert session.output_text() == "Xy" and session.ids == [1, 2, 100]


def test_a_new_prompt_keeps_the_output_until_the_worker_starts_on_it():
    session = loaded_session()
    generated(session, "AB", "cde")
    session.pin(1)
    session.generate("", SETTINGS)
    assert session.output_text() == "ABcde" and session.pinned == 1  # e.g. a bad prompt fails before `started`
    assert session.job_failed() == GENERATE and session.job is None and session.output_text() == "ABcde"


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
    assert session.loaded_run == Path("runs/b") and session.summary.run_dir == Path("runs/b")


def test_no_run_means_nothing_to_load_and_a_failed_load_leaves_no_model():
    session = GenerationSession()
    assert not session.start_loading() and not session.awaiting_model
    session.select_run(Path("runs/a"))
    session.start_loading()
    assert session.job_failed() is None and session.awaiting_model  # the failure was the load's


def test_pinning_hovering_and_escape():
    session = loaded_session()
    generated(session, "AB", "cdef")
    assert session.hovered(GENERATE, 2).text == "e" and session.hovered(GENERATE, 4) is None
    assert session.hovered(GENERATE, -1) is None and session.hovered(SCORE, 0) is None
    assert session.pin(9) is None and session.pinned is None  # off the tokens
    assert session.pin(session.click_target(1)).text == "d" and session.pinned == 1
    assert session.hovered(GENERATE, 2) is None  # pinned: a hover shows nothing else
    assert session.escape_action() == "unpin"
    assert session.click_target(1) is None and session.click_target(3) == 3  # a click on the pinned one unpins
    session.generate("AB", SETTINGS)
    assert session.escape_action() == "stop"
    session.generation_started(GenerationStarted([1], 7))
    assert session.pinned is None  # a new output: the pinned token is gone
    session.generation_finished(GenerationFinished(0, 0.1, None, "stopped"))
    assert session.escape_action() is None


def test_pinning_follows_the_mode_shown():
    session = loaded_session()
    generated(session, "AB", "cd")
    session.start_scoring()
    session.text_scored(tokens("wxyz"))
    session.mode = SCORE
    assert session.tokens() == session.scored and session.pin(3).text == "z"
    session.mode = GENERATE
    assert session.pin(3) is None and session.pin(1).text == "d"


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

