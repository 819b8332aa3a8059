"""What a run will cost, from its config alone: parameters, tokens per step, memory. Nothing is trained or
allocated (the model is built on PyTorch's meta device), so a form can show it as the user types."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import RunConfig
from .corpus import CorpusSummary
from .models import ConvConfig, MLPConfig, ModelConfig, TransformerConfig, build_model

FP32_BYTES = 4
OPTIMIZER_SLOTS = {"adamw": 2, "adam": 2, "sgd": 1}  # fp32 tensors of state per parameter (SGD: momentum)


@dataclass
class RunEstimate:
    parameters: int
    tokens_per_step: int
    flops_per_token: float
    memory_bytes: int  # weights + gradients + optimizer state + activations of one micro-batch, in fp32
    receptive_field: int | None  # tokens a prediction can see, its own included; None: no bound (an RNN)


def estimate_vocab_size(config: RunConfig, corpus: CorpusSummary | None) -> int | None:
    """The vocabulary the run's tokenizer will have (an upper bound for words); None when it cannot be told."""
    tok = config.tokenizer
    if tok.kind == "sentencepiece":
        return tok.vocab_size
    if corpus is None or corpus.problem:
        return None
    if tok.kind == "char":
        return corpus.distinct_chars + 1  # + <unk>
    words = corpus.distinct_words + 2  # + <unk>, <eos>
    return min(words, tok.max_vocab) if tok.max_vocab else words


def estimate_run(config: RunConfig, vocab_size: int) -> RunEstimate:
    """Raises ConfigError, naming the field, when the model settings cannot build a model."""
    model_config = config.model_for(vocab_size)
    with torch.device("meta"):
        model = build_model(model_config)
    parameters = model.num_parameters()
    train = config.train
    optimizer_slots = OPTIMIZER_SLOTS[config.optim.name] if config.optim.name != "sgd" or config.optim.momentum else 0
    state_bytes = parameters * FP32_BYTES * (2 + optimizer_slots)  # weights, gradients, optimizer state
    tokens = train.batch_size * train.context
    activation_floats = tokens * (_floats_per_token(model_config, train.context) + 3 * vocab_size)  # + logits
    return RunEstimate(parameters, tokens * train.grad_accum, model.flops_per_token(),
                       state_bytes + activation_floats * FP32_BYTES, model.receptive_field())


def _floats_per_token(model_config: ModelConfig, context: int) -> int:
    """Activations kept for the backward pass, per token, summed over layers: a rough count of the tensors each
    block stores (Korthikanti et al. 2022 for the Transformer; the gates and states for an RNN; the MLP's
    concatenated embeddings and its layers' inputs and outputs; a gated block's norm, padded input, two halves and
    output)."""
    if isinstance(model_config, TransformerConfig):
        c = model_config.n_embd
        return model_config.n_layer * (17 * c + 2 * model_config.n_head * context)
    if isinstance(model_config, MLPConfig):
        return 2 * (model_config.n_gram - 1) * model_config.n_embd + model_config.n_layer * 3 * model_config.n_hidden
    if isinstance(model_config, ConvConfig):
        return model_config.n_layer * 6 * model_config.n_embd + model_config.n_embd
    return model_config.n_layer * 8 * model_config.n_hidden + model_config.n_embd
