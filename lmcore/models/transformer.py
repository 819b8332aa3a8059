"""A GPT-style decoder-only Transformer, after nanoGPT's model.py, plus a KV cache and attention capture. Its
embeddings and blocks (TransformerBase) also make the encoder of models/encoder.py, without the causal mask."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..settings import check_settings, setting
from .common import MAX_LAYERS, MAX_WIDTH, LanguageModel, ModelOutput, SoftmaxOutput, vocab_size_setting

POSITIONAL_CHOICES = ("learned", "sinusoidal", "rotary")
ACTIVATIONS = {"gelu": "none", "gelu_tanh": "tanh"}  # name -> F.gelu's approximate


@dataclass
class TransformerConfig:
    family: ClassVar[str] = "transformer"
    vocab_size: int = vocab_size_setting(65)
    n_layer: int = setting(4, "Stacked layers (blocks). 2 to 6 on a CPU; deeper learns more but trains slower.",
                           at_least=1, at_most=MAX_LAYERS)
    n_head: int = setting(4, "Attention heads per layer; the embedding size must divide by it. 2 to 8, for a head "
                             "size (embedding / heads) of 32 to 64.", at_least=1)
    n_embd: int = setting(128, "Width of the token vectors. 64 to 256 on a CPU, 384 to 1024 on a GPU; parameters "
                               "grow with its square.", at_least=1, at_most=MAX_WIDTH)
    context_length: int = setting(64, "The longest sequence the model reads: positions 0 to context_length - 1. At "
                                      "least train.context, which it defaults to in a run's config.", unit="tokens",
                                  at_least=1, at_most=MAX_WIDTH, default_text="train.context")
    dropout: float = setting(0.0, "Share of activations zeroed at random while training, against overfitting. 0 "
                                  "for small models; 0.1 to 0.3 when validation loss rises as training loss falls.",
                             at_least=0.0, below=1.0)
    bias: bool = setting(False, "Bias terms in linear layers and layer norms. Off is slightly faster and as good "
                                "(nanoGPT's default).")
    positional: str = setting("learned", "How the model knows token order. Learned: a trained table (GPT-2). "
                                         "Sinusoidal: fixed waves. Rotary: rotates queries and keys (LLaMA).",
                              choices=POSITIONAL_CHOICES)
    tie_embeddings: bool = setting(True, "Share the input embedding with the output layer: fewer parameters, "
                                         "usually lower loss.")
    activation: str = setting("gelu", "The MLP's non-linearity. gelu: exact (nanoGPT); gelu_tanh: the tanh "
                                      "approximation GPT-2 was trained with (imported GPT-2 models use it).",
                              choices=tuple(ACTIVATIONS))

    def validate(self) -> None:
        """Not run on construction, so the GUI can hold an invalid config and show these messages."""
        check_settings(self, "model")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"model.n_embd = {self.n_embd} is not divisible by model.n_head = {self.n_head}; "
                "choose an embedding size that is a multiple of the number of heads.",
                field="model.n_embd", also=("model.n_head",))
        if self.positional == "rotary" and (self.n_embd // self.n_head) % 2:
            raise ConfigError(
                f"model.positional = 'rotary' needs an even head size, but model.n_embd / model.n_head = "
                f"{self.n_embd} / {self.n_head} = {self.n_embd // self.n_head}; change model.n_embd or model.n_head.",
                field="model.positional", also=("model.n_embd", "model.n_head"))


class KVCache:
    """Keys and values of the tokens seen so far, per layer, for incremental decoding.

    Each layer's buffer [B, n_head, context_length, head_size] is allocated on its first write, with the batch
    size, dtype and device of the keys written (so it follows autocast). It never grows past context_length:
    positions are absolute, so cached keys cannot be shifted; generation past the window must slide it and
    rebuild the cache by running the last tokens again.
    """

    def __init__(self, n_layer: int, max_length: int):
        self.max_length = max_length
        self.length = 0  # tokens cached; the model advances it after its last layer
        self.k: list[Tensor | None] = [None] * n_layer
        self.v: list[Tensor | None] = [None] * n_layer

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v [B, H, T, D] at positions length..length+T-1; return keys and values of all positions."""
        keys, values = self.k[layer], self.v[layer]
        if keys is None or values is None:
            B, H, _, D = k.shape
            keys = self.k[layer] = k.new_zeros(B, H, self.max_length, D)
            values = self.v[layer] = v.new_zeros(B, H, self.max_length, D)
        end = self.length + k.size(2)
        keys[:, :, self.length:end] = k
        values[:, :, self.length:end] = v
        return keys[:, :, :end], values[:, :, :end]


def causal_mask(T: int, S: int, device) -> Tensor:
    """[T, S] bool, True where query i (absolute position S-T+i) may see key j: the queries are the last T keys."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def position_angles(n_pos: int, dim: int) -> Tensor:
    """[n_pos, ceil(dim/2)] angles pos / 10000^(2i/dim), shared by sinusoidal and rotary positions."""
    inv_freq = 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    return torch.outer(torch.arange(n_pos, dtype=torch.float32), inv_freq)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[i], x[i + D/2]) of x [B, H, T, D] by the angles of each position (cos, sin [T, D/2])."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention: causal in the GPT family (a position sees itself and the past); with
    causal=False (the encoder) every position sees every other, except the keys a padding mask hides."""

    def __init__(self, config: TransformerConfig, layer: int, causal: bool = True):
        super().__init__()
        self.layer = layer  # which slot of the KV cache is ours
        self.causal = causal
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, cache: KVCache | None, capture: bool,
                keep: Tensor | None = None):
        """keep: [B, 1, 1, S] bool, True for the keys that may be attended to (a padding mask), or None for all."""
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(C, dim=2))
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        dropout_p = self.dropout if self.training else 0.0
        att: Tensor | None = None
        if capture:  # the same attention spelled out, to hand back the probabilities
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            if self.causal:
                att = att.masked_fill(~causal_mask(T, k.size(2), x.device), float("-inf"))
            if keep is not None:
                att = att.masked_fill(~keep, float("-inf"))
            att = att.softmax(dim=-1)  # exp(-inf) = 0: the future and the padding stay exactly 0
            y = F.dropout(att, dropout_p) @ v
        elif self.causal:
            # Without a cache queries and keys line up, so is_causal's mask is right; with one the T queries are
            # the last T of S keys, and is_causal (aligned top-left) would be wrong: pass the offset mask instead.
            mask = None if cache is None else causal_mask(T, k.size(2), x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=mask is None)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y)), att


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.approximate = ACTIVATIONS[config.activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: TransformerConfig, layer: int, causal: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config, layer, causal)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, rope, cache, capture, keep=None):
        a, att = self.attn(self.ln_1(x), rope, cache, capture, keep)
        x = x + a
        return x + self.mlp(self.ln_2(x)), att


class TransformerBase(LanguageModel):
    """What the GPT family and the encoder share: the token and position embeddings, the blocks (causal or not),
    the final layer norm and the output layer, tied to the token embedding when the config says so."""

    causal: ClassVar[bool]
    config: TransformerConfig
    sinusoid: Tensor  # [context_length, n_embd]: the fixed position table (positional = "sinusoidal")
    rope_cos: Tensor  # [context_length, head_size / 2]: the rotary angles (positional = "rotary")
    rope_sin: Tensor

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        head_size = config.n_embd // config.n_head
        if config.positional == "learned":
            self.wpe = nn.Embedding(config.context_length, config.n_embd)
        elif config.positional == "sinusoidal":
            # Fixed tables are recomputed on construction, so they stay out of checkpoints (persistent=False).
            angles = position_angles(config.context_length, config.n_embd)
            table = torch.cat((angles.sin(), angles.cos()), dim=-1)[:, :config.n_embd]
            self.register_buffer("sinusoid", table, persistent=False)
        else:
            angles = position_angles(config.context_length, head_size)
            self.register_buffer("rope_cos", angles.cos(), persistent=False)
            self.register_buffer("rope_sin", angles.sin(), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i, self.causal) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.output = SoftmaxOutput(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.proj.weight = self.wte.weight

        self.apply(self._init_weights)
        # GPT-2: scale the residual projections so the residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def trunk(self, idx: Tensor, state: KVCache | None, capture_attention: bool,
              keep: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Embeddings, blocks and the final layer norm: the hidden states [B, T, n_embd] the output layer reads,
        and the attention maps [L, B, H, T, S] when capture_attention. `keep` is the blocks' padding mask."""
        T = idx.size(1)
        past = 0 if state is None else state.length
        if past + T > self.config.context_length:
            raise ValueError(
                f"{past} cached + {T} new tokens exceed context_length {self.config.context_length}; "
                "crop the input (or slide the window and rebuild the KV cache from the last tokens).")
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.wte(idx)
        rope = None
        if self.config.positional == "learned":
            x = x + self.wpe(pos)
        elif self.config.positional == "sinusoidal":
            x = x + self.sinusoid[pos]
        else:
            rope = (self.rope_cos[pos], self.rope_sin[pos])
        x = self.drop(x)
        maps = []
        for block in self.blocks:
            x, att = block(x, rope, state, capture_attention, keep)
            maps.append(att)
        if state is not None:
            state.length += T
        return self.ln_f(x), torch.stack(maps) if capture_attention else None

    def hidden_states(self, idx: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        # Causal attention never lets text see the padding after it; an encoder's must be told to ignore it.
        keep = None if padding_mask is None or self.causal else ~padding_mask[:, None, None, :]
        return self.trunk(idx, None, False, keep)[0]

    def receptive_field(self) -> int:
        return self.config.context_length

    def lookup_tables(self) -> list[Tensor]:
        tables = [self.wpe.weight] if self.config.positional == "learned" else []
        return tables if self.config.tie_embeddings else tables + [self.wte.weight]

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), nanoGPT / PaLM appendix B: 6N for the matmuls with
        N = num_parameters(non_embedding=True), plus 12·L·H·Q·T for attention scores and values (H·Q = n_embd, T = context_length)."""
        c = self.config
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layer * c.n_embd * c.context_length


class TransformerLM(TransformerBase):
    """The GPT family: causal blocks, next-token logits, and a KV cache for generation."""

    family = "transformer"
    supports_kv_cache = True
    causal = True

    def forward(self, idx: Tensor, targets: Tensor | None = None, state: KVCache | None = None,
                capture_attention: bool = False, last_only: bool = False) -> ModelOutput:
        """idx [B, T] holds positions state.length .. state.length+T-1 (0.. without a cache)."""
        h, attention = self.trunk(idx, state, capture_attention)
        logits, loss = self.output(h, targets, last_only)
        return ModelOutput(logits, loss, state, attention)

    def init_state(self, batch_size: int, device) -> KVCache:
        """An empty KV cache. Buffers are allocated on first use (see KVCache), so batch_size and device
        are taken from the tokens fed; the arguments keep the interface of RNNLM.init_state."""
        return KVCache(self.config.n_layer, self.config.context_length)
