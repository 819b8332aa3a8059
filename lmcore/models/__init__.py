"""The two model families, and building one from its config."""
from __future__ import annotations

from dataclasses import asdict, fields

import torch.nn as nn

from ..errors import ConfigError
from .common import ModelOutput
from .rnn import RNNConfig, RNNLM
from .transformer import KVCache, TransformerConfig, TransformerLM

__all__ = ["KVCache", "ModelOutput", "RNNConfig", "RNNLM", "TransformerConfig", "TransformerLM",
           "build_model", "model_config_from_dict", "model_config_to_dict"]

FAMILIES = {"transformer": (TransformerConfig, TransformerLM), "rnn": (RNNConfig, RNNLM)}


def build_model(config: TransformerConfig | RNNConfig) -> nn.Module:
    """A freshly initialised model; raises ConfigError if the config does not validate."""
    return FAMILIES[config.family][1](config)


def model_config_from_dict(d: dict) -> TransformerConfig | RNNConfig:
    """{"family": ..., field: value, ...} (as in config.toml's [model]) -> a validated config.
    Missing fields take their defaults; unknown ones are errors, so a typo is not silently ignored."""
    family = d.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"model.family = {family!r} is not a model family; use one of: {', '.join(FAMILIES)}.")
    config_class = FAMILIES[family][0]
    known = [f.name for f in fields(config_class)]
    for key in d:
        if key != "family" and key not in known:
            raise ConfigError(f"model.{key} is not a setting of a {family} model; the settings are: "
                              f"{', '.join(known)}.")
    config = config_class(**{k: v for k, v in d.items() if k != "family"})
    config.validate()
    return config


def model_config_to_dict(config: TransformerConfig | RNNConfig) -> dict:
    return {"family": config.family, **asdict(config)}
