"""Text generation and scoring: the one engine path behind `lmcore sample` and the GUI's Generate tab; and
filling in the blanks of a text, what a masked language model (the encoder) does instead (fill_mask).

Each new token costs one model step: the RNN carries its hidden state, the Transformer its KV cache, the MLP its
last n - 1 embeddings and the CNN each block's last inputs (the state that covers its receptive field).

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
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import ConfigError, LMCoreError, TokenizerError
from .masking import FRAME, MaskedLM
from .tokenizers import MASK

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
        unseen = list(dict.fromkeys(c for c, i in zip(text, ids, strict=True) if i == tokenizer.unk_id))
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


def check_continues_text(model) -> None:
    """Generation and scoring predict each token from those before it, which an encoder never learned."""
    if model.family == "encoder":
        raise LMCoreError("This model is a masked-language encoder (BERT-style): it fills in blanks, it does not "
                          "continue text or predict the next token. Write [MASK] where a token is missing and ask "
                          "it to fill the mask, or pick a Transformer or RNN run to generate.")


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
    the cached path is tested and benchmarked against. With `batch` > 1 it holds that many sequences of equal length
    (feed_rows), whose windows therefore slide together.
    """

    def __init__(self, model, device: torch.device | str, cache: bool = True, batch: int = 1):
        self.model, self.device, self.cache, self.batch = model, torch.device(device), cache, batch
        # None: a model whose state holds all it reads (an RNN, which sees everything; the MLP and CNN, which see a
        # fixed number of tokens back): fed the whole history once, then each new token alone
        self.window = getattr(model.config, "context_length", None)
        self.histories: list[list[int]] = [[] for _ in range(batch)]
        self.start = 0  # history[start:] is what the state holds, in every row
        self.state = None

    @property
    def history(self) -> list[int]:
        """The ids fed so far (the first row's, with a batch)."""
        return self.histories[0]

    @torch.inference_mode()
    def feed(self, ids: Iterable[int], all_logits: bool = False) -> torch.Tensor:
        """Append `ids`; return the logits [V] for the token after them, or with `all_logits` the logits
        [len(ids), V] after each of them, each computed from the window that was current at its position."""
        ids = list(ids)
        if not all_logits:
            return self._advance([ids], 1)[0, -1]
        pieces = []
        while ids:  # one piece per window position: a slide in the middle would change earlier positions' context
            n = len(self.history)
            room = window_start(n + 1, self.window) + self.window - n if self.window else len(ids)
            pieces.append(self._advance([ids[:room]], min(room, len(ids)))[0])
            ids = ids[room:]
        return torch.cat(pieces)

    @torch.inference_mode()
    def feed_rows(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Append one list of ids to each of the `batch` rows (lists of one length); return the logits [batch, V]
        for the token after each row. One forward pass for all the rows."""
        return self._advance([list(row) for row in rows], 1)[:, -1]

    def _advance(self, rows: list[list[int]], wanted: int) -> torch.Tensor:
        """Feed a list of ids to each row (all within one window position) and return the logits
        [batch, wanted, V] of the last positions."""
        for history, ids in zip(self.histories, rows, strict=True):
            history.extend(ids)
        start = window_start(len(self.history), self.window)
        if self.cache and self.state is not None and start == self.start:
            inputs = rows
        else:  # first call, a slide, or recompute mode: run the whole window from a fresh state
            self.start, inputs = start, [history[start:] for history in self.histories]
            self.state = self.model.init_state(self.batch, self.device) if self.cache else None
        out = self.model(torch.tensor(inputs, dtype=torch.long, device=self.device),
                         state=self.state, last_only=wanted == 1)
        if self.cache:
            self.state = out.state
        return out.logits[:, -wanted:].float()


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


class Continuation:
    """One sequence being sampled: its random generator, the ids it has seen, its text so far and its stop strings.
    next_token(logits) draws its next token from the model's raw logits [V]; `done` once its output holds a stop
    string. generate() samples one; generate_batch() several, from one forward pass a token."""

    def __init__(self, tokenizer, ids: list[int], settings: SamplingSettings, seed: int):
        self.settings, self.seed = settings, seed
        self.text = TextStream(tokenizer, ids)
        self.generator = torch.Generator().manual_seed(seed)
        self.seen = set(ids)
        self.never = torch.tensor(never_generated(tokenizer), dtype=torch.long)
        self.longest_stop = max(map(len, settings.stop), default=0)
        self.recent = ""  # the end of the output, long enough to catch a stop string that ends in the next piece
        self.done = False

    def next_token(self, logits: torch.Tensor) -> GeneratedToken:
        settings = self.settings
        allowed = logits.index_fill(0, self.never.to(logits.device), -math.inf) if len(self.never) else logits
        sampled = sampling_distribution(allowed, settings, self.seen)
        token = draw(sampled, settings, self.generator)
        probability, entropy, candidates = describe_distribution(logits, token)
        piece = self.text.push(token)
        self.recent += piece
        self.done = any(stop in self.recent for stop in settings.stop)
        self.recent = self.recent[-(self.longest_stop - 1):] if self.longest_stop > 1 else ""
        self.seen.add(token)
        return GeneratedToken(token, piece, probability, entropy, candidates, float(sampled[token]),
                              top_candidates(sampled))


def start_ids(model, tokenizer, prompt: str | list[int], settings: SamplingSettings) -> list[int]:
    """The ids generation starts from (`prompt` is text, or token ids to continue from), after checking the
    settings and that the model and tokenizer belong together."""
    settings.validate()
    check_continues_text(model)
    check_vocabulary(model, tokenizer)
    ids = prompt_ids(tokenizer, prompt) if isinstance(prompt, str) else list(prompt)
    if not ids:
        raise TokenizerError("There is nothing to continue from; type a prompt first.")
    return ids


def generate(model, tokenizer, prompt: str | list[int], settings: SamplingSettings,
             device: torch.device | str = "cpu", should_stop: Callable[[], bool] | None = None
             ) -> Iterator[GeneratedToken]:
    """Yield tokens one by one as they are produced. `prompt` is text, or token ids to continue from.

    The same model, prompt and settings (with a fixed seed) give the same tokens wherever this is called.
    `should_stop` is polled before each token; generation also ends at max_new_tokens or a stop string.
    """
    ids = start_ids(model, tokenizer, prompt, settings)
    sequence = Continuation(tokenizer, ids, settings, fresh_seed() if settings.seed is None else settings.seed)
    model.eval()
    decoder = Decoder(model, device)
    logits = decoder.feed(ids)
    for step in range(settings.max_new_tokens):
        if should_stop is not None and should_stop():
            return
        token = sequence.next_token(logits)
        yield token
        if sequence.done or step + 1 == settings.max_new_tokens:
            return
        logits = decoder.feed([token.id])


@dataclass
class Sample:
    seed: int  # what `generate` would take to give the same tokens
    tokens: list[GeneratedToken]

    @property
    def text(self) -> str:
        return "".join(token.text for token in self.tokens)


def generate_batch(model, tokenizer, prompt: str | list[int], settings: SamplingSettings, n: int,
                   device: torch.device | str = "cpu") -> list[Sample]:
    """`n` samples of one prompt, generated together: each new token is one forward pass over n rows.

    Sample i draws with seed settings.seed + i (a fresh seed + i without one), so it holds the tokens `generate`
    gives with that seed: the same sampling, from logits computed in a batch rather than alone, which agree to
    float rounding (a draw could differ only where its random number falls within that rounding of the boundary
    between two tokens). Each sample ends at its own stop string or at max_new_tokens."""
    ids = start_ids(model, tokenizer, prompt, settings)
    if n < 1:
        raise ConfigError(f"The number of samples is {n}; ask for at least 1.")
    first = fresh_seed() if settings.seed is None else settings.seed
    sequences = [Continuation(tokenizer, ids, settings, first + i) for i in range(n)]
    samples = [Sample(sequence.seed, []) for sequence in sequences]
    model.eval()
    decoder = Decoder(model, device, batch=n)
    logits = decoder.feed_rows([ids] * n)
    for step in range(settings.max_new_tokens):
        for sequence, sample, row in zip(sequences, samples, logits, strict=True):
            if not sequence.done:
                sample.tokens.append(sequence.next_token(row))
        if all(sequence.done for sequence in sequences) or step + 1 == settings.max_new_tokens:
            break
        # a finished sample's row is fed its last token again, to keep the batch whole; its logits go unused
        logits = decoder.feed_rows([[sample.tokens[-1].id] for sample in samples])
    return samples


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
    check_continues_text(model)
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
                                      list(zip(top.indices[i].tolist(), top.values[i].tolist(), strict=True))))
    total = sum(token.loss or 0.0 for token in tokens[1:])  # every token but the first has its loss
    return ScoreResult(tokens, total, len(ids) - 1, max(1, len(text) - len(tokenizer.decode(ids[:1]))))


@torch.inference_mode()
def fill_mask(model, tokenizer, text: str, device: torch.device | str = "cpu",
              top: int = TOP_CANDIDATES) -> list[tuple[int, list[tuple[str, float]]]]:
    """What a masked LM (the encoder) would put in each "[MASK]" of `text`: for each, in order, its character
    offset in `text` and the `top` most likely tokens as (token text, probability), most likely first. All
    masks are filled at once, each without knowing the others' answers; special tokens are never candidates (the
    probabilities are over the other tokens), so each mask's candidates sum to at most 1."""
    if model.family != "encoder":
        raise LMCoreError("Filling in [MASK] needs a masked-language encoder; this model continues text: generate "
                          "with it instead.")
    check_vocabulary(model, tokenizer)
    mlm = MaskedLM.of(tokenizer)
    pieces = text.split(MASK)
    if len(pieces) == 1:
        raise TokenizerError(f"The text has no {MASK}; write {MASK} where the model should fill in a token.")
    ids: list[int] = []
    masks = []  # where each mask is in ids
    for n, piece in enumerate(pieces):
        if n:  # a mask stood before this piece
            masks.append(len(ids))
            ids.append(mlm.mask_id)
        ids += encode_text(tokenizer, piece, "text") if piece else []
    if len(ids) + FRAME > model.config.context_length:
        raise TokenizerError(f"The text has {len(ids)} tokens; this model reads at most "
                             f"{model.config.context_length - FRAME} at once. Shorten it around the masks.")
    model.eval()
    inputs, padding = mlm.frame_and_pad([ids])
    logits = model(inputs.to(device), key_padding_mask=padding.to(device)).logits[0].float().cpu()
    logits[:, list(mlm.special_ids)] = -math.inf
    probs = F.softmax(logits[[m + 1 for m in masks]], dim=-1)  # + 1: [CLS] comes first
    offsets = [found.start() for found in re.finditer(re.escape(MASK), text)]
    found = []
    for offset, row in zip(offsets, probs, strict=True):
        best = torch.topk(row, min(top, row.numel()))
        found.append((offset, [(tokenizer.token_text(i), p) for i, p in zip(best.indices.tolist(),
                                                                           best.values.tolist(), strict=True)]))
    return found
