"""Checkpoints: one safetensors file (tensors + a JSON header) and a human-readable JSON beside it.

Everything needed to continue a run lives in the .safetensors file: model weights, optimizer state, RNG states
and the trainer's counters (in the header's "lmcore" entry). The .json beside it is a summary for people and
for the runs browser. Files are written atomically; nothing is ever unpickled.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .errors import CheckpointError
from .fileio import write_atomic

FORMAT = "lmcore-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    meta: dict[str, Any]  # model config, step, counters, schedule, optimizer hyper-parameters
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)  # "<param index>.<key>"
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # RNG states, carried RNN state


def save_checkpoint(path: Path, checkpoint: Checkpoint, summary: dict[str, Any] | None = None) -> None:
    """Write `path` (.safetensors) and, if given, a summary `path.with_suffix('.json')`."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in checkpoint.model.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:  # tied weights are stored once; safetensors refuses shared memory
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[f"model.{name}"] = tensor
    tensors.update({f"optim.{k}": v for k, v in checkpoint.optimizer.items()})
    tensors.update({f"extra.{k}": v for k, v in checkpoint.extra.items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "version": VERSION, "aliases": aliases, **checkpoint.meta}
    write_atomic(path, save_tensors(tensors, metadata={"lmcore": json.dumps(meta)}))
    if summary is not None:
        write_atomic(path.with_suffix(".json"), json.dumps(summary, indent=2).encode("utf-8"))


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint, or explain what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; pick a run that has saved a checkpoint.")
    data = path.read_bytes()
    try:
        tensors = load_tensors(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"Checkpoint {path} is corrupt or truncated ({exc}); use another checkpoint.") from None
    try:
        meta = json.loads(header.get("__metadata__", {}).get("lmcore", ""))
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not an LM Workbench checkpoint.")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer LM Workbench (format {meta['version']}); upgrade to read it.")
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "extra": {}}
    for name, tensor in tensors.items():
        prefix, _, rest = name.partition(".")
        groups[prefix][rest] = tensor
    for alias, original in meta.pop("aliases", {}).items():
        groups["model"][alias] = groups["model"][original]
    return Checkpoint(meta, groups["model"], groups["optim"], groups["extra"])


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (for safetensors) and JSON-able hyper-parameters."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            elif value is not None:
                tensors[f"{index}.{key}"] = torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           hyper: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        index, _, key = name.partition(".")
        state.setdefault(int(index), {})[key] = tensor
    groups = hyper["param_groups"]
    for group in groups:  # JSON turned tuples into lists
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
