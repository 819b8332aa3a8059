"""Tiny, randomly initialised GPT-2 models in Hugging Face's format, built offline with `transformers` and
`tokenizers` (test dependencies), for the import and export tests."""
from __future__ import annotations

from pathlib import Path

import torch

TEXT = ("To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer the slings and "
        "arrows of outrageous fortune, or to take arms against a sea of troubles.\n")
END_OF_TEXT = "<|endoftext|>"


def gpt2_tokenizer(vocab_size: int = 300):
    """A GPT-2-style byte-level BPE (tokenizers.Tokenizer) trained on TEXT, <|endoftext|> its special token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([TEXT] * 4, trainer)
    return tokenizer


def gpt2_folder(folder: Path, activation: str = "gelu_new", files: str = "tokenizer.json", seed: int = 0,
                **config) -> Path:
    """A GPT2LMHeadModel (2 layers, 2 heads, 32 wide, context 64) saved with safetensors in `folder`, with its
    tokenizer as tokenizer.json or (files="vocab+merges") GPT-2's vocab.json and merges.txt."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = gpt2_tokenizer()
    if files == "tokenizer.json":
        tokenizer.save(str(folder / "tokenizer.json"))
    else:
        tokenizer.model.save(str(folder))  # vocab.json and merges.txt
    eos = tokenizer.token_to_id(END_OF_TEXT)
    torch.manual_seed(seed)
    hf_config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=tokenizer.get_vocab_size(),
                           activation_function=activation, bos_token_id=eos, eos_token_id=eos, **config)
    model = GPT2LMHeadModel(hf_config)
    with torch.no_grad():  # biases and layer-norm gains start at 0 and 1: make every tensor count
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def load_hf_model(folder: Path):
    """The model in `folder` as `transformers` loads it, whichever architecture its config.json names."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).eval()
