"""The Generate tab's worker: loads a run's model and runs lmcore generation and scoring off the GUI thread.

The worker lives on its own thread (background.py); the tab calls its slots through queued signals and hears
back through its signals. Tokens travel in batches at most every EMIT_INTERVAL seconds, so fast generation cannot
flood the GUI thread's event loop. Stop is a threading.Event the generation loop polls between tokens.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from lmcore.checkpoint import load_trained_model, resolve_checkpoint
from lmcore.device import describe_device, pick_device
from lmcore.errors import LMCoreError
from lmcore.generation import fresh_seed, generate, prompt_ids, score_text

from ..common.background import report_errors
from .session import GenerationFinished, GenerationRequest, GenerationStarted, ModelSummary, TokenInfo

EMIT_INTERVAL = 0.05  # seconds between token batches sent to the GUI


class GenerationWorker(QObject):
    loaded = Signal(object)  # ModelSummary
    started = Signal(object)  # GenerationStarted
    tokens = Signal(list)  # [TokenInfo]
    finished = Signal(object)  # GenerationFinished
    scored = Signal(object, list)  # lmcore ScoreResult, [TokenInfo]
    failed = Signal(str)  # a message for the user

    def __init__(self):
        super().__init__()
        self.stop_requested = threading.Event()  # set from the GUI thread; cleared there before each request
        self.model = self.tokenizer = None
        self.device = pick_device("auto")

    @Slot(object, str)
    def load(self, run_dir: Path, which: str) -> None:
        self.model = self.tokenizer = None
        report_errors(lambda: self._load(run_dir, which), self.failed.emit)

    @Slot(object)
    def generate(self, request: GenerationRequest) -> None:
        report_errors(lambda: self._generate(request), self.failed.emit)

    @Slot(str)
    def score(self, text: str) -> None:
        report_errors(lambda: self._score(text), self.failed.emit)

    def _load(self, run_dir: Path, which: str) -> None:
        path = resolve_checkpoint(run_dir, which)  # best falls back to last: the summary says which was loaded
        self.model, self.tokenizer, meta = load_trained_model(path, which, self.device)
        self.loaded.emit(summarize(run_dir, path.stem, self.model, self.tokenizer, meta, self.device))

    def _loaded_model(self):
        if self.model is None:
            raise LMCoreError("No model is loaded; pick a run with a checkpoint first.")
        return self.model

    def _generate(self, request: GenerationRequest) -> None:
        model = self._loaded_model()
        settings = request.settings
        if settings.seed is None:  # drawn here so the tab can show it and the user can reuse it
            settings = replace(settings, seed=fresh_seed())
        settings.validate()  # before `started`, so bad settings leave the current output alone
        begin = time.perf_counter()
        ids = prompt_ids(self.tokenizer, request.prompt) if isinstance(request.prompt, str) else request.prompt
        self.started.emit(GenerationStarted(list(ids), settings.seed))
        batch, last_emit, count, first_token = [], 0.0, 0, None
        for token in generate(model, self.tokenizer, ids, settings, self.device,
                              should_stop=self.stop_requested.is_set):
            count += 1
            now = time.perf_counter()
            if first_token is None:
                first_token = now - begin
            batch.append(self._info(token))
            if now - last_emit >= EMIT_INTERVAL:
                self.tokens.emit(batch)
                batch, last_emit = [], now
        if batch:
            self.tokens.emit(batch)
        reason = ("stopped" if self.stop_requested.is_set() else
                  "max tokens" if count == settings.max_new_tokens else "stop string")
        self.finished.emit(GenerationFinished(count, time.perf_counter() - begin, first_token, reason))

    def _score(self, text: str) -> None:
        result = score_text(self._loaded_model(), self.tokenizer, text, self.device)
        self.scored.emit(result, [self._info(token) for token in result.tokens])

    def _info(self, token) -> TokenInfo:
        """A GeneratedToken or ScoredToken with its candidates' text, for the views."""
        named = [(self.tokenizer.token_text(i), p, i == token.id) for i, p in token.candidates]
        return TokenInfo(token.id, token.text, token.probability, token.entropy, named,
                         getattr(token, "loss", None))


def summarize(run_dir: Path, checkpoint: str, model, tokenizer, meta: dict, device) -> ModelSummary:
    c = model.config
    millions = model.num_parameters() / 1e6
    if model.family == "transformer":
        shape = (f"Transformer · {c.n_layer} layers × {c.n_head} heads · {c.n_embd}-d · "
                 f"context {c.context_length} · {c.positional} positions")
    else:
        shape = f"{c.cell.upper()} · {c.n_layer} layers · {c.n_hidden} hidden"
    best = meta.get("best_val_loss")
    loss = f" · best val loss {best:.3f}" if best is not None else ""
    return ModelSummary(
        run_dir=run_dir, checkpoint=checkpoint, family=model.family,
        description=f"{shape} · {millions:.2f} M parameters",
        checkpoint_line=f"{checkpoint} checkpoint · step {meta.get('step', '?')}{loss} · on {describe_device(device)}",
        tokenizer_line=f"{tokenizer.kind} tokenizer · {tokenizer.vocab_size:,} tokens",
        context_length=getattr(c, "context_length", None))
