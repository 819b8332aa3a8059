"""GPT-NeoX's tensor names (Hugging Face's GPTNeoXForCausalLM) against ours, for GPT runs with rotary positions.

The blocks compute the same thing when use_parallel_residual is false (ours are sequential: x + attn(ln(x)), then
x + mlp(ln(x))) and the rotation covers whole heads (rotary_pct 1.0). Both rotate the halves of a head, pairs
(x[i], x[i + D/2]) by pos / 10000^(2i/D), so queries and keys need no permutation. What differs is the fused
projection's row order: ours is [q of every head; k ...; v ...], NeoX's is per head [q, k, v of head 0; head 1 ...].
"""
from __future__ import annotations

import re

from torch import Tensor

from ..models import TransformerLM
from .gpt2_layout import copy_weights

# Our names' prefixes -> NeoX's, N standing for a layer's number.
NAMES = {"wte.weight": "gpt_neox.embed_in.weight", "ln_f.": "gpt_neox.final_layer_norm.",
         "blocks.N.ln_1.": "gpt_neox.layers.N.input_layernorm.",
         "blocks.N.ln_2.": "gpt_neox.layers.N.post_attention_layernorm.",
         "blocks.N.attn.c_attn.": "gpt_neox.layers.N.attention.query_key_value.",
         "blocks.N.attn.c_proj.": "gpt_neox.layers.N.attention.dense.",
         "blocks.N.mlp.c_fc.": "gpt_neox.layers.N.mlp.dense_h_to_4h.",
         "blocks.N.mlp.c_proj.": "gpt_neox.layers.N.mlp.dense_4h_to_h.",
         "output.proj.weight": "embed_out.weight"}
FUSED = re.compile(r"\.attn\.c_attn\.")
ATTENTION_BIAS = re.compile(r"\.attn\.c_(attn|proj)\.bias$")  # absent from a model saved with attention_bias false
LM_HEAD = "lm_head."  # transformers 5's name for embed_out in memory: a state dict saved by hand has it


def rename(name: str, table: dict[str, str]) -> str | None:
    """`name` with the prefix of one of `table`'s keys replaced by its value (N matching a layer), or None."""
    for before, after in table.items():
        match = re.match(re.escape(before).replace("N", r"(\d+)"), name)
        if match:
            layer = match.groups()[0] if match.groups() else ""
            return after.replace("N", layer) + name[match.end():]
    return None


def neox_from_ours(name: str) -> str:
    neox = rename(name, NAMES)
    assert neox is not None, f"{name} has no GPT-NeoX name"  # every tensor of a TransformerLM has one
    return neox


def ours_from_neox(name: str) -> str | None:
    return rename(name.replace(LM_HEAD, "embed_out.", 1) if name.startswith(LM_HEAD) else name,
                  {after: before for before, after in NAMES.items()})


def heads_first(fused: Tensor, n_head: int) -> Tensor:
    """Our c_attn rows (q, k, v) x heads -> NeoX's heads x (q, k, v); a weight [3C, C] or a bias [3C]."""
    return fused.reshape(3, n_head, -1, *fused.shape[1:]).transpose(0, 1).reshape(fused.shape)


def qkv_first(fused: Tensor, n_head: int) -> Tensor:
    """NeoX's query_key_value rows back to ours: the inverse of heads_first."""
    return fused.reshape(n_head, 3, -1, *fused.shape[1:]).transpose(0, 1).reshape(fused.shape)


def neox_weights(model: TransformerLM) -> dict[str, Tensor]:
    """The model's tensors under GPT-NeoX's names as GPTNeoXForCausalLM loads them: a tied output layer left out,
    zero biases where ours has none (NeoX's layer norms and MLP always have them; its attention_bias is written
    true, which every version reads)."""
    out: dict[str, Tensor] = {}
    n_head = model.config.n_head
    for name, tensor in model.state_dict().items():
        if name == "output.proj.weight" and model.config.tie_embeddings:
            continue
        neox = neox_from_ours(name)
        out[neox] = heads_first(tensor, n_head) if FUSED.search(name) else tensor
        if not model.config.bias and name.startswith(("blocks.", "ln_f.")):
            out[neox.removesuffix(".weight") + ".bias"] = tensor.new_zeros(tensor.shape[0])
    return {name: t.detach().cpu().contiguous() for name, t in out.items()}


def load_neox_weights(model: TransformerLM, tensors: dict[str, Tensor], source: str) -> None:
    """Copy GPT-NeoX-layout `tensors` into `model` (built with biases). Every tensor the model needs must be there
    with its shape, except attention biases (attention_bias false: zeros); InteropError names the first that is not."""
    renamed = []
    for name, tensor in tensors.items():
        if name.endswith((".attention.bias", ".attention.masked_bias", ".rotary_emb.inv_freq")):
            continue  # buffers older versions saved: the causal mask and the rotary frequencies, which we rebuild
        ours = ours_from_neox(name)
        if ours is not None and FUSED.search(ours) and len(tensor) == 3 * model.config.n_embd:  # else: its shape
            tensor = qkv_first(tensor, model.config.n_head)
        renamed.append((name, ours, tensor))
    copy_weights(model, renamed, "GPT-NeoX", neox_from_ours, source, zeros=ATTENTION_BIAS)
