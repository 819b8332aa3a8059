"""Generation speed of an imported GPT-2: our generate (KV cache) against transformers' generate, same weights.

    python bench/interop.py [--tokens 100] [--threads N] [--device auto]

A GPT-2-small-shaped model (12 layers, 12 heads, 768 wide, 50,257 tokens, context 1024) with random weights
(speed does not depend on them) is built once, copied into a transformers GPT2LMHeadModel the way
`lmcore export --to hf` writes it, and both generate greedily from the same 32-token prompt. Tokens/s counts the
tokens after the first (time to first token is the prompt's forward pass, alike in both).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generation import sync  # noqa: E402
from bench.train_throughput import parse_with_torch_options  # noqa: E402
from lmcore.device import describe_device, pick_device  # noqa: E402
from lmcore.generation import Decoder  # noqa: E402
from lmcore.interop.gpt2_layout import gpt2_weights  # noqa: E402
from lmcore.interop.huggingface import gpt2_hf_config  # noqa: E402
from lmcore.models import TransformerConfig, TransformerLM  # noqa: E402

GPT2_SMALL = TransformerConfig(vocab_size=50257, n_layer=12, n_head=12, n_embd=768, context_length=1024, bias=True,
                               activation="gelu_tanh")
PROMPT_TOKENS = 32


@dataclass
class Speeds:
    ours: float  # tokens/s
    transformers: float
    parameters: int


def our_rate(model: TransformerLM, prompt: list[int], tokens: int, device: torch.device) -> float:
    """Greedy decoding through lmcore's Decoder (the KV cache generate() uses), one token at a time."""
    decoder = Decoder(model, device)
    logits = decoder.feed(prompt)
    sync(device)
    begin = time.perf_counter()
    for _ in range(tokens):
        logits = decoder.feed([int(logits[-1].argmax())])
    sync(device)
    return tokens / (time.perf_counter() - begin)


def transformers_rate(model, prompt: list[int], tokens: int, device: torch.device) -> float:
    ids = torch.tensor([prompt], device=device)
    settings = {"do_sample": False, "pad_token_id": 0, "eos_token_id": None}
    with torch.no_grad():
        model.generate(ids, max_new_tokens=1, **settings)  # the prompt's forward pass, and the first token
        sync(device)
        begin = time.perf_counter()
        model.generate(ids, max_new_tokens=tokens + 1, **settings)
        sync(device)
        elapsed = time.perf_counter() - begin
        first = time.perf_counter()
        model.generate(ids, max_new_tokens=1, **settings)
        sync(device)
    return tokens / (elapsed - (time.perf_counter() - first))


def compare(tokens: int, device: torch.device) -> Speeds:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ours = TransformerLM(GPT2_SMALL).to(device).eval()
    theirs = GPT2LMHeadModel(GPT2Config.from_dict(gpt2_hf_config(GPT2_SMALL)))  # as `lmcore export --to hf` writes it
    theirs.load_state_dict(gpt2_weights(ours), strict=False)  # the causal-mask buffers are its own
    theirs = theirs.to(device).eval()
    prompt = torch.randint(0, GPT2_SMALL.vocab_size, (PROMPT_TOKENS,)).tolist()
    our_rate(ours, prompt, 4, device)  # warm-up
    transformers_rate(theirs, prompt, 4, device)
    return Speeds(our_rate(ours, prompt, tokens, device), transformers_rate(theirs, prompt, tokens, device),
                  ours.num_parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=100, help="tokens generated per measurement")
    args = parse_with_torch_options(parser)
    device = pick_device(args.device)
    print(f"device: {describe_device(device)}, torch {torch.__version__}")
    speeds = compare(args.tokens, device)
    print(f"GPT-2-small shape ({speeds.parameters / 1e6:.0f}M parameters), {args.tokens} tokens after a "
          f"{PROMPT_TOKENS}-token prompt: lmcore {speeds.ours:.1f} tokens/s, transformers {speeds.transformers:.1f} "
          f"tokens/s ({speeds.ours / speeds.transformers:.2f}x)")


if __name__ == "__main__":
    main()
