"""Text generation and scoring: the one engine path behind `lmcore sample` and the GUI's Generate tab.

Each new token costs one model step: the RNN carries its hidden state and the Transformer its KV cache.
A Transformer whose window is full slides it: the cache is rebuilt from the most recent half window, so a
rebuild costs one forward pass of context/2 tokens and every prediction still sees at least that much text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .errors import ConfigError, TokenizerError

TOP_CANDIDATES = 10


@dataclass
class SamplingSettings:
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0  # 0 keeps every token
    top_p: float = 1.0  # nucleus: keep the smallest set whose probability reaches top_p
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text (CTRL-style)
    greedy: bool = False  # always take the most likely token
    seed: int | None = None  # None draws a fresh seed
    stop: list[str] = field(default_factory=list)  # stop once the output contains one of these

    def validate(self) -> None:
        checks = [
            (self.max_new_tokens >= 1, f"max_new_tokens = {self.max_new_tokens} must be >= 1"),
            (self.temperature > 0, f"temperature = {self.temperature} must be > 0 (use greedy for 0)"),
            (self.top_k >= 0, f"top_k = {self.top_k} must be >= 0 (0 turns it off)"),
            (0 < self.top_p <= 1, f"top_p = {self.top_p} must be in (0, 1]"),
            (self.repetition_penalty >= 1, f"repetition_penalty = {self.repetition_penalty} must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message + ".")


PRESETS = {  # named settings for the Generate tab
    "precise": SamplingSettings(temperature=0.5, top_k=20, top_p=0.9, repetition_penalty=1.1),
    "balanced": SamplingSettings(temperature=0.8, top_k=0, top_p=0.95, repetition_penalty=1.0),
    "creative": SamplingSettings(temperature=1.1, top_k=0, top_p=1.0, repetition_penalty=1.0),
}


@dataclass
class GeneratedToken:
    id: int
    text: str  # what this token adds to the decoded output ("" while a multi-byte character is incomplete)
    probability: float  # under the model's own distribution (temperature 1, no filtering)
    entropy: float  # of that distribution, in nats
    candidates: list[tuple[int, float]]  # the top TOP_CANDIDATES (id, probability), most likely first


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """Encode a prompt; an empty one starts from the tokenizer's start (or end-of-line) token if it has one."""
    if prompt:
        return tokenizer.encode(prompt, unknown="error")
    start = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id
    if start is None:
        raise TokenizerError(f"The prompt is empty and this {tokenizer.kind} tokenizer has no start token; "
                             "type at least one character to start from.")
    return [start]


class Decoder:
    """Feeds tokens to a model one step at a time, holding its cache or hidden state."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model, device
        self.window = getattr(model.config, "context_length", None)
        self.state = None
        self.history: list[int] = []

    @torch.no_grad()
    def feed(self, ids: list[int]) -> torch.Tensor:
        """Append `ids`; return the logits [V] for the next token."""
        self.history.extend(ids)
        if self.window is None:  # RNN: the hidden state carries everything
            return self._run(ids)
        if self.state is None or self.state.length + len(ids) > self.window:
            keep = self.history[-self.window:] if self.state is None else self.history[-max(1, self.window // 2):]
            self.state = None
            return self._run(keep)
        return self._run(ids)

    def _run(self, ids: list[int]) -> torch.Tensor:
        if self.state is None:
            self.state = self.model.init_state(1, self.device)
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        out = self.model(x, state=self.state, last_only=True)
        self.state = out.state
        return out.logits[0, -1].float()


def choose_next(logits: torch.Tensor, settings: SamplingSettings, history: list[int],
                generator: torch.Generator) -> int:
    """Pick the next token id from raw logits [V] under the sampling settings."""
    logits = logits.detach().to("cpu", torch.float32).clone()
    if settings.repetition_penalty != 1.0 and history:
        seen = torch.tensor(sorted(set(history)), dtype=torch.long)
        values = logits[seen]
        logits[seen] = torch.where(values > 0, values / settings.repetition_penalty,
                                   values * settings.repetition_penalty)
    if settings.greedy:
        return int(torch.argmax(logits))
    logits = logits / settings.temperature
    if settings.top_k > 0:
        kth = torch.topk(logits, min(settings.top_k, logits.numel())).values[-1]
        logits[logits < kth] = -math.inf
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        drop = cumulative - F.softmax(sorted_logits, dim=-1) >= settings.top_p  # keep the token that crosses p
        logits[order[drop]] = -math.inf
    probs = F.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def describe_distribution(logits: torch.Tensor, chosen: int) -> tuple[float, float, list[tuple[int, float]]]:
    probs = F.softmax(logits.float().cpu(), dim=-1)
    entropy = float(-(probs * torch.log(probs.clamp_min(1e-30))).sum())
    top = torch.topk(probs, min(TOP_CANDIDATES, probs.numel()))
    return float(probs[chosen]), entropy, list(zip(top.indices.tolist(), top.values.tolist()))


def generate(model, tokenizer, prompt: str | list[int], settings: SamplingSettings,
             device: torch.device | str = "cpu", should_stop: Callable[[], bool] | None = None
             ) -> Iterator[GeneratedToken]:
    """Yield tokens one by one as they are produced. `prompt` is text, or token ids to continue from.

    The same model, prompt and settings (with a fixed seed) give the same tokens wherever this is called.
    """
    settings.validate()
    device = torch.device(device)
    ids = list(prompt) if isinstance(prompt, list) else prompt_ids(tokenizer, prompt)
    if not ids:
        raise TokenizerError("There is nothing to continue from; type a prompt first.")
    seed = settings.seed if settings.seed is not None else int(torch.seed() % (2**31))
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    decoder = Decoder(model, device)
    logits = decoder.feed(ids)
    generated: list[int] = []
    emitted = ""
    for _ in range(settings.max_new_tokens):
        if should_stop and should_stop():
            return
        token = choose_next(logits, settings, decoder.history, generator)
        probability, entropy, candidates = describe_distribution(logits, token)
        generated.append(token)
        text = tokenizer.decode(generated)
        if text.endswith("\ufffd") and token != tokenizer.unk_id:
            piece = ""  # an incomplete multi-byte character: wait for the rest of its bytes
        else:
            piece, emitted = text[len(emitted):], text
        yield GeneratedToken(token, piece, probability, entropy, candidates)
        if any(stop in emitted for stop in settings.stop):
            return
        logits = decoder.feed([token])


def sample_text(model, tokenizer, prompt: str, settings: SamplingSettings, device="cpu") -> str:
    """The whole continuation as a string (the CLI's `lmcore sample`)."""
    return "".join(token.text for token in generate(model, tokenizer, prompt, settings, device))


@dataclass
class ScoredToken:
    id: int
    text: str
    loss: float | None  # nats; None for the first token, which has nothing before it to predict from


@dataclass
class ScoreResult:
    tokens: list[ScoredToken]
    total_loss: float  # nats over the predicted tokens
    predicted: int
    characters: int

    @property
    def mean_loss(self) -> float:
        return self.total_loss / max(self.predicted, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.mean_loss, 50.0))

    @property
    def bits_per_char(self) -> float:
        return self.total_loss / math.log(2) / max(self.characters, 1)


@torch.no_grad()
def score_text(model, tokenizer, text: str, device: torch.device | str = "cpu") -> ScoreResult:
    """Per-token loss of `text` under the model: each token predicted from everything before it
    (a Transformer slides its window by half when the text is longer than its context)."""
    device = torch.device(device)
    ids = tokenizer.encode(text, unknown="replace")
    if len(ids) < 2:
        raise TokenizerError("Scoring needs at least two tokens of text; paste a longer passage.")
    model.eval()
    decoder = Decoder(model, device)
    losses: list[float | None] = [None]
    for position in range(1, len(ids)):
        logits = decoder.feed([ids[position - 1]])
        losses.append(float(F.cross_entropy(logits[None], torch.tensor([ids[position]], device=logits.device))))
    tokens = [ScoredToken(i, tokenizer.token_text(i), loss) for i, loss in zip(ids, losses)]
    total = sum(loss for loss in losses if loss is not None)
    return ScoreResult(tokens, total, len(ids) - 1, len(text))
