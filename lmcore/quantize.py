"""int8 copies of trained runs, for inference on the CPU (`lmcore quantize RUN`).

Dynamic quantization: the weights of the linear layers and of LSTM/GRU layers are stored as int8 with one scale per
tensor; activations are quantized on the fly at each matmul. Embeddings, norms, biases and plain tanh/ReLU RNNs stay
in floating point. The copy is a run folder of its own (config, tokenizer, status, one checkpoint), so everything
that loads a run (lmcore sample / eval, the Generate tab) loads it; its checkpoint is safetensors like any other:
each int8 weight `name` beside `name.scale` and `name.zero_point`, and "quantized" in the header.

PyTorch marks its eager quantization (torch.ao.quantization) deprecated in favour of the separate torchao package,
which LM Workbench does not depend on; the int8 kernels still ship with torch, so the warnings are silenced here.
"""
from __future__ import annotations

import contextlib
import copy
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear
from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase as Int8RNN

from .checkpoint import (CHECKPOINT_DIR, TOKENIZER_DIR, Checkpoint, build_checkpoint_model, checkpoint_path,
                         load_checkpoint, read_summary, resolve_checkpoint, save_checkpoint)
from .errors import CheckpointError, ConfigError
from .models import LanguageModel
from .runs import RunFolder

QUANTIZED = "int8-dynamic"  # the checkpoint header's "quantized" entry
LAYERS = {nn.Linear, nn.LSTM, nn.GRU}
SCALE, ZERO_POINT = ".scale", ".zero_point"


@contextlib.contextmanager
def _torch_quantization():
    """torch.ao.quantization, without its deprecation warnings (see the module's docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        from torch.ao.quantization import quantize_dynamic
        yield quantize_dynamic


def quantize_model(model: LanguageModel) -> LanguageModel:
    """The model with its linear, LSTM and GRU layers quantized to int8 in place (on the CPU, in eval mode)."""
    with _torch_quantization() as quantize_dynamic:
        quantize_dynamic(model.cpu().eval(), LAYERS, dtype=torch.qint8, inplace=True)
    return model


def _int8_layers(model: nn.Module) -> Iterator[tuple[str, Int8Linear | Int8RNN]]:
    """Each int8 layer of a quantized model, with the prefix of its parameters' names ("" or "path.")."""
    for path, module in model.named_modules():
        if isinstance(module, (Int8Linear, Int8RNN)):
            yield (f"{path}." if path else ""), module


def _quantized_weights(model: nn.Module) -> dict[str, Tensor]:
    """The int8 (torch.qint8) weights of a quantized model's layers, by their float model's parameter names."""
    found: dict[str, Tensor] = {}
    for prefix, module in _int8_layers(model):
        if isinstance(module, Int8Linear):
            found[prefix + "weight"] = module.weight()
        else:
            found.update({prefix + name: w for name, w in module._weight_bias()["weight"].items()})
    return found


def int8_state(model: LanguageModel) -> dict[str, Tensor]:
    """What an int8 checkpoint stores of float `model`: each weight of a quantized layer as int8 with its scale and
    zero point, everything else as it is. A weight tied to a quantized one (a tied embedding) is given the very same
    tensors, so the checkpoint stores them once and both load from them."""
    state = model.state_dict()
    with _torch_quantization():  # a copy: `model`'s own tensors are what the state shares
        quantized = _quantized_weights(quantize_model(copy.deepcopy(model)))
    source_of = {state[name].data_ptr(): name for name in quantized}
    entries: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
    tensors: dict[str, Tensor] = {}
    for name, tensor in state.items():
        source = source_of.get(tensor.data_ptr())
        if source is None:
            tensors[name] = tensor
            continue
        if source not in entries:
            q = quantized[source]
            if q.qscheme() != torch.per_tensor_affine:
                raise ValueError(f"{source} was quantized per {q.qscheme()}; expected one scale per tensor")
            entries[source] = (q.int_repr(), torch.tensor(q.q_scale()), torch.tensor(q.q_zero_point()))
        tensors[name], tensors[name + SCALE], tensors[name + ZERO_POINT] = entries[source]
    return tensors


def build_int8_model(checkpoint: Checkpoint) -> LanguageModel:
    """The quantized model of an int8 checkpoint (on the CPU). Its dequantized weights go through every check of
    build_checkpoint_model first; then each quantized layer takes its stored int8 weights exactly."""
    stored = checkpoint.model
    int8 = {name for name, t in stored.items() if t.dtype == torch.int8}
    try:
        dequantized = {name: (t.float() - stored[name + ZERO_POINT]) * stored[name + SCALE] if name in int8 else t
                       for name, t in stored.items() if not name.endswith((SCALE, ZERO_POINT))}
    except KeyError as exc:
        raise CheckpointError(f"Checkpoint {checkpoint.path} lacks the scale of int8 tensor {exc}; the file is "
                              "damaged, quantize the run again.") from None
    meta = {key: value for key, value in checkpoint.meta.items() if key != "quantized"}
    model = quantize_model(build_checkpoint_model(replace(checkpoint, meta=meta, model=dequantized)))

    def weight(name: str) -> Tensor:
        if name not in int8:
            raise CheckpointError(f"Checkpoint {checkpoint.path} stores {name} in floating point, but an int8 copy "
                                  "keeps it as int8; the file is damaged, quantize the run again.")
        return torch._make_per_tensor_quantized_tensor(stored[name], float(stored[name + SCALE]),
                                                       int(stored[name + ZERO_POINT]))

    with _torch_quantization():
        for prefix, module in _int8_layers(model):
            if isinstance(module, Int8Linear):
                module.set_weight_bias(weight(prefix + "weight"), module.bias())
            else:
                current = module._weight_bias()
                module.set_weight_bias({**{name: weight(prefix + name) for name in current["weight"]},
                                        **current["bias"]})
    return model


def quantize_run(run: Path, out: Path | None = None, which: str = "best") -> Path:
    """Write an int8 copy of run folder (or checkpoint) `run` as a new run folder, `out` or RUN-int8 beside the
    run; return its path. The source is left as it was."""
    path = resolve_checkpoint(Path(run), which)
    checkpoint = load_checkpoint(path)
    if checkpoint.meta.get("quantized"):
        raise CheckpointError(f"{path} is already an int8 copy; quantize the run it was made from.")
    source = RunFolder(path.parent.parent)
    target = Path(out) if out else source.path.with_name(f"{source.path.name}-int8")
    if target.exists():
        raise ConfigError(f"{target} already exists; give another folder with --out, or delete it first.")
    tensors = int8_state(build_checkpoint_model(checkpoint))
    meta = {"model": checkpoint.meta["model"], "step": checkpoint.meta.get("step", 0), "quantized": QUANTIZED,
            "quantized_from": str(path), "tokenizer_fingerprint": checkpoint.meta.get("tokenizer_fingerprint")}
    folder = RunFolder(target)
    (target / CHECKPOINT_DIR).mkdir(parents=True)
    try:
        shutil.copytree(source.path / TOKENIZER_DIR, folder.tokenizer_dir)
        folder.save_config(source.load_config())
        summary = {**(read_summary(path) or {}), "step": meta["step"], "quantized_from": str(path)}
        save_checkpoint(checkpoint_path(target, "best"), Checkpoint(meta, tensors), summary)
        status = source.read_status()
        folder.write_status("finished", f"int8 copy of {source.path.name} (step {meta['step']})",
                            step=meta["step"], best_val_loss=status.get("best_val_loss"),
                            parameters=status.get("parameters", 0))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half-written copy left to be listed as a run
        raise
    return target


def is_int8(model: nn.Module) -> bool:
    """Whether a loaded model is an int8 copy (which runs on the CPU only)."""
    return next(_int8_layers(model), None) is not None
