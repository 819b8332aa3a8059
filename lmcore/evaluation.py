"""Loss over a whole token stream: shared by the trainer's periodic evaluation and `lmcore eval`."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from .batches import evaluation_batches

EVAL_WINDOWS_PER_BATCH = 64  # Transformer evaluation batch (no gradients, so larger than training's)
EVAL_RNN_STREAMS = 10  # as the PyTorch word-language-model example


@dataclass
class EvalResult:
    loss: float  # mean nats per predicted token
    tokens: int  # predicted tokens covered

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
                 autocast: torch.dtype | None = None, max_batches: int = 0) -> EvalResult:
    """Mean loss of `model` over `ids`: non-overlapping windows (Transformer) or carried streams (RNN)."""
    was_training = model.training
    model.eval()
    family = model.family
    batch = eval_batch_size(family)
    hidden = model.init_state(batch, device) if family == "rnn" else None
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    cast = torch.autocast(device.type, dtype=autocast) if autocast else contextlib.nullcontext()
    for x, y in evaluation_batches(ids, family, context, batch, max_batches):
        x, y = x.to(device), y.to(device)
        with cast:
            out = model(x, targets=y, state=hidden)
        hidden = out.state if family == "rnn" else None
        total += out.loss.double() * y.numel()
        count += y.numel()
    model.train(was_training)
    return EvalResult((total / max(count, 1)).item(), count)
