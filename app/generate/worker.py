"""The Generate tab's worker: loads runs' models and runs lmcore generation, scoring and an encoder's
fill-in-the-blank (fill_mask) off the GUI thread.

The worker lives on its own thread (background.py); the tab calls its slots through queued signals and hears
back through its signals. It holds two models, one per slot (session.SLOT_VIEWS): side by side, the tab queues one
generation for each, and the thread runs them one after the other. Slot 0's may be an ensemble of runs
(ensemble.py). Inputs go where each model's tensors are (an int8 copy's: the CPU, even with a GPU). Tokens travel
in batches at most every EMIT_INTERVAL seconds, so fast generation cannot flood the GUI thread's event loop. Stop is
a threading.Event the generation loop polls between tokens.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from lmcore.checkpoint import load_trained_model, model_device, resolve_checkpoint
from lmcore.device import describe_device, pick_device
from lmcore.ensemble import Ensemble, load_ensemble
from lmcore.errors import LMCoreError
from lmcore.generation import GeneratedToken, fill_mask, generate, prompt_ids, score_text

from ..common.background import report_errors
from ..common.text import FAMILY_NAMES
from .ensemble import summarize_ensemble
from .session import (FILL, SCORE, Candidate, GenerationFinished, GenerationRequest, GenerationStarted, JobFailed,
                      ModelSummary, TokenInfo, describe_sampling)

EMIT_INTERVAL = 0.05  # seconds between token batches sent to the GUI


class GenerationWorker(QObject):
    loaded = Signal(object)  # ModelSummary
    started = Signal(object)  # GenerationStarted
    tokens = Signal(str, list)  # the view they are for, [TokenInfo]
    finished = Signal(object)  # GenerationFinished
    scored = Signal(object, list, list)  # lmcore ScoreResult, [TokenInfo], an ensemble's members' [ScoreResult]
    filled = Signal(str, list)  # the text, and fill_mask's answer: [(offset of a blank, [(candidate, probability)])]
    failed = Signal(object)  # JobFailed

    def __init__(self):
        super().__init__()
        self.stop_requested = threading.Event()  # set from the GUI thread; cleared there before each request
        self.models: dict[int, tuple] = {}  # slot -> (model, tokenizer)
        self.device = pick_device("auto")  # where models are loaded

    @Slot(int, object, str)
    def load(self, slot: int, run_dir: Path, which: str) -> None:
        self.models.pop(slot, None)
        self._report(lambda: self._load(slot, run_dir, which), None, slot)

    @Slot(list, str, str)
    def load_ensemble(self, runs: list[Path], which: str, mean: str) -> None:
        """Load slot 0 as the ensemble of `runs` (the chosen run first)."""
        self.models.pop(0, None)
        self._report(lambda: self._load_ensemble(runs, which, mean), None)

    @Slot(object)
    def generate(self, request: GenerationRequest) -> None:
        self._report(lambda: self._generate(request), request.view, request.slot)

    @Slot(str)
    def score(self, text: str) -> None:
        self._report(lambda: self._score(text), SCORE)

    @Slot(str)
    def fill(self, text: str) -> None:
        self._report(lambda: self._fill(text), FILL)

    def _report(self, work, view: str | None, slot: int = 0) -> None:
        """Run `work`; an error is reported as the failure of the job for `view` (None: loading model `slot`)."""
        report_errors(work, lambda message: self.failed.emit(JobFailed(message, view, slot)))

    def _load(self, slot: int, run_dir: Path, which: str) -> None:
        path = resolve_checkpoint(run_dir, which)  # best falls back to last: the summary says which was loaded
        model, tokenizer, meta = load_trained_model(path, which, self.device)
        self.models[slot] = model, tokenizer
        self.loaded.emit(summarize(run_dir, path.stem, model, tokenizer, meta, model_device(model), slot))

    def _load_ensemble(self, runs: list[Path], which: str, mean: str) -> None:
        try:
            ensemble, tokenizer, metas = load_ensemble(runs, which, self.device, mean)
        except LMCoreError as exc:  # e.g. a run with another tokenizer: the chosen run alone, saying why
            self._load(0, runs[0], which)
            raise LMCoreError(f"{exc} The run is used alone.") from None
        self.models[0] = ensemble, tokenizer
        self.loaded.emit(summarize_ensemble(runs, which, ensemble, tokenizer, metas, mean))

    def _loaded_model(self, slot: int = 0) -> tuple:
        if slot not in self.models:
            raise LMCoreError("No model is loaded; pick a run with a checkpoint first.")
        return self.models[slot]

    def _generate(self, request: GenerationRequest) -> None:
        model, tokenizer = self._loaded_model(request.slot)
        settings = request.settings  # the session has drawn the seed, so that the tab can show and reuse it
        settings.validate()  # before `started`, so bad settings leave the current output alone
        sampling = describe_sampling(settings)
        begin = time.perf_counter()
        ids = prompt_ids(tokenizer, request.prompt) if isinstance(request.prompt, str) else request.prompt
        self.started.emit(GenerationStarted(list(ids), settings.seed, request.view))
        batch, last_emit, count, first_token = [], 0.0, 0, None
        for token in generate(model, tokenizer, ids, settings, model_device(model),
                              should_stop=self.stop_requested.is_set):
            count += 1
            now = time.perf_counter()
            if first_token is None:
                first_token = now - begin
            batch.append(token_info(token, tokenizer, sampling))
            if now - last_emit >= EMIT_INTERVAL:
                self.tokens.emit(request.view, batch)
                batch, last_emit = [], now
        if batch:
            self.tokens.emit(request.view, batch)
        reason = ("stopped" if self.stop_requested.is_set() else
                  "max tokens" if count == settings.max_new_tokens else "stop string")
        self.finished.emit(GenerationFinished(count, time.perf_counter() - begin, first_token, reason, request.view))

    def _score(self, text: str) -> None:
        model, tokenizer = self._loaded_model()
        device = model_device(model)
        result = score_text(model, tokenizer, text, device)
        members = model.models if isinstance(model, Ensemble) else []  # each scored alone too, for the table
        self.scored.emit(result, [token_info(token, tokenizer) for token in result.tokens],
                         [score_text(member, tokenizer, text, device) for member in members])

    def _fill(self, text: str) -> None:
        model, tokenizer = self._loaded_model()
        self.filled.emit(text, fill_mask(model, tokenizer, text, model_device(model)))


def token_info(token, tokenizer, sampling: str = "") -> TokenInfo:
    """A ScoredToken, or a GeneratedToken drawn under the settings `sampling` describes, with its candidates'
    text, for the views."""
    def named(candidates: list[tuple[int, float]]) -> list[Candidate]:
        return [Candidate(i, tokenizer.token_text(i), p) for i, p in candidates]

    info = TokenInfo(token.id, token.text, token.probability, token.entropy, named(token.candidates),
                     getattr(token, "loss", None))
    if isinstance(token, GeneratedToken):
        info.sampled_probability, info.sampling = token.sampled_probability, sampling
        info.sampled_candidates = named(token.sampled_candidates)
    return info


def summarize(run_dir: Path, checkpoint: str, model, tokenizer, meta: dict, device, slot: int = 0) -> ModelSummary:
    c = model.config
    millions = model.num_parameters() / 1e6
    if model.family in ("transformer", "encoder"):
        shape = (f"{FAMILY_NAMES[model.family]} · {c.n_layer} layers × {c.n_head} heads · {c.n_embd}-d · "
                 f"context {c.context_length} · {c.positional} positions")
    elif model.family == "mlp":
        shape = (f"MLP · n = {c.n_gram} · {c.n_embd}-d embeddings · {c.n_layer} × {c.n_hidden} hidden"
                 + (" · direct links" if c.direct else ""))
    elif model.family == "conv":
        shape = (f"CNN · {c.n_layer} gated blocks · {c.n_embd} channels · kernel {c.kernel_size} · "
                 f"receptive field {model.receptive_field()} tokens")
    else:
        shape = f"{c.cell.upper()} · {c.n_layer} layers · {c.n_hidden} hidden"
    best = meta.get("best_val_loss")
    loss = f" · best val loss {best:.3f}" if best is not None else ""
    return ModelSummary(
        run_dir=run_dir, checkpoint=checkpoint, family=model.family,
        description=f"{shape} · {millions:.2f} M parameters",
        checkpoint_line=f"{checkpoint} checkpoint · step {meta.get('step', '?')}{loss} · on {describe_device(device)}",
        tokenizer_line=f"{tokenizer.kind} tokenizer · {tokenizer.vocab_size:,} tokens",
        context_length=getattr(c, "context_length", None), slot=slot, tokenizer=tokenizer)
