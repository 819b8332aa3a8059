"""Training throughput of the lmcore Trainer against a plain eager PyTorch loop of the same model.

    python bench/train_throughput.py [--steps 60] [--presets baby-gpt-char lstm-word] [--device auto]

For each preset both loops train the same model on the same corpus for the same number of steps; the table
shows tokens/s and MFU (model FLOPs utilisation). On a GPU in lmcore.device's table MFU is against its bf16
peak from the data sheet; elsewhere against the fp32 matmul rate measured in the same run. The reference loop
is what one writes by hand: fp32, random windows (Transformer) or carried BPTT streams (RNN) copied to the
device as they are, forward, backward, clip, AdamW (or SGD) step, and loss.item() every step.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lmcore import events as ev  # noqa: E402
from lmcore.config import RunConfig, load_config  # noqa: E402
from lmcore.device import describe_device, matmul_peak_flops, peak_flops, pick_device, synchronize  # noqa: E402
from lmcore.models import build_model  # noqa: E402
from lmcore.trainer import Trainer  # noqa: E402

WARMUP_STEPS = 5  # left out of the timing: allocator warm-up, and torch.compile's first steps
CPU_PRESETS = ["baby-gpt-char", "gpt-bpe", "lstm-word"]
GPU_PRESETS = CPU_PRESETS + ["gpt-shakespeare-gpu"]


@dataclass
class Throughput:
    preset: str
    tokens_per_s: float  # the lmcore Trainer
    reference_tokens_per_s: float  # the hand-written eager loop
    flops_per_token: float


@dataclass
class Peak:
    flops: float
    source: str  # where the figure comes from, for the table's heading

    def mfu(self, tokens_per_s: float, flops_per_token: float) -> float:
        return tokens_per_s * flops_per_token / self.flops


def device_peak(device: torch.device) -> Peak:
    """MFU's denominator: the GPU's bf16 peak from its data sheet; on a CPU (or an unknown GPU) the fp32 matmul
    rate measured now, which flatters MFU but is the best ceiling such a machine has."""
    known = peak_flops(device)
    if known:
        return Peak(known, "bf16 data-sheet peak")
    return Peak(matmul_peak_flops(device), "fp32 2048x2048 matmul, measured now")


def preset_config(name: str, device: str) -> RunConfig:
    config = load_config(ROOT / "resources" / "presets" / f"{name}.toml")
    config.train.device = device
    return config


def train_to_end(config: RunConfig, steps: int, runs_dir: Path) -> Trainer:
    """The Trainer after `steps` steps of `config`, with one evaluation, at the end; SystemExit if the run fails."""
    config.train.max_steps, config.train.eval_interval = steps, steps
    trainer = Trainer.new(config, runs_dir=runs_dir)
    if trainer.run() != "finished":
        raise SystemExit(f"the trainer failed: {trainer.folder.read_status().get('message')}")
    return trainer


def trainer_throughput(config: RunConfig, steps: int, runs_dir: Path) -> tuple[Trainer, float]:
    """The Trainer after `steps` steps, and its tokens/s after warm-up (evaluation excluded). Metrics arrive at
    each read-back (every train.log_interval steps on a GPU), so the timing runs between the first read-back
    after warm-up and the last."""
    config.train.max_steps = steps
    config.train.epochs = 0
    config.train.eval_interval = steps  # one evaluation at the end, outside the timed steps
    trainer = Trainer.new(config, runs_dir=runs_dir)
    marks: list[ev.StepMetrics] = []
    trainer.subscribe(lambda e: marks.append(e) if isinstance(e, ev.StepMetrics) and e.step >= WARMUP_STEPS
                      else None)
    if trainer.run() != "finished":
        raise SystemExit(f"the trainer failed: {trainer.folder.read_status().get('message')}")
    first, last = marks[0], marks[-1]
    return trainer, (last.tokens - first.tokens) / (last.elapsed - first.elapsed)


def reference_throughput(config: RunConfig, train_ids: np.ndarray, vocab_size: int, steps: int,
                         device: torch.device) -> float:
    """The same model trained by a straightforward hand-written eager loop."""
    torch.manual_seed(config.train.seed)
    model = build_model(config.model_for(vocab_size)).to(device)
    o, t = config.optim, config.train
    if o.name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    data = torch.from_numpy(np.asarray(train_ids, dtype=np.int64))
    rnn = model.family == "rnn"
    if rnn:
        n = len(data) // t.batch_size
        streams = data[: n * t.batch_size].view(t.batch_size, n).to(device)
        hidden = model.init_state(t.batch_size, device)
    position = 0
    start = None
    for step in range(steps):
        if step == WARMUP_STEPS:
            synchronize(device)
            start = time.perf_counter()
        if rnn:
            if position + t.context + 1 > streams.shape[1]:
                position, hidden = 0, model.init_state(t.batch_size, device)
            x, y = streams[:, position:position + t.context], streams[:, position + 1:position + 1 + t.context]
            position += t.context
            hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
            out = model(x, targets=y, state=hidden)
            hidden = out.state
        else:
            ix = torch.randint(len(data) - t.context - 1, (t.batch_size,))
            x = torch.stack([data[i:i + t.context] for i in ix]).to(device)
            y = torch.stack([data[i + 1:i + 1 + t.context] for i in ix]).to(device)
            out = model(x, targets=y)
        optimizer.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        optimizer.step()
        out.loss.item()
    synchronize(device)
    return (steps - WARMUP_STEPS) * t.batch_size * t.context / (time.perf_counter() - start)


def measure(name: str, steps: int, device: str, runs_dir: Path) -> Throughput:
    """One preset trained by the lmcore Trainer and by the reference loop, `steps` steps each."""
    trainer, ours = trainer_throughput(preset_config(name, device), steps, runs_dir)
    config = preset_config(name, device)
    reference = reference_throughput(config, trainer.train_ids, trainer.tokenizer.vocab_size, steps, trainer.device)
    return Throughput(name, ours, reference, trainer.model.flops_per_token())


def default_presets(device: torch.device) -> list[str]:
    return GPU_PRESETS if device.type == "cuda" else CPU_PRESETS


def parse_with_torch_options(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, with the --device and --threads options every benchmark takes; sets torch's thread count."""
    parser.add_argument("--device", default="auto", help="cuda, mps or cpu (auto: the first of those there is)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def use_bench_cache() -> None:
    """Tokenizers and encoded corpora cached outside the user's own cache."""
    os.environ.setdefault("LMCORE_CACHE_DIR", str(Path(tempfile.gettempdir()) / "lmcore-bench-cache"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--presets", nargs="+", help="preset names (default: the CPU presets; on CUDA also "
                                                      "gpt-shakespeare-gpu)")
    args = parse_with_torch_options(parser, argv)
    use_bench_cache()
    device = pick_device(args.device)
    peak = device_peak(device)
    print(f"{describe_device(device)}, torch {torch.__version__}; MFU against {peak.flops / 1e12:.3g} TFLOP/s "
          f"({peak.source})")
    print(f"{'preset':20} {'loop':10} {'tokens/s':>10} {'MFU':>7} {'vs reference':>13}")
    with tempfile.TemporaryDirectory() as runs_dir:
        for name in args.presets or default_presets(device):
            result = measure(name, args.steps, args.device, Path(runs_dir))
            for label, rate in (("reference", result.reference_tokens_per_s), ("lmcore", result.tokens_per_s)):
                ratio = f"{rate / result.reference_tokens_per_s:12.2f}x" if label == "lmcore" else ""
                print(f"{name:20} {label:10} {rate:10,.0f} {peak.mfu(rate, result.flops_per_token):7.1%} {ratio:>13}")


if __name__ == "__main__":
    main()
