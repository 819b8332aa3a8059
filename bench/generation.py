"""Generation speed: tokens/s and time to first token for each model preset, and the KV cache against recompute.

    python bench/generation.py [--tokens 200] [--threads N] [--device auto]

Part 1 builds each preset in resources/presets (untrained weights: speed does not depend on them) with its
tokenizer trained on the preset's corpus, and times lmcore.generation.generate, the function behind both the
GUI and `lmcore sample`, under each sampling preset. The prompt is the corpus's first half window of tokens
(64 tokens for an RNN). Time to first token covers encoding the prompt, its forward pass and the first sample;
tokens/s counts the tokens after the first.

Part 2 compares one decoding step with the KV cache against recomputing the whole window (Decoder(cache=False))
when the context holds 64, 256 and 512 tokens, on a 4-layer, 4-head, 256-wide Transformer of context 512.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import parse_with_torch_options  # noqa: E402
from lmcore.config import load_config  # noqa: E402
from lmcore.corpus import read_corpus  # noqa: E402
from lmcore.device import describe_device, pick_device  # noqa: E402
from lmcore.generation import PRESETS, Decoder, generate  # noqa: E402
from lmcore.models import TransformerConfig, build_model  # noqa: E402
from lmcore.tokenizers import train_tokenizer  # noqa: E402

CACHE_CONTEXTS = (64, 256, 512)
CACHE_MODEL = TransformerConfig(vocab_size=65, n_layer=4, n_head=4, n_embd=256, context_length=512)
TIMED_STEPS = 16  # decoding steps timed at each context size (the context grows from N - 16 to N)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def preset_speeds(tokens: int, device: torch.device) -> None:
    print(f"{'model preset':16} {'params':>8} {'prompt':>6} {'sampling':10} {'first token':>12} {'tokens/s':>9}")
    for path in sorted((ROOT / "resources" / "presets").glob("*.toml")):
        config = load_config(path)
        text, _ = read_corpus(config.data.train, "data.train")
        tokenizer = train_tokenizer(config.tokenizer, text)
        model = build_model(config.model_for(tokenizer.vocab_size)).to(device).eval()
        context = getattr(model.config, "context_length", 128)
        prompt = tokenizer.encode(text[:20_000], unknown="replace")[:context // 2]
        list(generate(model, tokenizer, prompt, dataclasses.replace(PRESETS["balanced"], max_new_tokens=20,
                                                                    seed=0), device))  # warm-up
        for name, preset in PRESETS.items():
            settings = dataclasses.replace(preset, max_new_tokens=tokens, seed=0)
            begin = time.perf_counter()
            first = None
            for _ in generate(model, tokenizer, prompt, settings, device):
                if first is None:
                    sync(device)
                    first = time.perf_counter()
            sync(device)
            rate = (tokens - 1) / (time.perf_counter() - first)
            print(f"{path.stem:20} {model.num_parameters() / 1e6:>7.2f}M {len(prompt):>6} {name:10} "
                  f"{1000 * (first - begin):>9.1f} ms {rate:>9,.0f}")


def step_time(model, ids: list[int], context: int, cache: bool, device: torch.device) -> float:
    """Seconds per decoding step while the context grows to `context` tokens."""
    decoder = Decoder(model, device, cache=cache)
    decoder.feed(ids[:context - TIMED_STEPS])
    sync(device)
    begin = time.perf_counter()
    for token in ids[context - TIMED_STEPS:context]:
        decoder.feed([token])
    sync(device)
    return (time.perf_counter() - begin) / TIMED_STEPS


def cache_against_recompute(device: torch.device) -> None:
    torch.manual_seed(0)
    model = build_model(CACHE_MODEL).to(device).eval()
    ids = torch.randint(0, CACHE_MODEL.vocab_size, (max(CACHE_CONTEXTS),)).tolist()
    for cache in (True, False):  # warm-up
        step_time(model, ids, 64, cache, device)
    print(f"\nKV cache vs full recompute, {model.num_parameters() / 1e6:.2f}M-parameter Transformer "
          f"({CACHE_MODEL.n_layer} layers, {CACHE_MODEL.n_head} heads, {CACHE_MODEL.n_embd} wide, "
          f"context {CACHE_MODEL.context_length})")
    print(f"{'context':>7} {'cache ms/token':>15} {'recompute ms/token':>19} {'speed-up':>9}")
    for context in CACHE_CONTEXTS:
        cached = step_time(model, ids, context, True, device)
        recomputed = step_time(model, ids, context, False, device)
        print(f"{context:>7} {1000 * cached:>15.2f} {1000 * recomputed:>19.2f} {recomputed / cached:>8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens generated per measurement")
    args = parse_with_torch_options(parser)
    device = pick_device(args.device)
    print(f"device: {describe_device(device)}, torch {torch.__version__}\n")
    preset_speeds(args.tokens, device)
    cache_against_recompute(device)


if __name__ == "__main__":
    main()
