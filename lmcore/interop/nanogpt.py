"""nanoGPT checkpoints (ckpt.pt) in: read with torch.load(weights_only=True), so only tensors and plain values
are unpickled and a file holding anything else is refused without running it.

nanoGPT's layout is GPT-2's with nn.Linear weights (not transposed), optional biases, exact GELU and a learned
position table; `_orig_mod.` prefixes of compiled runs are dropped. Its tokenizer is not in the checkpoint: a
character model's vocabulary is rebuilt from its corpus as nanoGPT's prepare.py builds it (sorted(set(text));
meta.pkl is a pickle and is not read), a GPT-2-vocabulary model takes GPT-2's tokenizer from a file or folder.
"""
from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..corpus import read_corpus
from ..errors import InteropError
from ..models import TransformerConfig, TransformerLM
from ..tokenizers import CharTokenizer, Tokenizer
from .gpt2_layout import load_gpt2_weights, strip_prefixes
from .huggingface import read_tokenizer
from .imported import save_imported_run

EMBEDDING_NAMES = ("wte.weight", "lm_head.weight")  # the rows a vocabulary change renumbers


def read_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(state dict, model_args) of a ckpt.pt, the tensors' names without torch.compile's and the GPT's prefixes
    (gpt2_layout.strip_prefixes); a bare state dict (torch.save(model.state_dict())) has no model_args."""
    try:
        with warnings.catch_warnings():  # torch's remark on a pickle protocol it may not read: we say what failed
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InteropError(f"{path} does not exist; give the ckpt.pt of a nanoGPT run.") from None
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise InteropError(f"{path} holds Python objects other than tensors and plain values ({first_line}); it was "
                           "refused without running them. Only nanoGPT's ckpt.pt (a dict of tensors, numbers and "
                           "text) or a saved state dict can be imported.") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise InteropError(f"{path} cannot be read as a PyTorch checkpoint ({exc}); copy it again.") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        args = loaded.get("model_args")
        return _stripped(loaded["model"]), args if isinstance(args, dict) else {}
    if isinstance(loaded, dict) and loaded and all(isinstance(t, Tensor) for t in loaded.values()):
        return _stripped(loaded), {}
    raise InteropError(f"{path} is not a nanoGPT checkpoint: it holds neither a 'model' state dict nor tensors.")


def _stripped(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {strip_prefixes(name): t for name, t in tensors.items()}


def nanogpt_config(tensors: dict[str, Tensor], args: dict[str, Any], n_head: int | None, path: Path
                   ) -> TransformerConfig:
    """The model config from model_args (n_layer, n_head, n_embd, block_size, bias, vocab_size, dropout), the
    sizes checked against the tensors; a bare state dict's from its tensors' shapes, with `n_head` given."""
    if "wte.weight" not in tensors or "wpe.weight" not in tensors:
        raise InteropError(f"{path} has no transformer.wte / transformer.wpe tensors: it is not a nanoGPT GPT model.")
    vocab_size, n_embd = tensors["wte.weight"].shape
    n_layer = 1 + max((int(m[1]) for name in tensors if (m := re.match(r"h\.(\d+)\.", name))), default=-1)
    heads = args.get("n_head", n_head)
    if heads is None:
        raise InteropError(f"{path} is a bare state dict without nanoGPT's model_args, which alone say how many "
                           "heads the model has; give the number (--n-head).")
    return TransformerConfig(vocab_size=vocab_size, n_layer=n_layer, n_head=int(heads), n_embd=n_embd,
                             context_length=tensors["wpe.weight"].shape[0], dropout=float(args.get("dropout", 0.0)),
                             bias="ln_f.bias" in tensors, positional="learned", tie_embeddings=True, activation="gelu")


def renumber_vocabulary(tensors: dict[str, Tensor], tokenizer: Tokenizer, model_vocab: int, path: Path
                        ) -> dict[str, Tensor]:
    """nanoGPT's rows in our tokenizer's order. A character model numbers its characters from 0; ours puts <unk>
    first, so its row is added, zero (it is never generated). A GPT-2 vocabulary padded to 50304 (nanoGPT's
    faster size) drops the padding rows, which no text encodes to."""
    if isinstance(tokenizer, CharTokenizer):
        if model_vocab != tokenizer.vocab_size - 1:
            raise InteropError(f"the corpus has {tokenizer.vocab_size - 1} distinct characters but the model in {path} "
                               f"has {model_vocab} tokens; give the corpus it was trained on (nanoGPT's input.txt).")
        grow = lambda t: torch.cat((t.new_zeros(1, t.shape[1]), t))  # noqa: E731
        return {name: grow(t) if name in EMBEDDING_NAMES else t for name, t in tensors.items()}
    if model_vocab < tokenizer.vocab_size:
        raise InteropError(f"the tokenizer has {tokenizer.vocab_size:,} tokens but the model in {path} only "
                           f"{model_vocab:,}; give the tokenizer it was trained with.")
    keep = tokenizer.vocab_size
    return {name: t[:keep] if name in EMBEDDING_NAMES else t for name, t in tensors.items()}


def import_nanogpt(path: str | Path, runs_dir: str | Path, name: str | None = None, corpus: str | Path | None = None,
                   tokenizer: str | Path | None = None, n_head: int | None = None) -> Path:
    """Import the nanoGPT checkpoint `path` as a new run in `runs_dir`: a character model with `corpus` (the text
    its vocabulary was built from), a GPT-2-vocabulary one with `tokenizer` (GPT-2's tokenizer.json, or a folder
    with it or vocab.json + merges.txt). Returns the run folder."""
    path = Path(path)
    tensors, args = read_checkpoint(path)
    config = nanogpt_config(tensors, args, n_head, path)
    if corpus:
        text, _ = read_corpus([str(corpus)], "--corpus")
        our_tokenizer: Tokenizer = CharTokenizer.train(text)
    elif tokenizer:
        our_tokenizer = read_tokenizer(Path(tokenizer))
    else:
        raise InteropError(f"{path} holds no tokenizer: give the corpus of a character model (--corpus input.txt) "
                           "or GPT-2's tokenizer for a GPT-2-vocabulary model (--tokenizer FOLDER).")
    tensors = renumber_vocabulary(tensors, our_tokenizer, config.vocab_size, path)
    config.vocab_size = our_tokenizer.vocab_size
    model = TransformerLM(config)
    load_gpt2_weights(model, tensors, conv1d=False, source=str(path))
    run_name = name or (path.parent.name if path.stem == "ckpt" else path.stem)
    return save_imported_run(model, our_tokenizer, run_name, runs_dir, f"nanoGPT {path}",
                             corpus=[str(Path(corpus).resolve())] if corpus else None)
