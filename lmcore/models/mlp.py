"""A feed-forward n-gram language model, after Bengio et al. (2003), "A Neural Probabilistic Language Model".

Each token is predicted from the n - 1 tokens up to it: their embeddings side by side, one or more tanh hidden
layers, a softmax over the vocabulary; optionally also straight from the embeddings to the output (the paper's
direct connections, a linear n-gram model beside the network).

Every position of a window gets a prediction. The first positions of a window (and of a text) have fewer than
n - 1 tokens up to them; the missing ones read a learned padding vector, the same wherever the window starts. The
state carried from one call to the next is the last n - 1 embedded tokens, so a new token costs one position.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import torch
import torch.nn as nn
from torch import Tensor

from ..settings import check_settings, setting
from .common import MAX_LAYERS, MAX_WIDTH, LanguageModel, ModelOutput, SoftmaxOutput, vocab_size_setting

MAX_N_GRAM = 1024  # the input layer is (n - 1) x n_embd wide: past this it is no longer an n-gram model


@dataclass
class MLPConfig:
    family: ClassVar[str] = "mlp"
    vocab_size: int = vocab_size_setting(65)
    n_gram: int = setting(8, "n: each token is predicted from the n - 1 tokens before it, and nothing further back. "
                             "3 to 6 for words, 5 to 16 for characters; the first hidden layer grows with it.",
                          at_least=2, at_most=MAX_N_GRAM)
    n_embd: int = setting(32, "Width of each token's vector; the first hidden layer reads n - 1 of them side by "
                              "side. 16 to 64 for characters, 64 to 256 for words.", at_least=1, at_most=MAX_WIDTH)
    n_hidden: int = setting(512, "Units in each hidden (tanh) layer. 128 to 1024.", at_least=1, at_most=MAX_WIDTH)
    n_layer: int = setting(1, "Hidden layers. Bengio et al. used one; 1 to 3.", at_least=1, at_most=MAX_LAYERS)
    dropout: float = setting(0.0, "Share of activations zeroed at random while training (the embeddings and each "
                                  "hidden layer), against overfitting. 0 for small models; 0.1 to 0.3 when "
                                  "validation loss rises as training loss falls.", at_least=0.0, below=1.0)
    direct: bool = setting(False, "Direct connections: the output also reads the embeddings themselves, not only "
                                  "the hidden layers (Bengio et al.'s W). More parameters; sometimes lower loss.")

    def validate(self) -> None:
        """Not run on construction, so the GUI can hold an invalid config and show these messages."""
        check_settings(self, "model")


class MLPLM(LanguageModel):
    family = "mlp"
    supports_kv_cache = False  # the state (the last n - 1 embeddings) is all it ever reads
    config: MLPConfig
    output: SoftmaxOutput

    def __init__(self, config: MLPConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.pad = nn.Parameter(torch.randn(config.n_embd))  # what a position before the text reads
        n_in = (config.n_gram - 1) * config.n_embd
        widths = [n_in] + [config.n_hidden] * config.n_layer
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.drop = nn.Dropout(config.dropout)
        # y = b + W x + U tanh(...): direct connections are the output layer reading the embeddings too
        self.output = SoftmaxOutput(config.n_hidden + (n_in if config.direct else 0), config.vocab_size, bias=True)
        # a small output layer starts every prediction near uniform: a first loss of about ln(vocab_size)
        nn.init.normal_(self.output.proj.weight, std=0.02)
        nn.init.zeros_(self.output.proj.bias)

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: Tensor | None = None,
                capture_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """state: the n - 1 embedded tokens before idx [B, n - 1, n_embd] (None: the start of a text). No
        attention to capture."""
        h, state = self._trunk(idx, state)
        logits, loss = self.output(h, targets, last_only)
        return ModelOutput(logits, loss, state, None)

    def _trunk(self, idx: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """What the output layer reads [B, T, hidden_size], and the state after idx."""
        before = self.init_state(idx.size(0), idx.device) if state is None else state
        x = torch.cat((before, self.wte(idx)), dim=1)  # [B, n - 1 + T, n_embd]
        k = self.config.n_gram - 1
        # position t reads the k embeddings ending at its own: rows t + 1 .. t + k of x
        windows = x[:, 1:].unfold(1, k, 1).transpose(2, 3).flatten(2)  # [B, T, k * n_embd]
        h = inputs = self.drop(windows)
        for layer in self.hidden:
            h = self.drop(torch.tanh(layer(h)))
        if self.config.direct:
            h = torch.cat((h, inputs), dim=-1)
        return h, x[:, x.size(1) - k:]

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """The last hidden layer's outputs (and the embeddings, with direct connections); padding only ever
        follows the text, which never reads it."""
        return self._trunk(idx, None)[0]

    @property
    def hidden_size(self) -> int:
        return self.output.proj.in_features

    def init_state(self, batch_size: int, device) -> Tensor:
        """n - 1 padding vectors: no token yet."""
        return self.pad.to(device).expand(batch_size, self.config.n_gram - 1, -1)

    def receptive_field(self) -> int:
        return self.config.n_gram - 1

    def lookup_tables(self) -> list[Tensor]:
        return [self.wte.weight, self.pad]

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward): 6 per weight, each used once per token."""
        return 6 * self.num_parameters(non_embedding=True)
