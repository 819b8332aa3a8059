"""Text generation and scoring: the one engine path behind `lmcore sample` and the GUI's Generate tab.

Each new token costs one model step: the RNN carries its hidden state and the Transformer its KV cache.

Window sliding (Transformer). A model with context length W sees at most W tokens, and its cached keys carry
absolute positions, so a full cache cannot just drop its oldest entry. Instead the window jumps: when the next
token would not fit, the cache is rebuilt from the most recent K = max(1, W // 2) tokens (one forward pass of K
tokens) and then fills up again one token at a time, so every prediction past the first W tokens sees between
K and W tokens of text. Which tokens the window holds depends only on how many tokens have been fed
(`window_start`), not on how they were fed in. The guarantees, both tested:

* after every step, slides included, the next-token logits equal those of a full forward pass over
  `history[window_start(len(history), W):]` (what `Decoder(..., cache=False)` computes from scratch);
* continuing from the ids of an earlier generation (the GUI's "Continue") sees the same window as having
  generated in one go, so greedy decoding gives the same tokens either way.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from .errors import ConfigError, TokenizerError

TOP_CANDIDATES = 10
SCORE_CHUNK = 256  # tokens scored per forward pass: bounds the [chunk, vocab] logits held at once


@dataclass
class SamplingSettings:
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int = 0  # 0 keeps every token
    top_p: float = 1.0  # nucleus: keep the smallest set whose probability reaches top_p
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text (CTRL-style)
    greedy: bool = False  # always take the most likely token
    seed: int | None = None  # None draws a fresh seed
    stop: list[str] = field(default_factory=list)  # stop once the output contains one of these (kept in it)

    def validate(self) -> None:
        checks = [
            (self.max_new_tokens >= 1, f"max_new_tokens = {self.max_new_tokens} must be >= 1"),
            (self.temperature > 0, f"temperature = {self.temperature} must be > 0 (use greedy for 0)"),
            (self.top_k >= 0, f"top_k = {self.top_k} must be >= 0 (0 turns it off)"),
            (0 < self.top_p <= 1, f"top_p = {self.top_p} must be in (0, 1]"),
            (self.repetition_penalty >= 1, f"repetition_penalty = {self.repetition_penalty} must be >= 1"),
            (all(self.stop), "a stop string is empty; remove it (an empty string would stop at once)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message + ".")


PRESETS = {  # named settings for the Generate tab
    "precise": SamplingSettings(temperature=0.5, top_k=20, top_p=0.9, repetition_penalty=1.1),
    "balanced": SamplingSettings(temperature=0.8, top_k=0, top_p=0.95, repetition_penalty=1.0),
    "creative": SamplingSettings(temperature=1.1, top_k=0, top_p=1.0, repetition_penalty=1.0),
}


def fresh_seed() -> int:
    """A random seed, drawn without touching torch's global generator (the caller may show it to the user)."""
    return secrets.randbits(31)


@dataclass
class GeneratedToken:
    id: int
    text: str  # what this token adds to the decoded output ("" while a multi-byte character is incomplete)
    probability: float  # under the model's own distribution (temperature 1, no filtering)
    entropy: float  # of that distribution, in nats
    candidates: list[tuple[int, float]]  # the top TOP_CANDIDATES (id, probability), most likely first
    # The same, for the distribution the token was drawn from: after the repetition penalty, temperature, top-k
    # and top-p (greedy: all on the most likely token). What each sampling setting did is the difference.
    sampled_probability: float = 1.0
    sampled_candidates: list[tuple[int, float]] = field(default_factory=list)


def encode_text(tokenizer, text: str, what: str) -> list[int]:
    """Encode the user's `what` ("prompt", "text"); characters a character tokenizer cannot express are named."""
    ids = tokenizer.encode(text, unknown="replace")
    if tokenizer.kind == "char" and tokenizer.unk_id in ids:  # word and SentencePiece tokenizers never refuse
        unseen = list(dict.fromkeys(c for c, i in zip(text, ids) if i == tokenizer.unk_id))
        shown = ", ".join(repr(c) for c in unseen[:10]) + (f" and {len(unseen) - 10} more" if len(unseen) > 10 else "")
        raise TokenizerError(f"The {what} has {len(unseen)} character(s) that never occur in this model's training "
                             f"text: {shown}. A character-level model cannot read them; remove or replace them.")
    return ids


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """Encode a prompt; an empty one starts from the tokenizer's start (or end-of-line) token if it has one."""
    if prompt:
        return encode_text(tokenizer, prompt, "prompt")
    start = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id
    if start is None:
        raise TokenizerError(f"The prompt is empty and this {tokenizer.kind} tokenizer has no start token; "
                             "type at least one character to start from.")
    return [start]


def check_vocabulary(model, tokenizer) -> None:
    """A model only makes sense with the tokenizer it was trained with; sizes that differ prove a mismatch."""
    if model.config.vocab_size != tokenizer.vocab_size:
        raise TokenizerError(
            f"The model predicts {model.config.vocab_size} tokens but the {tokenizer.kind} tokenizer has "
            f"{tokenizer.vocab_size}: they do not belong together. Use the tokenizer/ folder of the model's own run.")


def window_start(n: int, window: int | None) -> int:
    """Index of the first of `n` fed tokens that a model with context `window` still sees (module docstring).

    The window restarts every `window - keep + 1` tokens, keep = window // 2, which leaves it holding `keep`
    tokens right after each slide and `window` right before the next."""
    if window is None or n <= window:
        return 0
    keep = max(1, window // 2)
    stride = window - keep + 1
    return ((n - window - 1) // stride + 1) * stride


class Decoder:
    """Feeds tokens to a model, holding its KV cache or hidden state, and returns next-token logits.

    cache=False instead runs a full forward pass over the current window at every call: the slow reference that
    the cached path is tested and benchmarked against.
    """

    def __init__(self, model, device: torch.device | str, cache: bool = True):
        self.model, self.device, self.cache = model, torch.device(device), cache
        self.window = getattr(model.config, "context_length", None)  # None: an RNN, whose state sees everything
        self.history: list[int] = []
        self.start = 0  # history[start:] is what the state holds
        self.state = None

    @torch.inference_mode()
    def feed(self, ids: Iterable[int], all_logits: bool = False) -> torch.Tensor:
        """Append `ids`; return the logits [V] for the token after them, or with `all_logits` the logits
        [len(ids), V] after each of them, each computed from the window that was current at its position."""
        ids = list(ids)
        if not all_logits:
            return self._advance(ids, 1)[-1]
        pieces = []
        while ids:  # one piece per window position: a slide in the middle would change earlier positions' context
            n = len(self.history)
            room = window_start(n + 1, self.window) + self.window - n if self.window else len(ids)
            pieces.append(self._advance(ids[:room], min(room, len(ids))))
            ids = ids[room:]
        return torch.cat(pieces)

    def _advance(self, ids: list[int], wanted: int) -> torch.Tensor:
        """Feed `ids` (all within one window position) and return the logits [wanted, V] of the last positions."""
        self.history.extend(ids)
        start = window_start(len(self.history), self.window)
        if self.cache and self.state is not None and start == self.start:
            inputs = ids
        else:  # first call, a slide, or recompute mode: run the whole window from a fresh state
            self.start, inputs = start, self.history[start:]
            self.state = self.model.init_state(1, self.device) if self.cache else None
        out = self.model(torch.tensor([inputs], dtype=torch.long, device=self.device),
                         state=self.state, last_only=wanted == 1)
        if self.cache:
            self.state = out.state
        return out.logits[0, -wanted:].float()


class TextStream:
    """Turns a stream of token ids into the text each one adds, in constant time per token.

    A token's text can depend on its neighbours (a word tokenizer puts spaces between words, SentencePiece
    spreads one character over several byte tokens), so each piece is decoded after a few preceding tokens.
    """

    CONTEXT = 8  # preceding tokens decoded with each piece
    MAX_PENDING = 4  # a UTF-8 character has at most 4 bytes: after that the bytes will never form one

    def __init__(self, tokenizer, context: list[int]):
        self.tokenizer = tokenizer
        self.tail = list(context[-self.CONTEXT:])
        self.before = tokenizer.decode(self.tail)  # also rejects ids outside the vocabulary up front
        self.pending: list[int] = []

    def push(self, token: int) -> str:
        self.pending.append(token)
        text = self.tokenizer.decode(self.tail + self.pending)
        if (text.endswith("\ufffd") and token != self.tokenizer.unk_id
                and len(self.pending) < self.MAX_PENDING):
            return ""  # an incomplete multi-byte character: wait for the rest of its bytes
        piece = text[len(self.before):]
        self.tail = (self.tail + self.pending)[-self.CONTEXT:]
        self.before = self.tokenizer.decode(self.tail)
        self.pending = []
        return piece


def sampling_distribution(logits: torch.Tensor, settings: SamplingSettings, seen: Iterable[int]) -> torch.Tensor:
    """The probabilities [V] the next token is drawn from, given raw logits [V] and the sampling settings: the
    repetition penalty on `seen` (the ids already in the text), then temperature, top-k and top-p; greedy puts all
    of it on the most likely token."""
    logits = logits.detach().to("cpu", torch.float32).clone()
    if settings.repetition_penalty != 1.0:
        seen = torch.tensor(list(seen), dtype=torch.long)
        values = logits[seen]
        logits[seen] = torch.where(values > 0, values / settings.repetition_penalty,
                                   values * settings.repetition_penalty)
    if settings.greedy:
        return F.one_hot(torch.argmax(logits), logits.numel()).float()
    logits = logits / settings.temperature
    if settings.top_k > 0:
        kth = torch.topk(logits, min(settings.top_k, logits.numel())).values[-1]
        logits[logits < kth] = -math.inf
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        drop = torch.cumsum(probs, dim=-1) - probs >= settings.top_p  # keep the token that crosses top_p
        logits[order[drop]] = -math.inf
    return F.softmax(logits, dim=-1)


def draw(probs: torch.Tensor, settings: SamplingSettings, generator: torch.Generator) -> int:
    """A token id from a sampling distribution [V]."""
    return int(torch.argmax(probs)) if settings.greedy else int(torch.multinomial(probs, 1, generator=generator))


def choose_next(logits: torch.Tensor, settings: SamplingSettings, seen: Iterable[int],
                generator: torch.Generator) -> int:
    """Pick the next token id from raw logits [V] under the sampling settings (see sampling_distribution)."""
    return draw(sampling_distribution(logits, settings, seen), settings, generator)


def top_candidates(probs: torch.Tensor) -> list[tuple[int, float]]:
    """The TOP_CANDIDATES most likely (id, probability) of a distribution [V], most likely first; tokens a
    distribution rules out (probability 0) are not candidates."""
    top = torch.topk(probs, min(TOP_CANDIDATES, probs.numel()))
    return [(i, p) for i, p in zip(top.indices.tolist(), top.values.tolist(), strict=True) if p > 0]


def describe_distribution(logits: torch.Tensor, chosen: int) -> tuple[float, float, list[tuple[int, float]]]:
    """The chosen token's probability, the entropy (nats) and the top candidates of raw logits [V]."""
    log_probs = F.log_softmax(logits.float().cpu(), dim=-1)
    probs = log_probs.exp()
    entropy = float(-(probs * log_probs).sum())
    return float(probs[chosen]), entropy, top_candidates(probs)


def never_generated(tokenizer) -> list[int]:
    """Ids no sample may contain: a character tokenizer's <unk> stands for characters the corpus never had, so no
    training text holds it, yet an undertrained model gives it some probability."""
    return [tokenizer.unk_id] if tokenizer.kind == "char" and tokenizer.unk_id is not None else []


def generate(model, tokenizer, prompt: str | list[int], settings: SamplingSettings,
             device: torch.device | str = "cpu", should_stop: Callable[[], bool] | None = None
             ) -> Iterator[GeneratedToken]:
    """Yield tokens one by one as they are produced. `prompt` is text, or token ids to continue from.

    The same model, prompt and settings (with a fixed seed) give the same tokens wherever this is called.
    `should_stop` is polled before each token; generation also ends at max_new_tokens or a stop string.
    """
    settings.validate()
    check_vocabulary(model, tokenizer)
    ids = prompt_ids(tokenizer, prompt) if isinstance(prompt, str) else list(prompt)
    if not ids:
        raise TokenizerError("There is nothing to continue from; type a prompt first.")
    text = TextStream(tokenizer, ids)
    generator = torch.Generator().manual_seed(fresh_seed() if settings.seed is None else settings.seed)
    model.eval()
    decoder = Decoder(model, device)
    logits = decoder.feed(ids)
    seen = set(ids)
    longest_stop = max(map(len, settings.stop), default=0)
    recent = ""  # the end of the output, long enough to catch a stop string that ends in the next piece
    never = torch.tensor(never_generated(tokenizer), dtype=torch.long)
    for step in range(settings.max_new_tokens):
        if should_stop is not None and should_stop():
            return
        allowed = logits.index_fill(0, never.to(logits.device), -math.inf) if len(never) else logits
        sampled = sampling_distribution(allowed, settings, seen)
        token = draw(sampled, settings, generator)
        probability, entropy, candidates = describe_distribution(logits, token)
        piece = text.push(token)
        yield GeneratedToken(token, piece, probability, entropy, candidates, float(sampled[token]),
                             top_candidates(sampled))
        recent += piece
        if any(stop in recent for stop in settings.stop) or step + 1 == settings.max_new_tokens:
            return
        recent = recent[-(longest_stop - 1):] if longest_stop > 1 else ""
        seen.add(token)
        logits = decoder.feed([token])


@dataclass
class ScoredToken:
    id: int
    text: str
    # None for the first token, which has nothing before it to predict from
    loss: float | None  # nats: -log probability
    probability: float | None
    entropy: float | None  # of the model's distribution at this position, nats
    candidates: list[tuple[int, float]]  # what the model expected here: top (id, probability), most likely first


@dataclass
class ScoreResult:
    tokens: list[ScoredToken]
    total_loss: float  # nats over the predicted tokens
    predicted: int
    characters: int  # characters of the predicted tokens (the first token's are not predicted)

    @property
    def mean_loss(self) -> float:
        return self.total_loss / max(self.predicted, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.mean_loss, 50.0))

    @property
    def bits_per_char(self) -> float:
        return self.total_loss / math.log(2) / max(self.characters, 1)


def score_text(model, tokenizer, text: str, device: torch.device | str = "cpu") -> ScoreResult:
    """Per-token loss of `text` under the model: each token predicted from everything before it that the model
    can see (a Transformer's window slides as in generation)."""
    check_vocabulary(model, tokenizer)
    ids = encode_text(tokenizer, text, "text")
    if len(ids) < 2:
        raise TokenizerError("Scoring needs at least two tokens of text; paste a longer passage.")
    model.eval()
    decoder = Decoder(model, device)
    tokens = [ScoredToken(ids[0], tokenizer.token_text(ids[0]), None, None, None, [])]
    for begin in range(0, len(ids) - 1, SCORE_CHUNK):
        targets = ids[begin + 1:begin + 1 + SCORE_CHUNK]
        log_probs = F.log_softmax(decoder.feed(ids[begin:begin + len(targets)], all_logits=True).cpu(), dim=-1)
        probs = log_probs.exp()
        entropies = -(probs * log_probs).sum(dim=-1)
        chosen = log_probs.gather(1, torch.tensor(targets)[:, None])[:, 0]
        top = torch.topk(probs, min(TOP_CANDIDATES, probs.size(-1)))
        for i, target in enumerate(targets):
            tokens.append(ScoredToken(target, tokenizer.token_text(target), -float(chosen[i]),
                                      float(chosen[i].exp()), float(entropies[i]),
                                      list(zip(top.indices[i].tolist(), top.values[i].tolist()))))
    total = sum(token.loss or 0.0 for token in tokens[1:])  # every token but the first has its loss
    return ScoreResult(tokens, total, len(ids) - 1, max(1, len(text) - len(tokenizer.decode(ids[:1]))))
