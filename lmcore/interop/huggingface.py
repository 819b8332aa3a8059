"""Hugging Face GPT-2 and GPT-NeoX folders in and out.

In: config.json, model.safetensors (or its shards) and tokenizer.json (or GPT-2's vocab.json + merges.txt)
become a run of ours. GPT-2: Conv1D weights transposed, biases on, learned positions, GELU with the tanh
approximation, LayerNorm eps 1e-5, the output layer tied to the token embedding. GPT-NeoX (the variant ours
computes: sequential residual, rotary positions over whole heads): rotary positions, biases on. Out: a GPT-family
run becomes a GPT2LMHeadModel folder (learned or sinusoidal positions) or a GPTNeoXForCausalLM one (rotary) that
`transformers` loads, with a tokenizer.json its tokenizer classes read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import InteropError
from ..models import LanguageModel, TransformerConfig, TransformerLM
from ..tokenizers import HF_TOKENIZER_FILE, HuggingFaceTokenizer, Tokenizer
from .gpt2_layout import gpt2_weights, load_gpt2_weights
from .hf_tokenizer import hf_special_tokens, hf_tokenizer_document
from .imported import save_imported_run
from .neox_layout import load_neox_weights, neox_weights

# config.json's activation_function (GPT-2) or hidden_act (GPT-NeoX) -> ours; "gelu_new" is the tanh
# approximation spelled out, "gelu_pytorch_tanh" F.gelu's own (ours, exactly)
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's default, GPT-2's and GPT-NeoX's
ROPE_BASE = 10000.0  # our rotary angles' base (models/transformer.py position_angles)
WHAT_IMPORTS = ("LM Workbench imports GPT-2 models (model_type 'gpt2': gpt2, gpt2-medium, gpt2-large, gpt2-xl, "
                "distilgpt2 and GPT-2 fine-tunes), GPT-NeoX models of the shape it exports (model_type 'gpt_neox' "
                "with use_parallel_residual false and rotary_pct 1.0) and nanoGPT checkpoints.")
WEIGHTS_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InteropError(f"{folder} has no config.json; give the folder of a Hugging Face model (config.json, "
                           "model.safetensors, tokenizer.json).") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InteropError(f"{path} cannot be read as JSON ({exc}); copy the model's folder again.") from None
    if not isinstance(config, dict):
        raise InteropError(f"{path} is not a model config (a JSON object); copy the model's folder again.")
    return config


def gpt2_config(hf: dict[str, Any], source: Path) -> TransformerConfig:
    """Our TransformerConfig for a GPT-2 config.json; InteropError for a GPT-2 variant we do not compute the same
    way."""
    activation = hf.get("activation_function", "gelu_new")
    n_embd, n_inner = hf.get("n_embd", 768), hf.get("n_inner")
    unsupported = [(activation not in ACTIVATIONS, f"activation_function = {activation!r}"),
                   (n_inner not in (None, 4 * n_embd), f"n_inner = {n_inner} (not 4 x n_embd)"),
                   (abs(hf.get("layer_norm_epsilon", LAYER_NORM_EPS) - LAYER_NORM_EPS) > 1e-12,
                    f"layer_norm_epsilon = {hf.get('layer_norm_epsilon')}"),
                   (not hf.get("scale_attn_weights", True), "scale_attn_weights = false"),
                   (hf.get("scale_attn_by_inverse_layer_idx", False), "scale_attn_by_inverse_layer_idx = true"),
                   (hf.get("add_cross_attention", False), "add_cross_attention = true")]
    reasons = [reason for bad, reason in unsupported if bad]
    if reasons:
        raise InteropError(f"{source}: this GPT-2 variant has {', '.join(reasons)}, which LM Workbench's model "
                           "does not compute; only standard GPT-2 models can be imported.")
    return TransformerConfig(vocab_size=hf.get("vocab_size", 50257), n_layer=hf.get("n_layer", 12),
                             n_head=hf.get("n_head", 12), n_embd=n_embd, context_length=hf.get("n_positions", 1024),
                             dropout=0.0, bias=True, positional="learned",
                             tie_embeddings=hf.get("tie_word_embeddings", True), activation=ACTIVATIONS[activation])


def neox_config(hf: dict[str, Any], source: Path) -> TransformerConfig:
    """Our TransformerConfig for a GPT-NeoX config.json; InteropError for a variant we do not compute the same way
    (Pythia's parallel residual and quarter-head rotation among them)."""
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}  # transformers 5 writes rope_parameters
    share = rope.get("partial_rotary_factor", hf.get("rotary_pct", 0.25))  # the defaults are transformers'
    base = rope.get("rope_theta", hf.get("rotary_emb_base", ROPE_BASE))
    activation, n_embd = hf.get("hidden_act", "gelu"), hf.get("hidden_size", 6144)
    unsupported = [(hf.get("use_parallel_residual", True), "use_parallel_residual = true"),
                   (share != 1.0, f"rotary_pct = {share} (rotary positions over part of each head)"),
                   (base != ROPE_BASE, f"rotary_emb_base = {base}"),
                   (rope.get("rope_type", rope.get("type", "default")) != "default",  # "type": transformers 4
                    f"rope_scaling = {rope}"),
                   (activation not in ACTIVATIONS, f"hidden_act = {activation!r}"),
                   (hf.get("intermediate_size") != 4 * n_embd,
                    f"intermediate_size = {hf.get('intermediate_size')} (not 4 x hidden_size)"),
                   (abs(hf.get("layer_norm_eps", LAYER_NORM_EPS) - LAYER_NORM_EPS) > 1e-12,
                    f"layer_norm_eps = {hf.get('layer_norm_eps')}")]
    reasons = [reason for bad, reason in unsupported if bad]
    if reasons:
        raise InteropError(f"{source}: this GPT-NeoX model has {', '.join(reasons)}, which LM Workbench's model "
                           "does not compute; GPT-NeoX models of the shape it exports import (use_parallel_residual "
                           "false, rotary_pct 1.0, rotary_emb_base 10000, intermediate_size 4 x hidden_size).")
    return TransformerConfig(vocab_size=hf.get("vocab_size", 50432), n_layer=hf.get("num_hidden_layers", 44),
                             n_head=hf.get("num_attention_heads", 64), n_embd=n_embd,
                             context_length=hf.get("max_position_embeddings", 2048), dropout=0.0, bias=True,
                             positional="rotary", tie_embeddings=hf.get("tie_word_embeddings", False),
                             activation=ACTIVATIONS[activation])


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or every shard its index names. A pytorch_model.bin (a pickle) is not read."""
    try:
        if (folder / WEIGHTS_FILE).is_file():
            return load_file(folder / WEIGHTS_FILE)
        if (folder / SHARD_INDEX).is_file():
            shards = sorted(set(json.loads((folder / SHARD_INDEX).read_text(encoding="utf-8"))["weight_map"].values()))
            return {name: t for shard in shards for name, t in load_file(folder / shard).items()}
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise InteropError(f"the weights in {folder} cannot be read ({exc}); copy the model's folder again.") from None
    pickled = " It has pytorch_model.bin, a pickle, which is never loaded here" if (
        folder / "pytorch_model.bin").is_file() else ""
    raise InteropError(f"{folder} has no {WEIGHTS_FILE}.{pickled}. Save the model with safetensors "
                       "(model.save_pretrained(folder, safe_serialization=True)) and import that folder.")


def read_tokenizer(path: Path) -> HuggingFaceTokenizer:
    """A tokenizer.json, or a folder with tokenizer.json or GPT-2's vocab.json + merges.txt."""
    path = Path(path)
    if path.is_file():
        return HuggingFaceTokenizer.from_file(path)
    if (path / HF_TOKENIZER_FILE).is_file():
        return HuggingFaceTokenizer.from_file(path / HF_TOKENIZER_FILE)
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return HuggingFaceTokenizer.from_vocab_and_merges(path / "vocab.json", path / "merges.txt")
    raise InteropError(f"{path} has no tokenizer: it needs tokenizer.json, or GPT-2's vocab.json and merges.txt. "
                       "Copy them from the model's folder, or point to a folder that has them.")


def import_huggingface(folder: str | Path, runs_dir: str | Path, name: str | None = None,
                       tokenizer: str | Path | None = None) -> Path:
    """Import the GPT-2 model in `folder` as a new run in `runs_dir` (named after the folder unless `name`), with
    the tokenizer in `folder` (or `tokenizer`, a file or folder). Returns the run folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InteropError(f"{folder} is not a folder; give the folder of a Hugging Face model.")
    hf = read_config(folder)
    model_type, source = hf.get("model_type"), folder / "config.json"
    if model_type not in ("gpt2", "gpt_neox"):
        raise InteropError(f"{source} describes a {model_type!r} model ({', '.join(hf.get('architectures', []))}); "
                           + WHAT_IMPORTS)
    config = gpt2_config(hf, source) if model_type == "gpt2" else neox_config(hf, source)
    hf_tokenizer = read_tokenizer(Path(tokenizer) if tokenizer else folder)
    if hf_tokenizer.vocab_size != config.vocab_size:
        raise InteropError(f"the tokenizer has {hf_tokenizer.vocab_size:,} tokens but the model in {folder} predicts "
                           f"{config.vocab_size:,}; use the tokenizer that came with the model.")
    model = TransformerLM(config)
    if model_type == "gpt2":
        load_gpt2_weights(model, read_weights(folder), conv1d=True, source=str(folder))
    else:
        load_neox_weights(model, read_weights(folder), source=str(folder))
    return save_imported_run(model, hf_tokenizer, name or folder.name, runs_dir, f"Hugging Face {folder}")


# ---- export -----------------------------------------------------------------------------------------------------
def export_huggingface(model: LanguageModel, tokenizer: Tokenizer, out: Path) -> None:
    """Write a GPT2LMHeadModel folder (learned or sinusoidal positions) or a GPTNeoXForCausalLM one (rotary):
    config.json, model.safetensors, tokenizer.json and tokenizer_config.json."""
    if not isinstance(model, TransformerLM):
        other_formats = "--to onnx or --to safetensors" if model.family == "rnn" else "--to safetensors"
        raise InteropError(f"a {model.family} run has no Hugging Face architecture to export to here: only GPT-family "
                           f"(Transformer) runs export to Hugging Face (as GPT-2, or GPT-NeoX with rotary "
                           f"positions); use {other_formats} for this one.")
    config = model.config
    tokenizer_json = hf_tokenizer_document(tokenizer)  # before anything is written: it may refuse
    out.mkdir(parents=True, exist_ok=True)
    if config.positional == "rotary":
        save_file(neox_weights(model), out / WEIGHTS_FILE, metadata={"format": "pt"})
        hf_config = neox_hf_config(config)
    else:
        save_file(gpt2_weights(model), out / WEIGHTS_FILE, metadata={"format": "pt"})
        hf_config = gpt2_hf_config(config)
    hf_config.update(tie_word_embeddings=config.tie_embeddings, bos_token_id=tokenizer.eos_id,
                     eos_token_id=tokenizer.eos_id, torch_dtype="float32")
    (out / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
    (out / HF_TOKENIZER_FILE).write_text(tokenizer_json, encoding="utf-8")
    special = hf_special_tokens(tokenizer_json, {"unk_token": tokenizer.unk_id, "eos_token": tokenizer.eos_id})
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config.context_length,
         "clean_up_tokenization_spaces": False,  # its decoder already gives our text: no " ." -> "." on top
         **special}, indent=2) + "\n", encoding="utf-8")


def gpt2_hf_config(config: TransformerConfig) -> dict[str, Any]:
    gelu = {"gelu": "gelu", "gelu_tanh": "gelu_new"}[config.activation]
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": config.vocab_size,
            "n_positions": config.context_length, "n_embd": config.n_embd, "n_layer": config.n_layer,
            "n_head": config.n_head, "n_inner": None, "activation_function": gelu,
            "layer_norm_epsilon": LAYER_NORM_EPS, "resid_pdrop": config.dropout, "embd_pdrop": config.dropout,
            "attn_pdrop": config.dropout}


def neox_hf_config(config: TransformerConfig) -> dict[str, Any]:
    """GPT-NeoX computing our blocks: sequential residual, rotation over whole heads at our base. rotary_pct and
    rotary_emb_base are the names every transformers version reads (5 turns them into rope_parameters)."""
    gelu = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}[config.activation]
    return {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "vocab_size": config.vocab_size,
            "max_position_embeddings": config.context_length, "hidden_size": config.n_embd,
            "num_hidden_layers": config.n_layer, "num_attention_heads": config.n_head,
            "intermediate_size": 4 * config.n_embd, "hidden_act": gelu, "rotary_pct": 1.0,
            "rotary_emb_base": ROPE_BASE, "use_parallel_residual": False, "attention_bias": True,
            "layer_norm_eps": LAYER_NORM_EPS, "hidden_dropout": config.dropout, "attention_dropout": config.dropout}
