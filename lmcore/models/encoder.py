"""A BERT-style bidirectional Transformer encoder trained as a masked language model.

The GPT family's blocks (transformer.py) without the causal mask: every position sees the whole sequence, except
the keys a padding mask hides. A masked-LM head reads the last hidden states: a dense layer, GELU and a layer
norm (as BERT's), then the vocabulary projection, tied to the token embedding. The loss is the mean
cross-entropy over the positions whose target is not IGNORE_INDEX: the tokens chosen for masking
(lmcore.masking).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..settings import setting
from .common import MAX_WIDTH, ModelOutput, SoftmaxOutput
from .transformer import KVCache, TransformerBase, TransformerConfig

IGNORE_INDEX = -100  # targets of the positions that are not predicted (PyTorch's and BERT's convention)


@dataclass
class EncoderConfig(TransformerConfig):
    """The GPT family's settings; only their meaning for an encoder differs where the help says so."""

    family: ClassVar[str] = "encoder"
    context_length: int = setting(64, "The longest sequence the model reads, [CLS] and [SEP] included: a training "
                                      "sequence is [CLS], train.context - 2 tokens of text, [SEP]. At least "
                                      "train.context, which it defaults to in a run's config.", unit="tokens",
                                  at_least=3, at_most=MAX_WIDTH, default_text="train.context")
    tie_embeddings: bool = setting(True, "Share the input embedding with the masked-LM head's output layer, as "
                                         "BERT does: fewer parameters, usually lower loss.")


class EncoderLM(TransformerBase):
    """idx [B, T] (with [CLS] first and [SEP] last, as lmcore.masking frames it) -> logits [B, T, V] for every
    position; the masked-LM loss when targets are given. No KV cache: there is nothing to continue."""

    family = "encoder"
    supports_kv_cache = False
    causal = False
    config: EncoderConfig
    output: SoftmaxOutput  # its projection is the head's last layer; the loss is masked_lm_loss's

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        n = config.n_embd
        self.head = nn.Sequential(nn.Linear(n, n, bias=config.bias), nn.GELU(), nn.LayerNorm(n, bias=config.bias))
        self._init_weights(self.head[0])

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: KVCache | None = None,
                capture_attention: bool = False, last_only: bool = False,
                key_padding_mask: Tensor | None = None) -> ModelOutput:
        """key_padding_mask [B, T] bool, True at padding: no position attends to those; their outputs are
        meaningless, and their targets should be IGNORE_INDEX. `last_only` is accepted and ignored: an encoder's
        positions are all outputs."""
        if state is not None:
            raise ValueError("an encoder keeps no state between calls; pass the whole sequence at once")
        keep = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        h, attention = self.trunk(idx, None, capture_attention, keep)
        logits = self.output.proj(self.head(h))
        return ModelOutput(logits, None if targets is None else masked_lm_loss(logits, targets), None, attention)

    def init_state(self, batch_size: int, device) -> None:
        """Nothing: an encoder reads each sequence whole."""
        return None


def masked_lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over the positions whose target is not IGNORE_INDEX (0 when there are none, rather
    than PyTorch's nan, so a batch that happens to choose no token does not stop a run)."""
    chosen = (targets != IGNORE_INDEX).sum()
    total = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                            reduction="sum")
    return total / chosen.clamp(min=1)
