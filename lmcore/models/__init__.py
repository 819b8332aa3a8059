"""The model families (GPT-style Transformer, recurrent network, BERT-style encoder, feed-forward n-gram MLP,
gated convolutional network), and building one from its config."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..errors import ConfigError
from ..settings import from_table
from .common import LanguageModel, ModelOutput
from .conv import ConvConfig, ConvLM
from .encoder import IGNORE_INDEX, EncoderConfig, EncoderLM
from .mlp import MLPConfig, MLPLM
from .rnn import RNNConfig, RNNLM
from .transformer import KVCache, TransformerConfig, TransformerLM

__all__ = ["ConvConfig", "ConvLM", "EncoderConfig", "EncoderLM", "MLPConfig", "MLPLM", "IGNORE_INDEX", "KVCache", "LanguageModel", "ModelConfig", "ModelOutput",
           "RNNConfig", "RNNLM", "TransformerConfig", "TransformerLM", "MODEL_CONFIGS", "build_model",
           "model_config_from_dict", "model_config_to_dict"]

# An EncoderConfig is a TransformerConfig (the same settings), so code that reads a Transformer's sizes reads both.
ModelConfig = TransformerConfig | EncoderConfig | RNNConfig | MLPConfig | ConvConfig
MODEL_CONFIGS: dict[str, type[TransformerConfig] | type[RNNConfig] | type[MLPConfig] | type[ConvConfig]] = {
    "transformer": TransformerConfig, "rnn": RNNConfig, "encoder": EncoderConfig, "mlp": MLPConfig, "conv": ConvConfig}


def build_model(config: ModelConfig) -> LanguageModel:
    """A freshly initialised model; raises ConfigError if the config does not validate."""
    if isinstance(config, EncoderConfig):
        return EncoderLM(config)
    if isinstance(config, MLPConfig):
        return MLPLM(config)
    if isinstance(config, ConvConfig):
        return ConvLM(config)
    return TransformerLM(config) if isinstance(config, TransformerConfig) else RNNLM(config)


def model_config_from_dict(d: dict[str, Any], source: str = "model config") -> ModelConfig:
    """{"family": ..., field: value, ...} (config.toml's [model], a checkpoint's header) -> its typed config, not
    yet validated. Missing fields take their defaults; unknown ones are errors, so a typo is not silently ignored."""
    family = d.get("family")
    if not isinstance(family, str) or family not in MODEL_CONFIGS:
        raise ConfigError(f"model.family = {family!r} is not one of {', '.join(MODEL_CONFIGS)}.", field="model.family")
    return from_table(MODEL_CONFIGS[family], {k: v for k, v in d.items() if k != "family"}, "model", source)


def model_config_to_dict(config: ModelConfig) -> dict[str, Any]:
    return {"family": config.family, **asdict(config)}
