"""GPT-2's tensor names, which Hugging Face's GPT2LMHeadModel and nanoGPT share, against ours.

The two differ from ours in one place (the blocks are `h.N.` rather than `blocks.N.`) and from each other in
one: Hugging Face stores the four projections as Conv1D weights [in, out], nanoGPT as nn.Linear's [out, in].
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import InteropError
from ..models import TransformerLM

CONV1D_WEIGHT = re.compile(r"\.(c_attn|c_proj|c_fc)\.weight$")  # stored transposed by Hugging Face
# Buffers some versions save beside the weights: the causal mask (attn.bias, a [1, 1, T, T] matrix: not c_attn's
# bias) and Hugging Face's masked_bias constant. We build the mask ourselves.
MASK_BUFFER = re.compile(r"\.attn\.(bias|masked_bias)$")
PREFIXES = ("_orig_mod.", "transformer.")  # torch.compile's wrapper (nanoGPT's compiled runs), the LM head's trunk
OUTPUT_NAME = "lm_head.weight"


def ours_from_gpt2(name: str) -> str:
    """'h.3.mlp.c_fc.weight' -> 'blocks.3.mlp.c_fc.weight'; 'lm_head.weight' -> 'output.proj.weight'."""
    if name == OUTPUT_NAME:
        return "output.proj.weight"
    return re.sub(r"^h\.", "blocks.", name)


def gpt2_from_ours(name: str) -> str:
    if name == "output.proj.weight":
        return OUTPUT_NAME
    return "transformer." + re.sub(r"^blocks\.", "h.", name)


def strip_prefixes(name: str) -> str:
    for prefix in PREFIXES:
        name = name.removeprefix(prefix)
    return name


def load_gpt2_weights(model: TransformerLM, tensors: dict[str, Tensor], conv1d: bool, source: str) -> None:
    """Copy GPT-2-layout `tensors` into `model`, transposing Conv1D weights when `conv1d`. Every tensor the model
    needs must be there with its shape; InteropError names the first that is not, and `source` the file."""
    renamed = []
    for name, tensor in tensors.items():
        name = strip_prefixes(name)
        if MASK_BUFFER.search(name):
            continue
        if conv1d and CONV1D_WEIGHT.search(name):
            tensor = tensor.t()
        renamed.append((name, ours_from_gpt2(name), tensor))
    copy_weights(model, renamed, "GPT-2", gpt2_from_ours, source)


def copy_weights(model: TransformerLM, renamed: Sequence[tuple[str, str | None, Tensor]], architecture: str,
                 theirs_from_ours: Callable[[str], str], source: str, zeros: re.Pattern | None = None) -> None:
    """Copy `renamed` (their name, ours or None, the tensor in our layout) into `model`, checking that each is a
    tensor of the model with its shape and that none is missing (but a tied output layer, which is the token
    embedding, and the tensors `zeros` matches, which become zeros); InteropError names the first at fault."""
    wanted = model.state_dict()
    tied = "output.proj.weight" if model.config.tie_embeddings else None
    found: dict[str, Tensor] = {}
    for name, ours, tensor in renamed:
        if ours == tied:
            continue
        if ours is None or ours not in wanted:
            raise InteropError(f"{source} holds tensor {name!r}, which a {architecture} model of this config does "
                               f"not have; the file is not a {architecture} model (or its config.json does not "
                               "describe it).")
        if tuple(tensor.shape) != tuple(wanted[ours].shape):
            raise InteropError(f"{source}: tensor {name!r} has shape {list(tensor.shape)}, but the config "
                               f"describes {list(wanted[ours].shape)}; the weights and the config do not belong "
                               "together.")
        found[ours] = tensor
    for name in wanted:
        if zeros is not None and zeros.search(name) and name not in found:
            found[name] = torch.zeros_like(wanted[name])
    missing = [name for name in wanted if name not in found and name != tied]
    if missing:
        raise InteropError(f"{source} lacks tensor {theirs_from_ours(missing[0])!r} (and {len(missing) - 1} more); "
                           f"the file is incomplete or not a {architecture} model.")
    with torch.no_grad():
        for name, tensor in found.items():
            wanted[name].copy_(tensor)


def gpt2_weights(model: TransformerLM) -> dict[str, Tensor]:
    """The model's tensors under GPT-2's names, Conv1D weights transposed, as GPT2LMHeadModel loads them: a tied
    output layer is left out, absent biases are zeros, and a sinusoidal table becomes the position embedding."""
    out: dict[str, Tensor] = {}
    for name, tensor in model.state_dict().items():
        if name == "output.proj.weight" and model.config.tie_embeddings:
            continue
        gpt2 = gpt2_from_ours(name)
        out[gpt2] = tensor.t() if CONV1D_WEIGHT.search(gpt2) else tensor
        if not model.config.bias and (name.endswith(".weight") and not name.startswith(("wte", "wpe", "output"))):
            out[gpt2.removesuffix(".weight") + ".bias"] = tensor.new_zeros(out[gpt2].shape[-1])
    if model.config.positional == "sinusoidal":
        out["transformer.wpe.weight"] = model.sinusoid
    return {name: t.detach().cpu().contiguous() for name, t in out.items()}
