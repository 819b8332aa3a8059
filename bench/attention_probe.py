"""Does the Attention tab's live probe slow training down?

Trains the baby-gpt-char preset for a few steps with and without an AttentionProbe, alternating the two so that
a busy machine hurts both alike, and prints the mean and median time of the training steps *between* refreshes
(the steps the probe must leave alone) for both, and what one refresh costs.

    python bench/attention_probe.py [--steps 120] [--every 20] [--repeats 2] [--device auto] [--threads N]

A step's time is the gap between its StepMetrics event and the previous one (log_interval = 1, so every step
is read back as it ends). The probe runs after step k when k % every == 0, so its time lands in step k+1's gap:
those steps are left out of both runs' figures, as are the first WARMUP steps.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import parse_with_torch_options  # noqa: E402
from lmcore import events as ev  # noqa: E402
from lmcore.attention import AttentionProbe  # noqa: E402
from lmcore.config import load_config  # noqa: E402
from lmcore.trainer import Trainer  # noqa: E402

PRESET = ROOT / "resources" / "presets" / "baby-gpt-char.toml"
PROBE_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak."
WARMUP = 5


def train(steps: int, every: int | None, device: str, runs_dir: Path) -> tuple[dict[int, float], list[float]]:
    """Step end times (perf_counter, by step) and the duration of each probe refresh."""
    config = load_config(PRESET)
    config.train.max_steps = steps
    config.train.eval_interval = steps  # a single evaluation, after the last timed step
    config.train.eval_batches = 2
    config.train.log_interval = 1
    config.train.device = device
    trainer = Trainer.new(config, runs_dir)
    ends: dict[int, float] = {}
    trainer.subscribe(lambda e: ends.setdefault(e.step, time.perf_counter()) if isinstance(e, ev.StepMetrics) else None)
    refreshes: list[float] = []
    if every:
        probe = AttentionProbe(PROBE_TEXT, every)

        def timed_probe(t):
            start = time.perf_counter()
            snapshot = probe(t)
            refreshes.append(time.perf_counter() - start)
            return snapshot

        trainer.add_periodic(every, timed_probe)
    if trainer.run() != "finished":
        raise SystemExit(f"training failed; see {trainer.folder.path}")
    return ends, refreshes


def step_times(ends: dict[int, float], every: int, steps: int) -> list[float]:
    """Durations of the steps between refreshes: not the warm-up, not a step that follows a refresh."""
    return [ends[k] - ends[k - 1] for k in range(WARMUP + 1, steps + 1) if (k - 1) % every]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs, alternating without/with probe")
    args = parse_with_torch_options(parser)

    plain: list[float] = []
    probed: list[float] = []
    refreshes: list[float] = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for _ in range(args.repeats):
            ends, _ = train(args.steps, None, args.device, Path(runs_dir))
            plain += step_times(ends, args.every, args.steps)
            ends, costs = train(args.steps, args.every, args.device, Path(runs_dir))
            probed += step_times(ends, args.every, args.steps)
            refreshes += costs

    print(f"baby-gpt-char, {args.steps} steps x {args.repeats} runs each, probe every {args.every} steps, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'':32}{'mean ms':>10}{'median ms':>11}{'steps':>7}")
    for name, times in (("without probe", plain), ("with probe (between refreshes)", probed)):
        print(f"{name:32}{1e3 * statistics.mean(times):>10.1f}{1e3 * statistics.median(times):>11.1f}{len(times):>7}")
    mean_change = statistics.mean(probed) / statistics.mean(plain) - 1
    median_change = statistics.median(probed) / statistics.median(plain) - 1
    print(f"difference between refreshes: {100 * mean_change:+.1f}% (mean), {100 * median_change:+.1f}% (median)")
    cost = statistics.mean(refreshes)
    share = cost / args.every / statistics.mean(plain)
    print(f"one refresh: {1e3 * cost:.1f} ms mean over {len(refreshes)} "
          f"(= {100 * share:.1f}% of training time when spread over {args.every} steps)")


if __name__ == "__main__":
    main()
