"""What the model families share: the output type, the logits/loss head, size limits, optimizer groups."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..settings import setting

if TYPE_CHECKING:
    from .conv import ConvConfig
    from .mlp import MLPConfig
    from .rnn import RNNConfig
    from .transformer import TransformerConfig


@dataclass
class ModelOutput:
    logits: Tensor | None     # [B, T, V] (or [B, 1, V] when last_only); None from an adaptive softmax's loss
    loss: Tensor | None       # mean cross-entropy over targets != -1 (the encoder's: != IGNORE_INDEX, -100)
    state: object | None      # RNN hidden state, or the Transformer's KVCache; None for the encoder
    attention: Tensor | None  # [n_layer, B, n_head, T, S] when capture_attention (Transformer and encoder)


class SoftmaxOutput(nn.Module):
    """Hidden states -> logits (and loss). Its own module so that an adaptive softmax can replace it."""

    uses_every_parameter = True  # every step gives every weight a gradient (DistributedDataParallel asks)

    def __init__(self, n_in: int, vocab_size: int, bias: bool):
        super().__init__()
        self.proj = nn.Linear(n_in, vocab_size, bias=bias)

    def forward(self, h: Tensor, targets: Tensor | None = None, last_only: bool = False):
        if targets is None:
            # Generation only needs the next token: skip the [T-1, V] matmul.
            return self.proj(h[:, -1:] if last_only else h), None
        logits = self.proj(h)  # the loss needs every position, last_only or not
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return (logits[:, -1:] if last_only else logits), loss


class AdaptiveSoftmaxOutput(nn.Module):
    """Hidden states -> log-probabilities (and loss) through an adaptive softmax (Grave et al., 2017).

    The `cutoffs[0]` most frequent tokens and one entry per tail cluster form the head; rarer tokens sit in tail
    clusters of shrinking width (each 4x narrower than the last), computed only for the targets that fall in
    them. Token ids must be ordered by frequency, as the word tokenizer numbers them. The "logits" it returns are
    log-probabilities: normalised already, so softmax and log_softmax over them give the same distribution.
    """

    uses_every_parameter = False  # a batch without rare targets leaves the tail clusters without gradients

    def __init__(self, n_in: int, vocab_size: int, cutoffs: list[int]):
        super().__init__()
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(n_in, vocab_size, cutoffs, div_value=4.0, head_bias=True)

    def forward(self, h: Tensor, targets: Tensor | None = None, last_only: bool = False):
        # fp32 even under autocast: AdaptiveLogSoftmaxWithLoss mixes the dtypes autocast gives it and fails.
        with torch.autocast(h.device.type, enabled=False):
            return self._forward(h.float(), targets, last_only)

    def _forward(self, h: Tensor, targets: Tensor | None, last_only: bool):
        if targets is None:
            h = h[:, -1:] if last_only else h
            return self.adaptive.log_prob(h.flatten(0, 1)).view(*h.shape[:2], -1), None
        # Targets of -1 are ignored, as in SoftmaxOutput: give them a valid id, then leave them out of the mean.
        keep = targets.flatten() >= 0
        picked = self.adaptive(h.flatten(0, 1), targets.flatten().clamp(min=0)).output  # log p(target)
        loss = -(picked * keep).sum() / keep.sum()
        return (self.adaptive.log_prob(h[:, -1]).unsqueeze(1) if last_only else None), loss


class LanguageModel(nn.Module):
    """The bookkeeping the families share. Subclasses say which tables are lookups, not matmuls."""

    family: str
    supports_kv_cache: bool
    config: TransformerConfig | RNNConfig | MLPConfig | ConvConfig
    output: SoftmaxOutput | AdaptiveSoftmaxOutput

    def __init__(self, config: TransformerConfig | RNNConfig | MLPConfig | ConvConfig):
        super().__init__()
        config.validate()  # ConfigError naming the field, before any tensor is made
        self.config = config

    def init_state(self, batch_size: int, device) -> Any:
        """What a forward pass carries from one call to the next: the RNN's hidden state, a Transformer's KV cache,
        the MLP's last embeddings, the CNN's last inputs to each block; nothing (None) for the encoder, which reads
        each sequence whole."""
        raise NotImplementedError

    def receptive_field(self) -> int | None:
        """Tokens a prediction can see, its own included; None where nothing bounds it (an RNN's state)."""
        return None

    def lookup_tables(self) -> list[Tensor]:
        """Embedding tables that are only indexed, never multiplied (so they cost no FLOPs)."""
        raise NotImplementedError

    @property
    def uses_every_parameter(self) -> bool:
        """Whether every step gives every trainable weight a gradient (DistributedDataParallel asks)."""
        return self.output.uses_every_parameter

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """The last layer's outputs [B, T, hidden_size] before the LM head: what a classifier pools.
        padding_mask [B, T] is True at padding, which only ever follows the text."""
        raise NotImplementedError

    @property
    def hidden_size(self) -> int:
        """Width of hidden_states' vectors: the embedding width, unless a family's last layer is wider."""
        return self.config.n_embd

    @property
    def token_embedding(self) -> nn.Embedding:
        """The input embedding table, `wte` unless a family names it otherwise (a classifier's explanations take
        gradients at its outputs)."""
        table = self.get_submodule("wte")
        assert isinstance(table, nn.Embedding)
        return table

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward and backward)."""
        raise NotImplementedError

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Parameter count, tied tensors once. non_embedding drops the lookup-only tables (position embeddings,
        and the token embedding when it is not tied to the output layer): what remains is N in 6N FLOPs/token."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= sum(p.numel() for p in self.lookup_tables())
        return n

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay matrices and embeddings (dim >= 2), not biases or norm gains.
        parameters() yields a tied tensor once, so every parameter lands in exactly one group."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]


# Sizes no model here can mean (the largest published ones have about 100 layers and widths near 20,000). Past them
# a form's estimate would spend minutes building the model on PyTorch's meta device, or overflow its storage size.
MAX_LAYERS = 1_000
MAX_WIDTH = 1 << 20  # n_embd, n_hidden and context_length

VOCAB_SIZE_HELP = ("Tokens in the vocabulary. A run sets it from its tokenizer when training starts; a value in a "
                   "config file is not used.")

def vocab_size_setting(default: int) -> Any:
    """The one field every family takes from the data rather than from the config file."""
    return setting(default, VOCAB_SIZE_HELP, unit="tokens", at_least=1, default_text="the tokenizer's")
