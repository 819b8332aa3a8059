"""A recurrent language model, as in PyTorch's word_language_model example."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
from torch import Tensor

from ..errors import ConfigError
from ..settings import check_settings, setting
from .common import (MAX_LAYERS, MAX_WIDTH, AdaptiveSoftmaxOutput, LanguageModel, ModelOutput, SoftmaxOutput,
                     vocab_size_setting)

CELL_CHOICES = ("rnn_tanh", "rnn_relu", "gru", "lstm")

RNNState = Tensor | tuple[Tensor, Tensor]  # h, or (h, c) for an LSTM; each [n_layer, B, n_hidden]


@dataclass
class RNNConfig:
    family: ClassVar[str] = "rnn"
    vocab_size: int = vocab_size_setting(10000)
    cell: str = setting("lstm", "The recurrent cell. LSTM is the robust default; GRU is smaller and faster; plain "
                                "tanh/ReLU RNNs show why gates matter.", choices=CELL_CHOICES)
    n_layer: int = setting(2, "Stacked recurrent layers. 1 to 3; more rarely helps a recurrent network and trains "
                              "slower.", at_least=1, at_most=MAX_LAYERS)
    n_embd: int = setting(200, "Width of the token vectors. 128 to 1024; with tied embeddings it must equal the "
                               "hidden size.", at_least=1, at_most=MAX_WIDTH)
    n_hidden: int = setting(200, "Size of the recurrent state. 128 to 1024; with tied embeddings it must equal the "
                                 "embedding size.", at_least=1, at_most=MAX_WIDTH)
    dropout: float = setting(0.2, "Share of activations zeroed at random while training (on the embeddings, between "
                                  "layers and before the output), against overfitting. 0.2 to 0.5; 0 for tiny "
                                  "models.", at_least=0.0, below=1.0)
    tie_embeddings: bool = setting(True, "Share the input embedding with the output layer: fewer parameters, usually "
                                         "lower loss (Press & Wolf, 2016). Needs n_embd = n_hidden.")
    adaptive_softmax_cutoffs: list[int] = setting(
        help="Empty: a full softmax. Otherwise an adaptive softmax output, e.g. [2000, 10000] for a 25k-word "
             "vocabulary (the 2000 most frequent words in the head, then two tail clusters): several times faster "
             "for large word vocabularies. Needs tie_embeddings = false.", factory=list)

    def validate(self) -> None:
        """Not run on construction, so the GUI can hold an invalid config and show these messages."""
        check_settings(self, "model")
        if self.tie_embeddings and self.n_embd != self.n_hidden:
            raise ConfigError(
                f"model.tie_embeddings = true needs model.n_embd ({self.n_embd}) == model.n_hidden "
                f"({self.n_hidden}); make them equal or set model.tie_embeddings = false.",
                field="model.tie_embeddings", also=("model.n_embd", "model.n_hidden"))
        cutoffs = self.adaptive_softmax_cutoffs
        if cutoffs and not all(0 < a < b for a, b in zip(cutoffs, [*cutoffs[1:], self.vocab_size], strict=True)):
            raise ConfigError(
                f"model.adaptive_softmax_cutoffs = {cutoffs} must increase and lie between 1 and the vocabulary "
                f"size ({self.vocab_size}); e.g. [2000, 10000] for a 25k-word vocabulary, or [] for a full softmax.",
                field="model.adaptive_softmax_cutoffs")
        if cutoffs and self.tie_embeddings:
            raise ConfigError("model.adaptive_softmax_cutoffs needs model.tie_embeddings = false: the adaptive "
                              "softmax has no single output matrix to share with the embedding.",
                              field="model.adaptive_softmax_cutoffs", also=("model.tie_embeddings",))


class RNNLM(LanguageModel):
    family = "rnn"
    supports_kv_cache = False  # the hidden state already summarises the past
    config: RNNConfig

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.Embedding(config.vocab_size, config.n_embd)
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}[config.cell]
        extra = {"nonlinearity": config.cell.removeprefix("rnn_")} if rnn_class is nn.RNN else {}
        # Inter-layer dropout does nothing (and warns) with one layer.
        self.rnn = rnn_class(config.n_embd, config.n_hidden, config.n_layer, batch_first=True,
                             dropout=config.dropout if config.n_layer > 1 else 0.0, **extra)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        if config.adaptive_softmax_cutoffs:
            self.output = AdaptiveSoftmaxOutput(config.n_hidden, config.vocab_size, config.adaptive_softmax_cutoffs)
        else:
            self.output = output = SoftmaxOutput(config.n_hidden, config.vocab_size, bias=True)
            nn.init.uniform_(output.proj.weight, -0.1, 0.1)
            nn.init.zeros_(output.proj.bias)
            if config.tie_embeddings:  # "Using the Output Embedding to Improve Language Models" (Press & Wolf, 2016)
                output.proj.weight = self.encoder.weight

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: RNNState | None = None,
                capture_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """state None starts from zeros. The new state is returned attached to the graph: the trainer
        detaches it between batches (truncated backpropagation through time). No attention to capture."""
        h, state = self.rnn(self.drop(self.encoder(idx)), state)
        logits, loss = self.output(self.drop(h), targets, last_only)
        return ModelOutput(logits, loss, state, None)

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """The top layer's output at every position; padding at the end never reaches the text before it."""
        return self.rnn(self.drop(self.encoder(idx)))[0]

    @property
    def hidden_size(self) -> int:
        return self.config.n_hidden

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.encoder

    def init_state(self, batch_size: int, device) -> RNNState:
        weight = self.encoder.weight
        h = torch.zeros(self.config.n_layer, batch_size, self.config.n_hidden, device=device, dtype=weight.dtype)
        return (h, torch.zeros_like(h)) if self.config.cell == "lstm" else h

    def lookup_tables(self) -> list[Tensor]:
        return [] if self.config.tie_embeddings else [self.encoder.weight]

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward): 6 per parameter touched per token, i.e. every recurrent
        weight and the decoder once (2 forward, 4 backward). N = num_parameters(non_embedding=True) leaves out an
        untied input embedding (a lookup, not a matmul) and keeps the biases, a rounding error, as nanoGPT does.
        With an adaptive softmax it counts every tail cluster for every token: an upper bound."""
        return 6 * self.num_parameters(non_embedding=True)
