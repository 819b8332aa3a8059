"""A text classifier: the body of a language model of any family, its last hidden states pooled into one vector
per text, and a linear head over the labels.

Its input is a batch of token ids, each text followed by PAD (-1) up to the longest: the padding is found from
the ids, so the classifier takes the same `model(idx, targets=labels)` call as the language models.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .common import LanguageModel, ModelOutput

PAD = -1  # fills a classifier's batch after each text; never a token id
POOLINGS = ("auto", "cls", "last", "mean", "final")
# An MLP's or a convolutional network's last position reads only its window (n - 1 tokens, or the receptive
# field) of a longer text: the mean reads all of it.
AUTO_POOLING = {"encoder": "cls", "transformer": "last", "rnn": "final", "mlp": "mean", "conv": "mean"}


def check_pooling(pooling: str, family: str) -> str:
    """The pooling `pooling` ("auto" resolved) means for a body of `family`; ConfigError naming classify.pooling
    when it does not fit the family."""
    if pooling == "auto":
        return AUTO_POOLING[family]
    if pooling == "cls" and family != "encoder":
        raise ConfigError(f"classify.pooling = 'cls' needs an encoder body, whose first token is [CLS]; this body is "
                          f"a {family}. Use auto (the {AUTO_POOLING[family]} token) or mean.", field="classify.pooling")
    return pooling


class TextClassifier(LanguageModel):
    """body (a LanguageModel) -> hidden states [B, T, H] -> pooled [B, H] -> logits [B, n_labels]."""

    family = "classifier"
    supports_kv_cache = False
    class_weights: Tensor | None

    def __init__(self, body: LanguageModel, n_labels: int, pooling: str = "auto"):
        super().__init__(body.config)  # checkpoints and run lists describe a classifier by its body
        self.body = body
        self.pooling = check_pooling(pooling, body.family)
        self.head = nn.Linear(body.hidden_size, n_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        # per-label loss weights (classify.class_weights): a buffer, so it follows the model to its device; not saved
        self.register_buffer("class_weights", None, persistent=False)
        self.body_lr_scale = 1.0  # the body's learning rate relative to the head's (classify.body_lr_scale)

    @property
    def n_labels(self) -> int:
        return self.head.out_features

    @property
    def uses_every_parameter(self) -> bool:
        return False  # the body's language-model head is never used

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: object | None = None,
                capture_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """idx [B, T] (texts padded with PAD; an encoder's framed as [CLS] text [SEP]) -> logits [B, n_labels];
        with targets [B] (label indices) the cross-entropy, weighted by class_weights when set."""
        padding = idx == PAD
        h = self.body.hidden_states(idx.masked_fill(padding, 0), padding)
        logits = self.head(self.pool(h, padding))
        loss = None if targets is None else F.cross_entropy(logits.float(), targets, weight=self.class_weights)
        return ModelOutput(logits, loss, None, None)

    def pool(self, h: Tensor, padding: Tensor) -> Tensor:
        """One vector per text from h [B, T, H], never reading the padding."""
        if self.pooling == "cls":
            return h[:, 0]
        keep = (~padding).unsqueeze(-1).to(h.dtype)
        if self.pooling == "mean":
            return (h * keep).sum(1) / keep.sum(1).clamp(min=1)
        last = (~padding).sum(1).clamp(min=1) - 1  # "last" (a GPT's) and "final" (an RNN's) are the same index
        return h[torch.arange(h.size(0), device=h.device), last]

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """The body's groups at body_lr_scale (their "lr_scale"), then the head's; a frozen body has none."""
        groups = [{**group, "lr_scale": self.body_lr_scale} for group in self.body.optim_groups(weight_decay)]
        groups.append({"params": [self.head.weight], "weight_decay": weight_decay, "lr_scale": 1.0})
        groups.append({"params": [self.head.bias], "weight_decay": 0.0, "lr_scale": 1.0})
        return [group for group in groups if group["params"]]

    def freeze_body(self) -> None:
        for p in self.body.parameters():
            p.requires_grad_(False)

    def init_state(self, batch_size: int, device) -> None:
        return None

    def lookup_tables(self) -> list[Tensor]:
        return self.body.lookup_tables()

    def flops_per_token(self) -> float:
        """The body's, whose language-model head it counts though a classifier skips it: an upper bound."""
        return self.body.flops_per_token()

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return self.body.hidden_states(idx, padding_mask)

    @property
    def hidden_size(self) -> int:
        return self.body.hidden_size

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.body.token_embedding
