"""Loss over a whole token stream: shared by the trainer's periodic evaluation and `lmcore eval`. For a masked
language model (the encoder): the loss and accuracy over the masked tokens of a fixed masking of the stream."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .batches import evaluation_batches
from .masking import EVAL_MASK_SEED, MaskedLM
from .models import IGNORE_INDEX

EVAL_WINDOWS_PER_BATCH = 64  # Transformer evaluation batch (no gradients, so larger than training's)
EVAL_RNN_STREAMS = 10  # as the PyTorch word-language-model example


@dataclass
class EvalResult:
    loss: float  # mean nats per predicted token
    tokens: int  # predicted tokens covered (the encoder's: the masked ones)
    accuracy: float | None = None  # the encoder's: share of the masked tokens it predicts right (its top choice)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))

    @property
    def bits_per_token(self) -> float:
        return self.loss / math.log(2)

    def bits_per_char(self, chars_per_token: float) -> float:
        """Bits per character of the text, given how many characters a token of it holds on average."""
        return self.bits_per_token / chars_per_token


def eval_batch_size(family: str) -> int:
    return EVAL_RNN_STREAMS if family == "rnn" else EVAL_WINDOWS_PER_BATCH


@torch.no_grad()
def evaluate_ids(model, ids: np.ndarray, context: int, device: torch.device,
                 autocast: torch.dtype | None = None, max_batches: int = 0, mlm: MaskedLM | None = None) -> EvalResult:
    """Mean loss of `model` over `ids`: non-overlapping windows (Transformer) or carried streams (RNN); for the
    encoder, evaluate_masked (`mlm` gives it the tokenizer's special tokens: MaskedLM.of(tokenizer))."""
    family = model.family
    if family == "encoder":
        if mlm is None:
            raise ValueError("an encoder is evaluated on masked tokens: pass mlm=MaskedLM.of(tokenizer)")
        return evaluate_masked(model, ids, context, device, mlm, autocast, max_batches)
    batch = eval_batch_size(family)
    hidden = model.init_state(batch, device) if family == "rnn" else None
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    with evaluating(model, device, autocast):
        for x, y in evaluation_batches(ids, family, context, batch, max_batches):
            x, y = x.to(device), y.to(device)
            out = model(x, targets=y, state=hidden)
            hidden = out.state if family == "rnn" else None
            total += out.loss.double() * y.numel()
            count += y.numel()
    return EvalResult((total / max(count, 1)).item(), count)


@torch.no_grad()
def evaluate_masked(model, ids: np.ndarray, context: int, device: torch.device, mlm: MaskedLM,
                    autocast: torch.dtype | None = None, max_batches: int = 0) -> EvalResult:
    """A masked LM's loss (mean nats per masked token) and accuracy over non-overlapping windows of `ids`, each
    framed as [CLS] window [SEP] and masked as in training, by a generator seeded with EVAL_MASK_SEED: every
    evaluation hides the same tokens the same way, so its values compare from one evaluation to the next."""
    generator = torch.Generator().manual_seed(EVAL_MASK_SEED)
    total = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    with evaluating(model, device, autocast):
        for windows, _ in evaluation_batches(ids, "encoder", context, EVAL_WINDOWS_PER_BATCH, max_batches):
            x, y = mlm.mask(mlm.frame(windows), generator)
            chosen = y != IGNORE_INDEX
            count += int(chosen.sum())
            chosen, y = chosen.to(device), y.to(device)
            logits = model(x.to(device)).logits[chosen].float()
            total += F.cross_entropy(logits, y[chosen], reduction="sum").double()
            correct += (logits.argmax(dim=-1) == y[chosen]).sum()
    n = max(count, 1)
    return EvalResult((total / n).item(), count, correct.item() / n)


@contextlib.contextmanager
def evaluating(model, device: torch.device | str = "cpu", autocast: torch.dtype | None = None):
    """Eval mode (and autocast on `device`, if given) for the block, then the mode the model had (the trainer's model
    is in train mode)."""
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(torch.device(device).type, dtype=autocast) if autocast else contextlib.nullcontext():
            yield
    finally:
        model.train(was_training)
