"""The model families side by side: an MLP (n-gram), a gated CNN, an LSTM and a GPT of about the same size, each
trained on the sample corpus (characters) for the same training time, then scored on its whole validation split.

    python bench/families.py [--seconds 120] [--runs-dir runs/families] [--device auto] [--threads N]
    python -m bench --only families [--quick]   # the same as rows of the suite's table (30 s each with --quick)

Every run has the same batch (16 windows of 64 characters), optimizer (AdamW, 2e-3 after 50 warm-up steps,
constant: no run's schedule depends on a length it cannot know) and seed, and stops once its training time
(evaluations not counted) reaches --seconds. The runs are ordinary run folders: `lm-workbench --runs-dir
runs/families` shows them; tick all four to overlay their curves (X axis: training time).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import parse_with_torch_options, use_bench_cache  # noqa: E402
from lmcore import events as ev  # noqa: E402
from lmcore.config import RunConfig, config_from_dict  # noqa: E402
from lmcore.device import describe_device, pick_device  # noqa: E402
from lmcore.trainer import Trainer  # noqa: E402

SAMPLE_CORPUS = ROOT / "resources" / "corpora" / "tinyshakespeare.txt"
# About 0.34 M parameters each with the sample corpus's 65 characters (+ <unk>).
MODELS = {
    "MLP": {"family": "mlp", "n_gram": 16, "n_embd": 32, "n_hidden": 600},
    "CNN": {"family": "conv", "n_layer": 6, "n_embd": 96, "kernel_size": 3, "dilation_cycle": 5},
    "LSTM": {"family": "rnn", "cell": "lstm", "n_layer": 1, "n_embd": 200, "n_hidden": 200, "dropout": 0.0},
    "GPT": {"family": "transformer", "n_layer": 3, "n_head": 4, "n_embd": 96, "positional": "rotary"},
}
EVAL_INTERVAL = 100  # steps between the curves' validation points
EVAL_BATCHES = 4  # per point (a part of the split); the final score reads the whole split


@dataclass
class Outcome:
    name: str
    parameters: int
    steps: int
    seconds: float  # training time, evaluations excluded
    tokens_per_s: float
    val_bits_per_char: float  # on the whole validation split
    run_dir: Path


def family_config(name: str, runs_dir: Path, device: str) -> RunConfig:
    return config_from_dict({
        "name": f"families-{name.lower()}", "runs_dir": str(runs_dir),
        "data": {"train": [str(SAMPLE_CORPUS)]}, "tokenizer": {"kind": "char"}, "model": MODELS[name],
        "optim": {"name": "adamw", "lr": 2e-3, "weight_decay": 0.1, "grad_clip": 1.0},
        "schedule": {"kind": "constant", "warmup_steps": 50},
        "train": {"batch_size": 16, "context": 64, "max_steps": 10**9, "eval_interval": EVAL_INTERVAL,
                  "eval_batches": EVAL_BATCHES, "device": device, "seed": 1337},
    })


def train_for(name: str, seconds: float, runs_dir: Path, device: str) -> Outcome:
    trainer = Trainer.new(family_config(name, runs_dir, device))

    def stop_in_time(event) -> None:
        if isinstance(event, ev.StepMetrics) and event.elapsed >= seconds:
            trainer.request_stop()

    trainer.subscribe(stop_in_time)
    trainer.run()
    result = trainer.evaluate(max_batches=0)
    chars_per_token = trainer.val_chars / len(trainer.val_ids)
    return Outcome(name, trainer.model.num_parameters(), trainer.step, trainer.elapsed,
                   trainer.tokens_seen / trainer.elapsed, result.bits_per_char(chars_per_token), trainer.folder.path)


def compare(seconds: float, runs_dir: Path, device: str) -> list[Outcome]:
    return [train_for(name, seconds, runs_dir, device) for name in MODELS]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="training time of each model")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/families"), help="where the runs are kept")
    args = parse_with_torch_options(parser, argv)
    use_bench_cache()
    print(f"{describe_device(pick_device(args.device))}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; {args.seconds:g} s of training each")
    outcomes = compare(args.seconds, args.runs_dir, args.device)
    print(f"{'model':6} {'parameters':>10} {'steps':>7} {'tokens/s':>9} {'val bits/char':>14}  run")
    for o in sorted(outcomes, key=lambda o: o.val_bits_per_char):
        print(f"{o.name:6} {o.parameters:10,} {o.steps:7,} {o.tokens_per_s:9,.0f} {o.val_bits_per_char:14.3f}  "
              f"{o.run_dir}")


if __name__ == "__main__":
    main()
