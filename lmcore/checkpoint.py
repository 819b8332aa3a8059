"""Checkpoints: one safetensors file (tensors + a JSON header) and a human-readable JSON beside it.

Everything needed to continue a run lives in the .safetensors file: model weights, optimizer state, RNG states
and the trainer's counters (in the header's "lmcore" entry). The .json beside it is a summary for people and
for the runs browser; it carries the checkpoint's step, and read_summary returns it only while it describes the
checkpoint beside it (a process killed between the two writes leaves the previous summary). Files are written
atomically; nothing is ever unpickled, and no model is built before its header is checked against its tensors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .errors import CheckpointError, LMCoreError
from .fileio import write_atomic
from .models import LanguageModel, ModelConfig, build_model, model_config_from_dict
from .models.classifier import TextClassifier

M = TypeVar("M", bound=torch.nn.Module)
from .tokenizers import Tokenizer, load_tokenizer

FORMAT = "lmcore-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"  # a run folder's checkpoints, beside its tokenizer
TOKENIZER_DIR = "tokenizer"
# A sane bound on the memory a model needs beyond its weights, which no stored tensor shows: one sequence's key/value
# cache (2 x n_layer x context_length x n_embd values; position tables are smaller) may hold at most the larger of
# MIN_CONTEXT_VALUES and CONTEXT_VALUES_PER_WEIGHT values per stored weight.
MIN_CONTEXT_VALUES = 1 << 28
CONTEXT_VALUES_PER_WEIGHT = 64


@dataclass
class Checkpoint:
    meta: dict[str, Any]  # model config, step, counters, schedule, optimizer hyper-parameters
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)  # "<param index>.<key>"
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # RNG states, carried RNN state
    path: Path | None = None  # the file it was loaded from, for messages


def unique_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a state dict with tied weights once (safetensors refuses two names for one memory), and the
    names left out, each with the name kept for it."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
            tensors[name] = tensor
    return tensors, aliases


def save_checkpoint(path: Path, checkpoint: Checkpoint, summary: dict[str, Any] | None = None) -> None:
    """Write `path` (.safetensors) and, if given, a summary `path.with_suffix('.json')` (see read_summary)."""
    model, aliases = unique_tensors(checkpoint.model)
    tensors = {f"model.{name}": tensor for name, tensor in model.items()}
    tensors.update({f"optim.{k}": v for k, v in checkpoint.optimizer.items()})
    tensors.update({f"extra.{k}": v for k, v in checkpoint.extra.items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "version": VERSION, "aliases": aliases, **checkpoint.meta}
    write_atomic(path, save_tensors(tensors, metadata={"lmcore": json.dumps(meta)}))
    if summary is not None:
        write_atomic(path.with_suffix(".json"), json.dumps(summary, indent=2).encode("utf-8"))


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The header of a checkpoint (step, model config, counters) without reading its tensors, or explain what is
    wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; pick a run that has saved a checkpoint.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"Checkpoint {path} is corrupt or truncated ({exc}); use another checkpoint.") from None
    try:
        meta = json.loads(metadata.get("lmcore", ""))
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not an LM Workbench checkpoint.")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer LM Workbench (format {meta['version']}); upgrade to read it.")
    return meta


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint, or explain what is wrong with the file."""
    path = Path(path)
    meta = checkpoint_meta(path)
    try:
        tensors = load_tensors(path.read_bytes())
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"Checkpoint {path} is corrupt or truncated ({exc}); use another checkpoint.") from None
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "extra": {}}
    try:
        for name, tensor in tensors.items():
            prefix, _, rest = name.partition(".")
            groups[prefix][rest] = tensor
        for alias, original in meta.pop("aliases", {}).items():
            groups["model"][alias] = groups["model"][original]
    except (KeyError, AttributeError) as exc:
        raise CheckpointError(f"Checkpoint {path} is damaged: its header does not match its tensors ({exc!r}); "
                              "use another checkpoint.") from None
    return Checkpoint(meta, groups["model"], groups["optim"], groups["extra"], path)


def read_summary(path: Path) -> dict[str, Any] | None:
    """The summary beside checkpoint `path`, or None when there is none or it does not describe that checkpoint
    (its step differs from the header's: the process was killed between writing the two)."""
    try:
        summary = json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
        step = checkpoint_meta(path).get("step")
    except (OSError, ValueError, CheckpointError):
        return None
    return summary if isinstance(summary, dict) and summary.get("step") == step else None


def check_fits(checkpoint: Checkpoint, model: torch.nn.Module, whose: str) -> None:
    """CheckpointError unless the checkpoint's model tensors are the model's, name for name and shape for shape.
    `whose` names the model in the message ("its own model config", "this run's model")."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    stored = {name: tuple(t.shape) for name, t in checkpoint.model.items()}
    if stored == expected:
        return
    wrong = [name for name in expected if name in stored and stored[name] != expected[name]]
    missing = [name for name in expected if name not in stored]
    if wrong:
        name = wrong[0]
        detail = f"tensor {name} is stored as {list(stored[name])} but {whose} needs {list(expected[name])}"
    elif missing:
        detail = f"it lacks tensor {missing[0]}, which {whose} needs"
    else:
        detail = f"it holds tensor {next(n for n in stored if n not in expected)}, which {whose} does not have"
    raise CheckpointError(f"Checkpoint {checkpoint.path} does not fit {whose}: {detail}. The file is damaged or "
                          "belongs to another model; use another checkpoint.")


def build_checkpoint_model(checkpoint: Checkpoint) -> LanguageModel:
    """The language model that the checkpoint's header describes, with the checkpoint's weights (see
    _build_checked); CheckpointError for a classifier's checkpoint."""
    head = checkpoint.meta.get("classifier")
    if head is not None:
        raise CheckpointError(f"{checkpoint.path} is a text classifier's checkpoint (labels "
                              f"{', '.join(map(str, head.get('labels', [])))}), not a language model's: classify "
                              "with it (lmcore classify), or use the run it was trained from.")
    if checkpoint.meta.get("quantized"):
        from .quantize import build_int8_model  # which builds on this module

        return build_int8_model(checkpoint)
    return _build_checked(checkpoint, build_model)


def build_checkpoint_classifier(checkpoint: Checkpoint) -> TextClassifier:
    """The text classifier that the checkpoint's header describes, with its weights; CheckpointError for a
    language model's checkpoint."""
    head = checkpoint.meta.get("classifier")
    if head is None:
        raise CheckpointError(f"{checkpoint.path} is a language model's checkpoint, not a classifier's: train a "
                              'classifier from it (task = "classify", init_from = its run) and use that run.')
    try:
        n_labels, pooling = len(head["labels"]), head["pooling"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"Checkpoint {checkpoint.path} has no usable classifier header ({exc!r}); the file is "
                              "damaged, use another checkpoint.") from None
    return _build_checked(checkpoint, lambda config: TextClassifier(build_model(config), n_labels, pooling))


def _build_checked(checkpoint: Checkpoint, build: Callable[[ModelConfig], M]) -> M:
    """build(the header's model config), with the checkpoint's weights. The header is checked against the stored
    tensors, and within sane bounds, before anything is allocated: a damaged or forged header must not make us
    build whatever it claims."""
    path, stored = checkpoint.path, checkpoint.model
    try:
        config = model_config_from_dict(checkpoint.meta["model"], "its header")
        config.validate()
    except (KeyError, TypeError, AttributeError, LMCoreError) as exc:
        raise CheckpointError(f"Checkpoint {path} has no usable model config ({exc}); the file is damaged, use "
                              "another checkpoint.") from None
    try:
        with torch.device("meta"):  # shapes only, no memory
            skeleton = build(config)
    except (RuntimeError, ValueError, OverflowError, LMCoreError) as exc:
        raise CheckpointError(f"Checkpoint {path} describes a model that cannot be built ({exc}); the file is "
                              "damaged, use another checkpoint.") from None
    check_fits(checkpoint, skeleton, "its own model config")
    weights = sum(t.numel() for t in stored.values())
    context = getattr(config, "context_length", 0)
    needed = 2 * config.n_layer * context * config.n_embd
    if needed > max(MIN_CONTEXT_VALUES, CONTEXT_VALUES_PER_WEIGHT * weights):
        raise CheckpointError(f"Checkpoint {path} claims model.context_length = {context}: one sequence's "
                              f"key/value cache would hold {needed:,} values, far beyond what its {weights:,} "
                              "weights can use; the file is damaged, use another checkpoint.")
    model = build(config)
    model.load_state_dict(stored)
    return model


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


def checkpoint_path(run_dir: Path, which: str = "last") -> Path:
    """Where run folder `run_dir` keeps its `which` ("last" or "best") checkpoint."""
    return Path(run_dir) / CHECKPOINT_DIR / f"{which}.safetensors"


def resolve_checkpoint(target: Path, which: str = "best") -> Path:
    """A run folder (taking its best, else last, checkpoint) or a checkpoint file."""
    target = Path(target)
    if target.is_file():
        return target
    for name in (which, "last", "best"):
        path = checkpoint_path(target, name)
        if path.is_file():
            return path
    raise CheckpointError(f"{target} has no checkpoints yet; train it for at least one evaluation interval.")


def load_trained_model(target: Path, which: str = "best", device: str | torch.device = "cpu"
                       ) -> tuple[torch.nn.Module, Tokenizer, dict[str, Any]]:
    """The model, its tokenizer and the checkpoint's metadata, ready for generation or evaluation. An int8 copy
    (lmcore.quantize) stays on the CPU, where its kernels run, whatever `device` says: see model_device."""
    checkpoint = load_checkpoint(resolve_checkpoint(target, which))
    tokenizer = checkpoint_tokenizer(checkpoint)
    model = build_checkpoint_model(checkpoint)
    return model.to("cpu" if checkpoint.meta.get("quantized") else device).eval(), tokenizer, checkpoint.meta


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a loaded model's tensors live, so that its inputs go there too (an int8 copy's: the CPU)."""
    return next(model.parameters()).device


def checkpoint_tokenizer(checkpoint: Checkpoint) -> Tokenizer:
    """The tokenizer of the run a checkpoint belongs to (RUN/checkpoints/x.safetensors -> RUN/tokenizer), checked
    against the fingerprint the checkpoint recorded."""
    path = Path(str(checkpoint.path))
    folder = path.parent.parent / TOKENIZER_DIR
    tokenizer = load_tokenizer(folder)
    expected = checkpoint.meta.get("tokenizer_fingerprint")
    if expected and expected != tokenizer.fingerprint():
        raise CheckpointError(
            f"The tokenizer in {folder} does not match checkpoint {path} "
            "(it was replaced after training); restore the run's original tokenizer folder."
        )
    return tokenizer
