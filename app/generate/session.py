"""The Generate tab's session, without Qt: which runs are chosen and which models are loaded, what each view
holds (the output and, side by side, a second one; the chat; the scored text), the pinned token, the jobs the
worker is at, and which of the tab's actions all that leaves enabled. The tab (tab.py) shows it and wires it to
the widgets and the worker; tests drive it without a widget.

Also here, for the same reason: the messages between the tab and its worker (worker.py), and the text the tab
writes about them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, NamedTuple

from lmcore.ensemble import MEANS
from lmcore.generation import TOP_CANDIDATES, SamplingSettings, fresh_seed
from lmcore.runs import RunFolder

from .chat import ChatTranscript, Speakers

CHECKPOINTS = ("best", "last")
GENERATE, SCORE, CHAT = "generate", "score", "chat"  # the tab's modes, and the jobs the worker does for them
MODES = (GENERATE, SCORE, CHAT)  # in the order of the tab's pages
SECOND = "second"  # side by side: the second column's output, from the second model
FILL = "fill"  # an encoder's fill-in-the-blank: the view such a run gets in place of the modes (fill_mask.py)
# The token views each model's tokens reach: slot 0 is the run chosen in the runs browser, slot 1 the second column's.
SLOT_VIEWS = {0: (GENERATE, SCORE, CHAT), 1: (SECOND,)}
FINISH_REASONS = {"stopped": "stopped", "max tokens": "max tokens reached", "stop string": "stop string found"}


# ---- messages between the tab and its worker ------------------------------------------------------------------
class Candidate(NamedTuple):
    id: int
    text: str
    probability: float


@dataclass
class TokenInfo:
    """One token as the token views show it, for generated and scored text alike."""
    id: int
    text: str
    probability: float | None  # under the model's raw distribution; None: the first token of a scored text
    entropy: float | None  # of the raw distribution
    candidates: list[Candidate]  # the raw distribution's most likely tokens, most likely first
    loss: float | None = None  # scored text only
    # Generated text only: the same for the distribution the token was drawn from, and the settings that made it.
    sampled_probability: float | None = None
    sampled_candidates: list[Candidate] = field(default_factory=list)
    sampling: str = ""  # e.g. "temperature 0.3 · top-k 3"


@dataclass
class ModelSummary:
    run_dir: Path
    checkpoint: str  # "best" | "last": the file actually loaded
    family: str
    description: str  # one line on the model
    checkpoint_line: str
    tokenizer_line: str
    context_length: int | None
    slot: int = 0  # which of the two models (SLOT_VIEWS)
    # The loaded tokenizer, which the fill-in-the-blank view cuts the typed text with (one never changes once
    # loaded, so the GUI thread may use it)
    tokenizer: object = None
    members: list[Path] = field(default_factory=list)  # an ensemble's runs, the chosen one first (ensemble.py)
    mean: str = ""  # ... and how it mixes their distributions (lmcore.ensemble.MEANS)

    @property
    def fills_blanks(self) -> bool:
        """An encoder (a masked language model): it fills in blanks rather than continuing text."""
        return self.family == "encoder"


@dataclass
class GenerationRequest:
    prompt: str | list[int]  # text, or the ids of earlier output to continue from
    settings: SamplingSettings
    view: str = GENERATE  # where the tokens go: GENERATE, SECOND or CHAT

    @property
    def slot(self) -> int:
        """The model that generates them."""
        return 1 if self.view == SECOND else 0


@dataclass
class GenerationStarted:
    prompt_ids: list[int]
    seed: int
    view: str = GENERATE


@dataclass
class GenerationFinished:
    tokens: int
    seconds: float
    first_token_seconds: float | None
    reason: str  # "stopped" | "max tokens" | "stop string"
    view: str = GENERATE


@dataclass
class JobFailed:
    message: str  # for the user
    view: str | None = None  # the view of the generation that failed, SCORE, FILL, or None: loading model `slot`
    slot: int = 0


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


def describe_sampling(settings: SamplingSettings) -> str:
    """The settings that shape the distribution tokens are drawn from, those left off unnamed:
    "temperature 0.3 · top-k 3"."""
    if settings.greedy:
        knobs = ["greedy"]
    else:
        knobs = [f"temperature {settings.temperature:g}"]
        knobs += [f"top-k {settings.top_k}"] if settings.top_k else []
        knobs += [f"top-p {settings.top_p:g}"] if settings.top_p < 1 else []
    knobs += [f"repetition penalty {settings.repetition_penalty:g}"] if settings.repetition_penalty != 1 else []
    return " · ".join(knobs)


class CandidateRow(NamedTuple):
    """One bar of the token inspector: a candidate of the distribution shown, and its probability in the other."""
    text: str
    probability: float
    chosen: bool
    other: float | None  # None: not known (the other distribution lists only its most likely tokens)


def candidate_rows(token: TokenInfo, sampled: bool) -> list[CandidateRow]:
    """The inspector's bars for a token: the candidates of its sampled distribution (`sampled`) or of the raw one,
    each with its probability in the other distribution. A list shorter than TOP_CANDIDATES holds every token
    its distribution allows, so a token missing from it has probability 0 there (top-k and top-p rule tokens out).
    Scored text has only the raw distribution: no other."""
    shown, other = ((token.sampled_candidates, token.candidates) if sampled else
                    (token.candidates, token.sampled_candidates))
    known = {c.id: c.probability for c in other}
    missing = 0.0 if len(other) < TOP_CANDIDATES and token.sampled_probability is not None else None
    return [CandidateRow(c.text, c.probability, c.id == token.id, known.get(c.id, missing)) for c in shown]


# ---- the session --------------------------------------------------------------------------------------------------
@dataclass
class Output:
    """What a generating view holds: the prompt, the tokens generated after it, and the ids Continue sends on."""
    prompt_text: str = ""
    ids: list[int] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)

    def text(self) -> str:
        return self.prompt_text + "".join(token.text for token in self.tokens)


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
    copy: bool
    send_chat: bool
    side_by_side: bool  # turning it on or off
    fill: bool  # an encoder's blanks
    ensemble: bool  # choosing the runs that predict with the chosen one


class GenerationSession:
    """The state of the Generate tab apart from its widgets, changed by the tab's requests and the worker's
    answers. `mode` is the page shown (MODES). Side by side, Generate and Continue run the second model too, on
    the same prompt with the same seed; Continue, Copy and Send to Attention use the first column's output."""

    def __init__(self):
        self.runs: list[Path | None] = [None, None]  # chosen, per slot (SLOT_VIEWS)
        self.summaries: list[ModelSummary | None] = [None, None]  # loaded; None while loading or none loaded
        self.loaded_runs: list[Path | None] = [None, None]  # whose tokenizers made the ids in the views
        self.job: str | None = None  # GENERATE (chat included), SCORE or FILL while the worker is at it
        self.pending: set[str] = set()  # the views whose generation the worker has not finished
        self.mode = GENERATE
        self.side_by_side = False
        self.outputs = {GENERATE: Output(), SECOND: Output()}
        self.chat: ChatTranscript[TokenInfo] = ChatTranscript()
        self.scored: list[TokenInfo] = []
        self.pinned: int | None = None  # the token the inspector keeps showing, in view `pinned_view`
        self.pinned_view: str | None = None
        self.seed: int | None = None  # of the last generation
        # The runs ticked to predict with slot 0's run (itself maybe among them, a second time); none: it alone
        self.ensemble: list[Path] = []
        self.mean = MEANS[0]  # how the ensemble mixes their distributions
        self._prompts: dict[str, str | None] = {}  # per pending view: the prompt's text; None when continuing

    # ---- run and model ------------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path | None:
        """The run chosen in the runs browser."""
        return self.runs[0]

    @property
    def summary(self) -> ModelSummary | None:
        return self.summaries[0]

    def select_run(self, run_dir: Path | None, slot: int = 0) -> None:
        run_dir = Path(run_dir) if run_dir is not None else None
        if slot == 0 and run_dir != self.runs[0]:
            self.ensemble = []  # its runs shared the tokenizer of the run chosen before
        self.runs[slot] = run_dir
        self.summaries[slot] = None

    def ensemble_runs(self) -> list[Path]:
        """The runs slot 0 loads: the chosen run, then the others ticked to predict with it (ensemble.py)."""
        return [self.runs[0], *self.ensemble] if self.ensemble and self.runs[0] is not None else []

    def start_loading(self, slot: int = 0) -> bool:
        """Forget a slot's model until the worker loads its chosen run's; False when no run is chosen."""
        if self.runs[slot] is None:
            return False
        self.summaries[slot] = None
        return True

    def model_loaded(self, summary: ModelSummary) -> Literal["stale", "new run", "same run"]:
        """Take a model the worker loaded. "stale": the user has picked another run since, nothing changes;
        "new run": the slot's views are cleared (ids from another run's tokenizer must not be continued)."""
        slot = summary.slot
        if summary.run_dir != self.runs[slot]:
            return "stale"
        outcome = "same run" if summary.run_dir == self.loaded_runs[slot] else "new run"
        if outcome == "new run":
            self.clear_views(SLOT_VIEWS[slot])
        self.loaded_runs[slot], self.summaries[slot] = summary.run_dir, summary
        return outcome

    def awaiting_model(self, slot: int = 0) -> bool:
        """A run is chosen for the slot but no model of it is loaded (loading, or the load failed)."""
        return self.runs[slot] is not None and self.summaries[slot] is None

    def clear_views(self, views) -> None:
        """Empty the given views (SLOT_VIEWS, or the chat for a new conversation)."""
        for view in views:
            if view == SCORE:
                self.scored = []
            elif view == CHAT:
                self.chat.clear()
            else:
                self.outputs[view] = Output()
        if self.pinned_view in views:
            self.pin(None, None)

    # ---- generating ---------------------------------------------------------------------------------------------
    def generating_views(self) -> tuple[str, ...]:
        """The views a Generate fills: the output and, side by side, the second column's."""
        return (GENERATE, SECOND) if self.side_by_side else (GENERATE,)

    def generate(self, prompt: str, settings: SamplingSettings) -> list[GenerationRequest]:
        """New outputs from `prompt`: the current ones stay until the worker has started on them."""
        return self._start({view: prompt for view in self.generating_views()}, settings)

    def continue_output(self, settings: SamplingSettings) -> list[GenerationRequest]:
        """Generate on from the end of each output: the worker gets their ids, not their text."""
        return self._start(dict.fromkeys(self.generating_views()), settings)

    def send_chat(self, message: str, speakers: Speakers, settings: SamplingSettings) -> list[GenerationRequest]:
        """The model's reply to `message`, which ends where it would start the user's next turn."""
        settings = replace(settings, stop=[*settings.stop, speakers.stop])
        return self._start({CHAT: self.chat.begin_turn(message, speakers)}, settings)

    def _start(self, prompts: dict[str, str | None], settings: SamplingSettings) -> list[GenerationRequest]:
        if settings.seed is None:  # drawn here, so that side by side both columns draw with it
            settings = replace(settings, seed=fresh_seed())
        self.job, self.pending, self._prompts = GENERATE, set(prompts), prompts
        return [GenerationRequest(list(self.outputs[view].ids) if prompt is None else prompt, settings, view)
                for view, prompt in prompts.items()]

    def generation_started(self, started: GenerationStarted) -> bool:
        """True when the view starts anew (its pinned token, if any, is gone); False when the tokens go on after
        its output (Continue)."""
        self.seed = started.seed
        prompt = self._prompts.get(started.view)
        if prompt is None:
            return False
        if started.view == CHAT:
            self.chat.reply_started()  # the conversation goes on: a token of it pinned stays
        else:
            if self.pinned_view == started.view:
                self.pin(None, None)
            self.outputs[started.view] = Output(prompt, list(started.prompt_ids))
        return True

    def tokens_received(self, view: str, batch: list[TokenInfo]) -> int:
        """Add tokens to a view; returns how many its output (in a chat, the reply) has."""
        if view == CHAT:
            return self.chat.add(batch)
        output = self.outputs[view]
        output.ids.extend(token.id for token in batch)
        output.tokens.extend(batch)
        return len(output.tokens)

    def generation_finished(self, done: GenerationFinished) -> str:
        """A view's generation is over (the job, once every view's is); returns the status line it leaves."""
        self._done(done.view)
        if done.view == CHAT:
            self.chat.reply_finished()
            if self.pinned_view == CHAT:  # the token pinned may have been cut off with the stop string
                self.pin(CHAT, self.pinned)
        return describe_finished(done, self.seed)

    def _done(self, view: str) -> None:
        self.pending.discard(view)
        self._prompts.pop(view, None)
        if not self.pending:
            self.job = None

    @property
    def generated(self) -> list[TokenInfo]:
        """The first column's generated tokens."""
        return self.outputs[GENERATE].tokens

    @property
    def ids(self) -> list[int]:
        return self.outputs[GENERATE].ids

    def output_text(self) -> str:
        """The prompt and the generated text of the first column, as the model wrote it."""
        return self.outputs[GENERATE].text()

    # ---- scoring ------------------------------------------------------------------------------------------------
    def start_scoring(self) -> None:
        self.job = SCORE

    def start_filling(self) -> None:
        self.job = FILL

    def blanks_filled(self) -> None:
        self.job = None

    def text_scored(self, tokens: list[TokenInfo]) -> None:
        self.job = None
        if self.pinned_view == SCORE:
            self.pin(None, None)
        self.scored = tokens

    def job_failed(self, failure: JobFailed) -> None:
        """The worker reported an error: the job it was at is over (a load's failure leaves its slot with no
        model, see awaiting_model)."""
        if failure.view in (SCORE, FILL):
            self.job = None
        elif failure.view is not None:
            if failure.view == CHAT:
                self.chat.turn_failed()
            self._done(failure.view)

    # ---- inspecting tokens --------------------------------------------------------------------------------------
    def tokens(self, view: str) -> list[TokenInfo]:
        """The tokens of a view, in the order its token indices count them."""
        if view == SCORE:
            return self.scored
        return self.chat.tokens() if view == CHAT else self.outputs[view].tokens

    def hovered(self, view: str, index: int) -> TokenInfo | None:
        """The token to show for a hover over token `index` of a view: none while a token is pinned."""
        tokens = self.tokens(view)
        return tokens[index] if self.pinned is None and 0 <= index < len(tokens) else None

    def pin(self, view: str | None, index: int | None) -> TokenInfo | None:
        """Pin token `index` of a view (None, or an index off its tokens, unpins); returns it."""
        tokens = self.tokens(view) if view is not None else []
        if index is not None and 0 <= index < len(tokens):
            self.pinned_view, self.pinned = view, index
            return tokens[index]
        self.pinned_view = self.pinned = None
        return None

    def pinned_token(self) -> TokenInfo | None:
        return self.tokens(self.pinned_view)[self.pinned] if self.pinned is not None else None

    def click_target(self, view: str, index: int) -> int | None:
        """What a click on token `index` of a view pins: that token, or nothing when it is the one pinned."""
        return None if (view, index) == (self.pinned_view, self.pinned) else index

    def escape_action(self) -> Literal["stop", "unpin"] | None:
        """What Esc does: stop a generation, else unpin the pinned token."""
        if self.job == GENERATE:
            return "stop"
        return "unpin" if self.pinned is not None else None

    # ---- state --------------------------------------------------------------------------------------------------
    def actions(self) -> Actions:
        busy = self.job is not None
        ready = self.summaries[0] is not None and not busy
        paired = not self.side_by_side or self.summaries[1] is not None  # side by side needs the second model
        chosen = self.runs[0] is not None
        outputs = [self.outputs[view] for view in self.generating_views()]
        return Actions(generate=ready and paired, score=ready,
                       continue_output=ready and paired and all(output.tokens for output in outputs),
                       stop=self.job == GENERATE, choose_checkpoint=chosen, reload=chosen and not busy,
                       send_output=not busy and bool(self.generated), copy=bool(self.output_text()),
                       send_chat=ready, side_by_side=not busy,
                       fill=ready and self.summaries[0].fills_blanks,
                       ensemble=ready and not self.summaries[0].fills_blanks)
