"""The benchmark suite: one table, each figure beside a reference measured in the same run.

    python -m bench [--quick] [--device auto] [--threads N] [--only training generation gui adaptive]

- training: tokens/s and MFU of the lmcore Trainer per preset, against a plain eager PyTorch loop of the same
  model (bench/train_throughput.py);
- generation: decoding tokens/s with the KV cache, against recomputing the whole window for every token
  (bench/generation.py);
- gui: training tokens/s started from the app's window (offscreen), against headless, and the seconds from Start
  to the first step (bench/gui_overhead.py);
- adaptive: adaptive softmax against a full softmax on a large word vocabulary (bench/adaptive_softmax.py);
- freezes: the window's longest freeze while it overlays 10 runs, a 100,000-step run, and captures attention,
  against 100 ms (bench/freezes.py);
- families: validation bits per character of an MLP, a CNN and an LSTM against a GPT of about the same size, each
  trained for the same time (bench/families.py; its runs are kept in runs/families);
- quantize: an int8 copy (lmcore quantize) against its float32 run: weights on disk, generation tokens/s and
  validation perplexity (bench/quantize.py).

A sub-benchmark whose module (or a function used from it) is missing shows as "not available".
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench import adaptive_softmax, train_throughput
from lmcore.device import describe_device, pick_device
from lmcore.models import build_model


@dataclass
class Row:
    benchmark: str
    case: str
    ours: str
    reference: str
    ratio: float | None  # ours / reference, where higher is better for both


@dataclass
class Settings:
    quick: bool
    device_choice: str
    device: torch.device
    peak: train_throughput.Peak  # MFU's denominator
    runs_dir: Path


def training_rows(s: Settings) -> list[Row]:
    steps = 30 if s.quick else 60
    rows = []
    for name in train_throughput.default_presets(s.device):
        r = train_throughput.measure(name, steps, s.device_choice, s.runs_dir)
        ours, reference = (f"{rate:,.0f} (MFU {s.peak.mfu(rate, r.flops_per_token):.1%})"
                           for rate in (r.tokens_per_s, r.reference_tokens_per_s))
        rows.append(Row("training tokens/s", f"{name}, {steps} steps", ours, "eager loop " + reference,
                        r.tokens_per_s / r.reference_tokens_per_s))
    return rows


def generation_rows(s: Settings) -> list[Row]:
    from bench.generation import CACHE_MODEL, step_time

    torch.manual_seed(0)
    model = build_model(CACHE_MODEL).to(s.device).eval()
    ids = torch.randint(0, CACHE_MODEL.vocab_size, (CACHE_MODEL.context_length,)).tolist()
    for cache in (True, False):  # warm-up
        step_time(model, ids, 64, cache, s.device)
    rows = []
    for context in (256,) if s.quick else (256, 512):
        cached, recomputed = (1 / step_time(model, ids, context, cache, s.device) for cache in (True, False))
        rows.append(Row("generation tokens/s", f"{model.num_parameters() / 1e6:.1f}M GPT, context {context}",
                        f"{cached:,.0f} (KV cache)", f"full recompute {recomputed:,.0f}", cached / recomputed))
    return rows


def gui_rows(s: Settings) -> list[Row]:
    """bench/gui_overhead.py as a command, one pair: it starts both trainings and takes turns between them."""
    steps = 150 if s.quick else 600
    script = Path(__file__).with_name("gui_overhead.py")
    out = subprocess.run([sys.executable, str(script), "--steps", str(steps), "--repeats", "1", "--json"],
                         check=True, capture_output=True, text=True).stdout
    result, probed = (json.loads(line) for line in out.splitlines()[-2:])  # the pair, then one with the timer
    return [Row("GUI: training tokens/s", f"baby-gpt-char, {steps} steps, from the window",
                f"{result['window']:,.0f} (10 ms timer p99 {np.percentile(probed['late_ms'], 99):.0f} ms late, "
                f"first step {result['first_step_s']:.1f} s after Start)",
                f"lmcore train {result['headless']:,.0f}", result["window"] / result["headless"])]


def adaptive_rows(s: Settings) -> list[Row]:
    steps, eval_batches = (60, 20) if s.quick else (400, 0)
    full, adaptive = adaptive_softmax.compare(steps, adaptive_softmax.DEFAULT_CUTOFFS, s.device_choice, s.runs_dir,
                                              eval_batches)
    def figures(o: adaptive_softmax.Outcome) -> str:
        return f"{o.tokens_per_s:,.0f} (val ppl {o.val_perplexity:,.0f})"

    return [Row("adaptive softmax tokens/s", f"lstm-word, {full.vocab_size:,} words, cutoffs "
                f"{adaptive_softmax.DEFAULT_CUTOFFS}, {steps} steps", figures(adaptive), "full softmax " + figures(full),
                adaptive.tokens_per_s / full.tokens_per_s)]


def freeze_rows(s: Settings) -> list[Row]:
    """bench/freezes.py as a command: one row, each action's worst freeze against the target."""
    script = Path(__file__).with_name("freezes.py")
    out = subprocess.run([sys.executable, str(script), "--json", "--repeats", "1" if s.quick else "3"],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.splitlines()[-1])
    worst = {action: ms for action, ms in result["worst_ms"].items() if not action.startswith("(0)")}
    return [Row("GUI: longest freeze", "; ".join(worst), " / ".join(f"{ms:.0f} ms" for ms in worst.values()),
                f"target < {result['target_ms']} ms", result["target_ms"] / max(worst.values()))]


def families_rows(s: Settings) -> list[Row]:
    from bench import families

    seconds = 30 if s.quick else 120
    outcomes = {o.name: o for o in families.compare(seconds, Path("runs/families"), s.device_choice)}
    gpt = outcomes.pop("GPT")

    def figures(o: families.Outcome) -> str:
        return f"{o.val_bits_per_char:.3f} ({o.parameters / 1e6:.2f} M, {o.steps:,} steps, {o.tokens_per_s:,.0f} tok/s)"

    return [Row("families: val bits/char", f"{name}, {seconds} s of training", figures(o), "GPT " + figures(gpt),
                gpt.val_bits_per_char / o.val_bits_per_char) for name, o in outcomes.items()]


def quantize_rows(s: Settings) -> list[Row]:
    from bench import quantize

    steps = 100 if s.quick else 300
    original, int8 = quantize.compare(steps, 200, s.runs_dir)

    def figures(f: quantize.Figures) -> str:
        return f"{f.bytes_on_disk / 1e6:.2f} MB, {f.tokens_per_s:,.0f} tok/s, val ppl {f.val_perplexity:.3f}"

    return [Row("int8 copy: generation tokens/s", f"baby-gpt-char, {steps} steps, on the CPU", figures(int8),
                "float32 " + figures(original), int8.tokens_per_s / original.tokens_per_s)]


def imported_rows(s: Settings) -> list[Row]:
    from bench import interop

    tokens = 30 if s.quick else 100
    speeds = interop.compare(tokens, s.device)
    return [Row("imported GPT-2: generation tokens/s", f"GPT-2-small shape ({speeds.parameters / 1e6:.0f}M, random "
                f"weights), {tokens} greedy tokens", f"{speeds.ours:,.1f} (KV cache)",
                f"transformers generate {speeds.transformers:,.1f}", speeds.ours / speeds.transformers)]


SUITE = {"training": training_rows, "generation": generation_rows, "gui": gui_rows, "adaptive": adaptive_rows,
         "freezes": freeze_rows, "families": families_rows, "quantize": quantize_rows, "imported": imported_rows}


def print_table(rows: list[Row]) -> None:
    cells = [["benchmark", "case", "lmcore", "reference (same run)", "ratio"]]
    cells += [[r.benchmark, r.case, r.ours, r.reference, f"{r.ratio:.2f}x" if r.ratio else ""] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(5)]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and cases: a few minutes on 2 CPU cores")
    parser.add_argument("--only", nargs="+", choices=list(SUITE), help="run only these sub-benchmarks")
    args = train_throughput.parse_with_torch_options(parser, argv)
    train_throughput.use_bench_cache()
    device = pick_device(args.device)
    peak = train_throughput.device_peak(device)
    print(f"{describe_device(device)}, torch {torch.__version__}{', quick' if args.quick else ''}; "
          f"MFU against {peak.flops / 1e12:.3g} TFLOP/s ({peak.source})\n")
    begin = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as runs_dir:
        settings = Settings(args.quick, args.device, device, peak, Path(runs_dir))
        for name in args.only or SUITE:
            try:
                rows += SUITE[name](settings)
            except ImportError as exc:  # a sub-benchmark (or what is used from it) not written yet
                rows.append(Row(name, "-", "not available", f"({exc})", None))
    print_table(rows)
    print(f"\n{time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
