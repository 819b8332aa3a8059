"""Looking inside a model on one text: a Transformer's attention weights, or an RNN's gradient saliency.

Both come back as an AttentionSnapshot holding a [L, H, T, T] array with the same reading: row t is position t
(the query, or the prediction made there), column s an input token, each row a distribution over tokens 0..t
(the future is exactly 0). So a view that shows one can show the other.

    snapshot = capture(model, tokenizer, "To be, or not to be")   # Transformer: attention; RNN: saliency
    probe = AttentionProbe("To be, or not to be", every=20)
    probe.attach(trainer)   # the trainer emits an AttentionSnapshot after every 20th step
    # or saves each into the run folder and emits AttentionSaved; load_snapshot(event.path) reads it back
    AttentionProbe("To be, or not to be", every=20, folder=trainer.folder.attention_dir).attach(trainer)
"""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .corpus import resolve_corpus_files
from .errors import CheckpointError, LMCoreError, TokenizerError
from .evaluation import evaluating
from .events import AttentionSaved
from .fileio import write_atomic
from .runs import RunFolder

SALIENCY_WINDOW = 256  # an RNN has no context limit, but saliency costs T forward/backward rows: cap T
LOGITS_BUDGET = 1 << 25  # logits elements per saliency chunk (128 MiB of float32)
KEEP_SNAPSHOTS = 5  # saved snapshots kept per folder: the newest, for a viewer in another process


@dataclass
class AttentionSnapshot:
    tokens: list[str]  # the text of each position, from tokenizer.token_text
    weights: np.ndarray  # [L, H, T, T] float32: row = query (or prediction) position, column = input token
    kind: str = "attention"  # "attention" (softmax weights) or "saliency" (an RNN's; L = H = 1)
    dropped: int = 0  # tokens cut from the front of the text to fit the model's window
    step: int | None = None  # the training step of the weights, when known
    run_dir: Path | None = None  # set by AttentionProbe: the run the weights come from
    predicted: list[str] | None = None  # saliency: the next token the model predicts at each position
    causal: bool = True  # a query sees only the keys before it (GPT); an encoder's sees them all


def capture(model, tokenizer, text: str, step: int | None = None) -> AttentionSnapshot:
    """Attention for a model that has it (a Transformer or an encoder), per-token gradient saliency for one that
    does not."""
    if model.family in ("transformer", "encoder"):
        return capture_attention(model, tokenizer, text, step)
    return gradient_saliency(model, tokenizer, text, step=step)


def capture_attention(model, tokenizer, text: str, step: int | None = None) -> AttentionSnapshot:
    """Every layer's and head's attention probabilities over the last context_length tokens of `text`."""
    ids, dropped = _encode_window(tokenizer, text, model.config.context_length)
    with evaluating(model), torch.no_grad():
        out = model(torch.tensor([ids], device=_device(model)), capture_attention=True)
    weights = out.attention[:, 0].float().cpu().numpy()  # [L, B=1, H, T, T] -> [L, H, T, T]
    return AttentionSnapshot(_texts(tokenizer, ids), weights, "attention", dropped, step,
                             causal=model.family != "encoder")


def gradient_saliency(model, tokenizer, text: str, window: int = SALIENCY_WINDOW,
                      step: int | None = None) -> AttentionSnapshot:
    """How much each input token drives each next-token prediction: for position t, the gradient of the log-
    probability of the model's own top prediction w.r.t. the embedding of every token s <= t, times that
    embedding (gradient × input), its L2 norm, normalised so each row sums to 1. Works for any family.

    Every row needs its own backward pass; they are batched: row b of the batch is the text up to the furthest
    position of its chunk, and only its prediction at position b enters the summed objective, so the gradient
    reaching batch row b is exactly that prediction's gradient.
    """
    ids, dropped = _encode_window(tokenizer, text, window)
    T, device = len(ids), _device(model)
    ids_t = torch.tensor(ids, device=device)
    scores = torch.zeros(T, T)
    predicted = [0] * T
    rows_per_chunk = max(1, LOGITS_BUDGET // (T * tokenizer.vocab_size))
    # cuDNN's RNN backward refuses to run in eval mode; eval mode keeps dropout off and the RNG untouched.
    with evaluating(model), torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        for start in range(0, T, rows_per_chunk):
            stop = min(T, start + rows_per_chunk)
            with _embeddings_as_leaves(model) as leaves:
                logits = model(ids_t[:stop].expand(stop - start, stop)).logits
            embedded = leaves[0]
            rows = torch.arange(stop - start, device=device)
            log_probs = logits[rows, rows + start].float().log_softmax(-1)  # [rows, V]
            top = log_probs.argmax(-1)
            (grad,) = torch.autograd.grad(log_probs[rows, top].sum(), embedded)
            scores[start:stop, :stop] = (grad * embedded).detach().norm(dim=-1).float().cpu()
            predicted[start:stop] = top.tolist()
    scores /= scores.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    return AttentionSnapshot(_texts(tokenizer, ids), scores[None, None].numpy(), "saliency", dropped, step,
                             predicted=_texts(tokenizer, predicted))


class AttentionProbe:
    """A Trainer periodic task: after every `every`-th step, capture() `text` with the model being trained.

    It runs on the training thread between steps, in eval mode and without touching gradients, the optimizer or
    the random number generator, so the training run continues exactly as it would without it.

    Without a `folder` the trainer emits each AttentionSnapshot; with one, each is saved there (save_snapshot)
    and the trainer emits an AttentionSaved instead, for a reader in another process.
    """

    def __init__(self, text: str, every: int, folder: Path | None = None):
        if not text:
            raise ValueError("the probe text is empty")
        if every < 1:
            raise ValueError(f"every = {every} must be at least 1")
        self.text, self.every, self.folder = text, every, folder

    def attach(self, trainer) -> int:
        """Register with `trainer` (thread-safe); returns the handle for trainer.remove_periodic."""
        return trainer.add_periodic(self.every, self)

    def __call__(self, trainer) -> AttentionSnapshot | AttentionSaved:
        snapshot = capture(trainer.model, trainer.tokenizer, self.text, step=trainer.step)
        snapshot.run_dir = trainer.folder.path
        if self.folder is None:
            return snapshot
        return AttentionSaved(trainer.step, save_snapshot(snapshot, self.folder), snapshot.kind)


def save_snapshot(snapshot: AttentionSnapshot, folder: Path) -> Path:
    """Write `snapshot` as folder/step-<step>.npy (the weights, float32) and .json (the rest), each atomically,
    and delete all but the newest KEEP_SNAPSHOTS pairs. Returns the .npy path."""
    folder = Path(folder)
    path = folder / f"step-{snapshot.step:07d}.npy"
    weights = io.BytesIO()
    np.save(weights, snapshot.weights.astype(np.float32, copy=False), allow_pickle=False)
    write_atomic(path, weights.getvalue())
    about = {"tokens": snapshot.tokens, "kind": snapshot.kind, "dropped": snapshot.dropped, "step": snapshot.step,
             "predicted": snapshot.predicted, "causal": snapshot.causal}
    write_atomic(path.with_suffix(".json"), json.dumps(about).encode("utf-8"))
    # Newest by time, not by step: a run resumed from an earlier checkpoint saves lower steps again.
    saved = sorted(folder.glob("step-*.npy"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    for old in saved[:-KEEP_SNAPSHOTS]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def load_snapshot(path: Path) -> AttentionSnapshot:
    """A snapshot written by save_snapshot, from its .npy path (the .json beside it holds the rest)."""
    path = Path(path)
    try:
        weights = np.load(path, allow_pickle=False)  # never unpickle
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Cannot read the attention weights {path} ({exc}).") from None
    about_path = path.with_suffix(".json")
    try:
        about = json.loads(about_path.read_text(encoding="utf-8"))
        snapshot = AttentionSnapshot(about["tokens"], weights, about["kind"], about["dropped"], about["step"],
                                     predicted=about["predicted"], causal=about.get("causal", True))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"Cannot read the attention snapshot {about_path} ({exc!r}).") from None
    if weights.ndim != 4 or weights.shape[-2:] != (len(snapshot.tokens),) * 2:
        raise CheckpointError(f"{path} holds weights of shape {weights.shape}, which do not fit the "
                              f"{len(snapshot.tokens)} tokens of {about_path}.")
    return snapshot


def opening_text(run_dir: Path, chars: int = 100) -> str:
    """Whole lines from the start of the run's training corpus, at most `chars`: text the model has learned
    from, a natural first thing to look at. Empty when the corpus cannot be read."""
    try:
        path = resolve_corpus_files(RunFolder(run_dir).load_config().data.train)[0]
        with path.open(encoding="utf-8", errors="replace") as f:
            head = f.read(chars)
    except (LMCoreError, OSError):
        return ""
    return head[:head.rfind("\n") + 1] or head


def _encode_window(tokenizer, text: str, window: int) -> tuple[list[int], int]:
    """The ids of the last `window` tokens of `text` (unknown characters as <unk>) and how many were cut."""
    ids = tokenizer.encode(text, unknown="replace")
    if not ids:
        raise TokenizerError("The text holds no tokens; type or paste some text first.")
    return ids[-window:], max(0, len(ids) - window)


def _texts(tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.token_text(i) for i in ids]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _embeddings_as_leaves(model):
    """Swap the token embedding's output for a leaf tensor (collected in the yielded list), so gradients stop
    there: the parameters' .grad stays untouched, and frozen embeddings still get a saliency."""
    leaves: list[torch.Tensor] = []

    def swap(module, inputs, output):
        leaves.append(output.detach().requires_grad_())
        return leaves[-1]

    handle = (model.encoder if model.family == "rnn" else model.wte).register_forward_hook(swap)
    try:
        yield leaves
    finally:
        handle.remove()
