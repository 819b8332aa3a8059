"""The Generate tab's session, without Qt: which run is chosen and which model is loaded, what the output holds
(the prompt, the generated tokens, the ids Continue sends on), the scored text, the pinned token, the job the
worker is at, and which of the tab's actions all that leaves enabled. The tab (tab.py) shows it and wires it to
the widgets and the worker; tests drive it without a widget.

Also here, for the same reason: the messages between the tab and its worker (worker.py), and the text the tab
writes about them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lmcore.generation import SamplingSettings
from lmcore.runs import RunFolder

CHECKPOINTS = ("best", "last")
GENERATE, SCORE = "generate", "score"  # the tab's two modes, and the two jobs the worker does for them
MODES = (GENERATE, SCORE)  # in the order of the tab's pages
FINISH_REASONS = {"stopped": "stopped", "max tokens": "max tokens reached", "stop string": "stop string found"}


# ---- messages between the tab and its worker ------------------------------------------------------------------
@dataclass
class TokenInfo:
    """One token as the token views show it, for generated and scored text alike."""
    id: int
    text: str
    probability: float | None  # None: the first token of a scored text, which nothing predicts
    entropy: float | None
    candidates: list[tuple[str, float, bool]]  # (token text, probability, is the chosen token)
    loss: float | None = None  # scored text only


@dataclass
class ModelSummary:
    run_dir: Path
    checkpoint: str  # "best" | "last": the file actually loaded
    family: str
    description: str  # one line on the model
    checkpoint_line: str
    tokenizer_line: str
    context_length: int | None


@dataclass
class GenerationRequest:
    prompt: str | list[int]  # text, or the ids of earlier output to continue from
    settings: SamplingSettings


@dataclass
class GenerationStarted:
    prompt_ids: list[int]
    seed: int


@dataclass
class GenerationFinished:
    tokens: int
    seconds: float
    first_token_seconds: float | None
    reason: str  # "stopped" | "max tokens" | "stop string"


# ---- what the tab writes ----------------------------------------------------------------------------------------
def parse_stop_strings(text: str) -> list[str]:
    """Comma-separated stop strings, trimmed; \\n is a line break, \\t a tab, \\, a comma and \\\\ a backslash."""
    escapes = {"n": "\n", "t": "\t", ",": "\x00", "\\": "\\"}  # \x00 stands in for a comma until the split
    out, chars = [], iter(text)
    for c in chars:
        out.append(escapes.get(next(chars, ""), "\\") if c == "\\" else c)
    parts = "".join(out).split(",")
    return [p.strip(" ").replace("\x00", ",") for p in parts if p.strip(" ")]


def checkpoints_to_offer(run_dir: Path, current: str) -> tuple[list[str], str]:
    """The checkpoints of CHECKPOINTS a run has (all of them while it has none, so that loading says why) and the
    one to choose: `current` when the run has it, else the first it has."""
    folder = RunFolder(run_dir)
    offered = [which for which in CHECKPOINTS if folder.checkpoint_path(which).is_file()] or list(CHECKPOINTS)
    return offered, current if current in offered else offered[0]


def describe_finished(done: GenerationFinished, seed: int | None) -> str:
    """The status line a generation leaves: tokens, speed, time to the first token, seed, and why it ended."""
    rate = f" · {done.tokens / done.seconds:,.0f} tok/s" if done.seconds > 0 and done.tokens else ""
    first = f" · first token {1000 * done.first_token_seconds:,.0f} ms" if done.first_token_seconds else ""
    return f"{done.tokens} tokens{rate}{first} · seed {seed} · {FINISH_REASONS[done.reason]}"


def describe_score(result) -> str:
    """The totals of an lmcore ScoreResult, as rich text."""
    return (f"loss <b>{result.mean_loss:.3f}</b> nats/token · perplexity <b>{result.perplexity:.2f}</b> · "
            f"<b>{result.bits_per_char:.3f}</b> bits/char<br>total {result.total_loss:.1f} nats over "
            f"{result.predicted} predicted tokens")


# ---- the session --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Actions:
    """Which of the tab's actions the session's state allows."""
    generate: bool
    score: bool
    continue_output: bool
    stop: bool
    choose_checkpoint: bool
    reload: bool
    send_output: bool  # to the Attention tab


class GenerationSession:
    """The state of the Generate tab apart from its widgets, changed by the tab's requests and the worker's
    answers. `mode` is the page shown (GENERATE or SCORE): pinning applies to its tokens."""

    def __init__(self):
        self.run_dir: Path | None = None  # the run chosen in the runs browser
        self.summary: ModelSummary | None = None  # the model loaded from it; None while loading or none loaded
        self.loaded_run: Path | None = None  # whose tokenizer made the ids in the outputs
        self.job: str | None = None  # GENERATE or SCORE while the worker is at it
        self.mode = GENERATE
        self.prompt_text = ""
        self.ids: list[int] = []  # prompt + generated ids of the output: what Continue sends
        self.generated: list[TokenInfo] = []
        self.scored: list[TokenInfo] = []
        self.pinned: int | None = None  # the token of the current mode's view the inspector keeps showing
        self.seed: int | None = None  # of the last generation
        self._pending_prompt: str | None = None  # the text of the prompt being sent; None when continuing

    # ---- run and model ------------------------------------------------------------------------------------------
    def select_run(self, run_dir: Path | None) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.summary = None

    def start_loading(self) -> bool:
        """Forget the loaded model until the worker loads the chosen run's; False when no run is chosen."""
        if self.run_dir is None:
            return False
        self.summary = None
        return True

    def model_loaded(self, summary: ModelSummary) -> Literal["stale", "new run", "same run"]:
        """Take the model the worker loaded. "stale": the user has picked another run since, nothing changes;
        "new run": the outputs are cleared (ids from another run's tokenizer must not be continued)."""
        if summary.run_dir != self.run_dir:
            return "stale"
        outcome = "same run" if summary.run_dir == self.loaded_run else "new run"
        if outcome == "new run":
            self.clear_outputs()
        self.loaded_run, self.summary = summary.run_dir, summary
        return outcome

    @property
    def awaiting_model(self) -> bool:
        """A run is chosen but no model of it is loaded (loading, or the load failed)."""
        return self.run_dir is not None and self.summary is None

    def clear_outputs(self) -> None:
        self.ids, self.generated, self.prompt_text = [], [], ""
        self.scored = []
        self.pinned = None

    # ---- generating ---------------------------------------------------------------------------------------------
    def generate(self, prompt: str, settings: SamplingSettings) -> GenerationRequest:
        """A new output from `prompt`: the current one stays until the worker has started on it."""
        self._pending_prompt = prompt
        self.job = GENERATE
        return GenerationRequest(prompt, settings)

    def continue_output(self, settings: SamplingSettings) -> GenerationRequest:
        """Generate on from the end of the output: the worker gets its ids, not its text."""
        self._pending_prompt = None
        self.job = GENERATE
        return GenerationRequest(list(self.ids), settings)

    def generation_started(self, started: GenerationStarted) -> bool:
        """True when the output starts anew (from a prompt); False when the tokens go on after it (Continue)."""
        self.seed = started.seed
        if self._pending_prompt is None:
            return False
        self.pinned = None
        self.prompt_text = self._pending_prompt
        self.ids, self.generated = list(started.prompt_ids), []
        return True

    def tokens_received(self, batch: list[TokenInfo]) -> None:
        self.ids.extend(token.id for token in batch)
        self.generated.extend(batch)

    def generation_finished(self, done: GenerationFinished) -> str:
        """The job is over; returns the status line it leaves."""
        self.job = None
        return describe_finished(done, self.seed)

    def output_text(self) -> str:
        """The prompt and the generated text, as the model wrote it."""
        return self.prompt_text + "".join(token.text for token in self.generated)

    # ---- scoring ------------------------------------------------------------------------------------------------
    def start_scoring(self) -> None:
        self.job = SCORE

    def text_scored(self, tokens: list[TokenInfo]) -> None:
        self.job = None
        self.pinned = None
        self.scored = tokens

    def job_failed(self) -> str | None:
        """The worker reported an error: the job it was at (None: it was loading a model) is over."""
        failed, self.job = self.job, None
        return failed

    # ---- inspecting tokens --------------------------------------------------------------------------------------
    def tokens(self, mode: str | None = None) -> list[TokenInfo]:
        """The tokens of a mode's view (the current mode's by default)."""
        return self.generated if (mode or self.mode) == GENERATE else self.scored

    def hovered(self, mode: str, index: int) -> TokenInfo | None:
        """The token to show for a hover over token `index` of a mode's view: none while a token is pinned."""
        tokens = self.tokens(mode)
        return tokens[index] if self.pinned is None and 0 <= index < len(tokens) else None

    def pin(self, index: int | None) -> TokenInfo | None:
        """Pin token `index` of the current mode's view (None, or an index off its tokens, unpins); returns it."""
        tokens = self.tokens()
        self.pinned = index if index is not None and 0 <= index < len(tokens) else None
        return tokens[self.pinned] if self.pinned is not None else None

    def click_target(self, index: int) -> int | None:
        """What a click on token `index` pins: that token, or nothing when it is the one pinned already."""
        return None if index == self.pinned else index

    def escape_action(self) -> Literal["stop", "unpin"] | None:
        """What Esc does: stop a generation, else unpin the pinned token."""
        if self.job == GENERATE:
            return "stop"
        return "unpin" if self.pinned is not None else None

    # ---- state --------------------------------------------------------------------------------------------------
    def actions(self) -> Actions:
        busy = self.job is not None
        ready = self.summary is not None and not busy
        chosen = self.run_dir is not None
        return Actions(generate=ready, score=ready, continue_output=ready and bool(self.generated),
                       stop=self.job == GENERATE, choose_checkpoint=chosen, reload=chosen and not busy,
                       send_output=not busy and bool(self.generated))
