"""An int8 copy of a run (lmcore quantize) against the run itself: size on disk, generation speed, validation
perplexity.

    python bench/quantize.py [--steps 300] [--tokens 200]

Trains the baby-gpt-char preset for --steps steps on the CPU (int8 kernels run there), writes its int8 copy, and
measures both in the same run: the model's weights on disk (the original's as a weights-only safetensors file, the
copy's checkpoint), tokens/s generating --tokens tokens after the first (lmcore.generation.generate), and the
perplexity over the whole validation split.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import (parse_with_torch_options, preset_config, train_to_end,  # noqa: E402
                                   use_bench_cache)
from lmcore.checkpoint import checkpoint_path, load_trained_model  # noqa: E402
from lmcore.evaluation import evaluate_ids  # noqa: E402
from lmcore.generation import PRESETS, generate  # noqa: E402
from lmcore.quantize import quantize_run  # noqa: E402


@dataclass
class Figures:
    bytes_on_disk: int
    tokens_per_s: float
    val_perplexity: float


def generation_rate(model, tokenizer, tokens: int) -> float:
    settings = dataclasses.replace(PRESETS["balanced"], max_new_tokens=tokens, seed=0)
    list(generate(model, tokenizer, "ROMEO:", dataclasses.replace(settings, max_new_tokens=20)))  # warm-up
    first = None
    for _ in generate(model, tokenizer, "ROMEO:", settings):
        first = first or time.perf_counter()
    assert first is not None
    return (tokens - 1) / (time.perf_counter() - first)


def compare(steps: int, tokens: int, runs_dir: Path) -> tuple[Figures, Figures]:
    """(original, int8 copy)."""
    trainer = train_to_end(preset_config("baby-gpt-char", "cpu"), steps, runs_dir)
    copy = quantize_run(trainer.folder.path)
    figures = []
    for run in (trainer.folder.path, copy):
        model, tokenizer, _ = load_trained_model(run)
        if run == copy:
            size = checkpoint_path(copy, "best").stat().st_size
        else:  # the weights alone: the run's own checkpoint also holds the optimizer's state
            weights = Path(runs_dir) / "weights.safetensors"
            save_model(model, str(weights))  # tied weights once, as in a checkpoint
            size = weights.stat().st_size
        loss = evaluate_ids(model, trainer.val_ids, trainer.config.train.context, torch.device("cpu")).loss
        figures.append(Figures(size, generation_rate(model, tokenizer, tokens), math.exp(loss)))
    return figures[0], figures[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=200)
    args = parse_with_torch_options(parser, argv)
    use_bench_cache()
    with tempfile.TemporaryDirectory() as runs_dir:
        original, int8 = compare(args.steps, args.tokens, Path(runs_dir))
    print(f"baby-gpt-char, {args.steps} steps      {'weights on disk':>16} {'tokens/s':>9} {'val ppl':>8}")
    for name, f in (("float32", original), ("int8 (lmcore quantize)", int8)):
        print(f"{name:28} {f.bytes_on_disk / 1e6:>13.2f} MB {f.tokens_per_s:>9,.0f} {f.val_perplexity:>8.3f}")


if __name__ == "__main__":
    main()
