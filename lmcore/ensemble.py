"""Ensembles: several trained runs that share a tokenizer, predicting together.

An Ensemble has the interface of a model wherever text is generated or scored (lmcore.generation's Decoder,
generate, generate_batch, score_text) and evaluated (lmcore.evaluation.evaluate_ids): a forward pass runs every
member on the same tokens, each with its own state (an RNN's hidden state, a Transformer's KV cache), and returns
the log of the mixed next-token distribution as its "logits":

    mean of probabilities (default):   log( (1/n) Σ softmax(logits_i) )
    mean of log-probabilities:         log_softmax( (1/n) Σ log_softmax(logits_i) )   (renormalised)

By Jensen's inequality the first's loss on any text is at most the mean of its members' losses.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .checkpoint import load_trained_model, model_device
from .errors import LMCoreError, TokenizerError
from .models import LanguageModel, ModelOutput
from .tokenizers import Tokenizer

MEANS = ("probability", "log-probability")


@dataclass
class EnsembleConfig:
    """What generation reads from a model's config: the vocabulary, and the shortest member's window (None when
    every member is an RNN, whose state sees everything)."""
    vocab_size: int
    context_length: int | None


class Ensemble(nn.Module):
    def __init__(self, members: Sequence[LanguageModel], mean: str = "probability"):
        super().__init__()
        if len(members) < 2:
            raise LMCoreError(f"An ensemble needs at least two models; it was given {len(members)}.")
        if mean not in MEANS:
            raise LMCoreError(f"The ensemble's mean is {mean!r}; choose one of {', '.join(MEANS)}.")
        if any(m.family == "encoder" for m in members):
            raise LMCoreError("A masked-language encoder cannot join an ensemble that predicts the next token; "
                              "leave it out.")
        vocab = {m.config.vocab_size for m in members}
        if len(vocab) > 1:
            raise TokenizerError(f"The models predict {sorted(vocab)} tokens: they were trained with other "
                                 "tokenizers and cannot be mixed. Ensemble runs that share a tokenizer.")
        self.members, self.mean = nn.ModuleList(members), mean
        self.models = list(members)  # the members, typed (a ModuleList holds them for .eval() and .to())
        windows = [window for m in members if (window := getattr(m.config, "context_length", None))]
        self.config = EnsembleConfig(vocab.pop(), min(windows, default=None))
        self.family = "transformer" if windows else "rnn"  # how evaluation batches its text

    def init_state(self, batch_size: int, device) -> list:
        return [m.init_state(batch_size, device) for m in self.models]

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: list | None = None,
                last_only: bool = False) -> ModelOutput:
        """The mixed log-probabilities [B, T, V] ([B, 1, V] when last_only), and their cross-entropy on
        `targets` (ignoring -1) when given."""
        states = state or [None] * len(self.members)
        outs = [m(idx, state=s, last_only=last_only and targets is None) for m, s in zip(self.models, states,
                                                                                         strict=True)]
        log_probs = torch.stack([F.log_softmax(out.logits.float(), dim=-1) for out in outs])
        if self.mean == "probability":
            mixed = torch.logsumexp(log_probs, dim=0) - math.log(len(outs))
        else:
            mixed = F.log_softmax(log_probs.mean(dim=0), dim=-1)
        loss = None
        if targets is not None:
            loss = F.nll_loss(mixed.flatten(0, 1), targets.flatten(), ignore_index=-1)
            mixed = mixed[:, -1:] if last_only else mixed
        return ModelOutput(mixed, loss, [out.state for out in outs] if state is not None else None, None)


def load_ensemble(targets: Sequence[Path], which: str = "best", device: str | torch.device = "cpu",
                  mean: str = "probability") -> tuple[Ensemble, Tokenizer, list[dict]]:
    """The ensemble of the runs (or checkpoints) `targets`, the tokenizer they share and each member's checkpoint
    metadata, in order. A run whose tokenizer differs from the first's is refused, naming both."""
    members: list[LanguageModel] = []
    metas: list[dict] = []
    tokenizer: Tokenizer | None = None
    for target in targets:
        model, own, meta = load_trained_model(Path(target), which, device)
        if tokenizer is not None and own.fingerprint() != tokenizer.fingerprint():
            raise TokenizerError(f"{target} has another tokenizer ({own.kind}, {own.vocab_size} tokens) than "
                                 f"{targets[0]} ({tokenizer.kind}, {tokenizer.vocab_size} tokens); an ensemble "
                                 "mixes the predictions of runs that share a tokenizer. Leave one of them out.")
        members.append(cast(LanguageModel, model))
        metas.append(meta)
        tokenizer = tokenizer or own
    assert tokenizer is not None
    if len({model_device(m) for m in members}) > 1:  # an int8 copy runs on the CPU only: so do the others
        members = [m.cpu() for m in members]
    return Ensemble(members, mean), tokenizer, metas
