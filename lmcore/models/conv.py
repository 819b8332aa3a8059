"""A convolutional language model with gated linear units, after Dauphin et al. (2017), "Language Modeling with
Gated Convolutional Networks", with WaveNet's dilations.

Residual blocks, each x + GLU(conv(LayerNorm(x))): a 1-D convolution over the token axis whose output is cut in
two halves a and b, a * sigmoid(b). The convolutions are causal: each is left-padded by the (kernel_size - 1) x
dilation inputs it reads before the current one, so no position sees the future. What a prediction can see (its
receptive field) is 1 + (kernel_size - 1) x the sum of the blocks' dilations; at the start of a window (or a text)
the missing inputs are zeros. The state carried from one call to the next is each block's last inputs, so a new
token costs one column of every convolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..settings import check_settings, setting
from .common import MAX_LAYERS, MAX_WIDTH, LanguageModel, ModelOutput, SoftmaxOutput, vocab_size_setting

MAX_KERNEL = 64
MAX_DILATION_CYCLE = 16  # dilations up to 2^15

ConvState = list[Tensor]  # per block, its last (kernel_size - 1) x dilation inputs [B, that many, n_embd]


@dataclass
class ConvConfig:
    family: ClassVar[str] = "conv"
    vocab_size: int = vocab_size_setting(65)
    n_layer: int = setting(6, "Residual blocks, each a causal convolution with a gated linear unit. 4 to 12; the "
                              "receptive field grows with each.", at_least=1, at_most=MAX_LAYERS)
    n_embd: int = setting(128, "Channels: the width of the token vectors and of every block. 64 to 256 on a CPU; "
                               "parameters grow with its square.", at_least=1, at_most=MAX_WIDTH)
    kernel_size: int = setting(3, "Inputs each convolution reads (the current one and those before it, spaced by "
                                  "the block's dilation). 2 to 5.", unit="tokens", at_least=2, at_most=MAX_KERNEL)
    dilation_cycle: int = setting(4, "Dilations double from block to block (1, 2, 4, ...) and start again at 1 "
                                     "after this many blocks, as in WaveNet, so the receptive field grows fast with "
                                     "depth. 1: no dilation (Dauphin et al.).", unit="blocks", at_least=1,
                                  at_most=MAX_DILATION_CYCLE)
    dropout: float = setting(0.0, "Share of activations zeroed at random while training, against overfitting. 0 "
                                  "for small models; 0.1 to 0.3 when validation loss rises as training loss falls.",
                             at_least=0.0, below=1.0)
    tie_embeddings: bool = setting(True, "Share the input embedding with the output layer: fewer parameters, "
                                         "usually lower loss.")

    def validate(self) -> None:
        """Not run on construction, so the GUI can hold an invalid config and show these messages."""
        check_settings(self, "model")

    def dilations(self) -> list[int]:
        return [2 ** (i % self.dilation_cycle) for i in range(self.n_layer)]

    def histories(self) -> list[int]:
        """Per block, the inputs before the current one that its convolution reads."""
        return [(self.kernel_size - 1) * dilation for dilation in self.dilations()]

    def receptive_field(self) -> int:
        """Tokens a prediction can see, its own included."""
        return 1 + sum(self.histories())


class GatedBlock(nn.Module):
    """x + GLU(causal conv(LayerNorm(x))), reading `past` (the normalised inputs before x) as its left padding."""

    def __init__(self, config: ConvConfig, dilation: int):
        super().__init__()
        self.history = (config.kernel_size - 1) * dilation  # as ConvConfig.histories counts it
        self.ln = nn.LayerNorm(config.n_embd)
        self.conv = nn.Conv1d(config.n_embd, 2 * config.n_embd, config.kernel_size, dilation=dilation)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.cat((past, self.ln(x)), dim=1)  # [B, history + T, C]
        y = F.glu(self.conv(h.transpose(1, 2)), dim=1).transpose(1, 2)  # [B, T, C]: no padding, T columns
        return x + self.drop(y), h[:, h.size(1) - self.history:]


class ConvLM(LanguageModel):
    family = "conv"
    supports_kv_cache = False  # the state (each block's last inputs) is all it ever reads
    config: ConvConfig

    def __init__(self, config: ConvConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(GatedBlock(config, dilation) for dilation in config.dilations())
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.output = SoftmaxOutput(config.n_embd, config.vocab_size, bias=False)
        nn.init.normal_(self.wte.weight, std=0.02)
        if config.tie_embeddings:
            self.output.proj.weight = self.wte.weight
        else:
            nn.init.normal_(self.output.proj.weight, std=0.02)

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: ConvState | None = None,
                capture_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """state None starts a text (zeros before it). No attention to capture."""
        h, state = self._trunk(idx, state)
        logits, loss = self.output(h, targets, last_only)
        return ModelOutput(logits, loss, state, None)

    def _trunk(self, idx: Tensor, state: ConvState | None) -> tuple[Tensor, ConvState]:
        """The final layer norm's outputs [B, T, n_embd], and the state after idx."""
        past = self.init_state(idx.size(0), idx.device) if state is None else state
        x = self.drop(self.wte(idx))
        carried = []
        for block, before in zip(self.blocks, past, strict=True):
            x, kept = block(x, before)
            carried.append(kept)
        return self.ln_f(x), carried

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """The final layer norm's outputs; padding only ever follows the text, which never reads it."""
        return self._trunk(idx, None)[0]

    def init_state(self, batch_size: int, device) -> ConvState:
        weight = self.wte.weight
        return [torch.zeros(batch_size, history, self.config.n_embd, device=device, dtype=weight.dtype)
                for history in self.config.histories()]

    def receptive_field(self) -> int:
        return self.config.receptive_field()

    def lookup_tables(self) -> list[Tensor]:
        return [] if self.config.tie_embeddings else [self.wte.weight]

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward): 6 per weight, each used once per token."""
        return 6 * self.num_parameters(non_embedding=True)
