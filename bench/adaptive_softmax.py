"""Adaptive softmax against a full softmax, on a word-level LSTM with a large vocabulary.

    python bench/adaptive_softmax.py [--steps 400] [--cutoffs 2000 10000] [--device auto]

Both runs train the lstm-word preset (2-layer LSTM, 200/200, SGD lr 20 cut on plateau, BPTT 35, batch 20) on
the bundled corpus with its whole word vocabulary (about 24,000 words: no lowercasing, no cap), from the same
seed for the same number of steps. The one difference is the output layer: a full softmax over every word, or
an adaptive softmax with the given cutoffs. Embeddings are untied in both, since the adaptive softmax has no
single output matrix to tie. The table gives training tokens/s (after warm-up) and the validation perplexity
reached, over the whole validation split.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import (parse_with_torch_options, preset_config, trainer_throughput,  # noqa: E402
                                    use_bench_cache)
from lmcore.device import describe_device, pick_device  # noqa: E402

DEFAULT_CUTOFFS = [2000, 10000]


@dataclass
class Outcome:
    label: str
    vocab_size: int
    tokens_per_s: float
    val_perplexity: float
    seconds: float  # training time, evaluation excluded


def train(cutoffs: list[int], steps: int, device: str, runs_dir: Path, eval_batches: int = 0) -> Outcome:
    config = preset_config("lstm-word", device)
    config.model.tie_embeddings, config.model.adaptive_softmax_cutoffs = False, cutoffs
    config.train.eval_batches = eval_batches
    trainer, rate = trainer_throughput(config, steps, runs_dir)  # evaluated once, at the end
    label = f"adaptive {cutoffs}" if cutoffs else "full softmax"
    return Outcome(label, trainer.tokenizer.vocab_size, rate, math.exp(trainer.best_val_loss), trainer.elapsed)


def compare(steps: int, cutoffs: list[int], device: str, runs_dir: Path, eval_batches: int = 0
            ) -> tuple[Outcome, Outcome]:
    """(full softmax, adaptive softmax), trained for the same steps from the same seed and evaluated on the
    validation split (its first `eval_batches` batches if > 0)."""
    return (train([], steps, device, runs_dir, eval_batches),
            train(cutoffs, steps, device, runs_dir, eval_batches))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--cutoffs", type=int, nargs="+", default=DEFAULT_CUTOFFS)
    args = parse_with_torch_options(parser, argv)
    use_bench_cache()
    print(f"{describe_device(pick_device(args.device))}, torch {torch.__version__}; lstm-word, {args.steps} steps")
    with tempfile.TemporaryDirectory() as runs_dir:
        full, adaptive = compare(args.steps, args.cutoffs, args.device, Path(runs_dir))
    print(f"vocabulary: {full.vocab_size:,} words")
    print(f"{'output layer':24} {'tokens/s':>10} {'train s':>8} {'val ppl':>9}")
    for outcome in (full, adaptive):
        print(f"{outcome.label:24} {outcome.tokens_per_s:10,.0f} {outcome.seconds:8.1f} {outcome.val_perplexity:9.1f}")
    print(f"adaptive / full: {adaptive.tokens_per_s / full.tokens_per_s:.2f}x tokens/s, "
          f"{adaptive.val_perplexity / full.val_perplexity:.3f}x perplexity")


if __name__ == "__main__":
    main()
