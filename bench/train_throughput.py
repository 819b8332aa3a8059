"""Training throughput of the lmcore Trainer against a plain eager PyTorch loop of the same model.

    python bench/train_throughput.py [--steps 60] [--presets baby-gpt-char lstm-word]

For each preset both loops train the same model on the same corpus for the same number of steps; the table
shows tokens/s and MFU (model FLOPs utilisation against this machine's fp32 matmul peak, measured in the same
run). The reference loop is what one writes by hand: random windows (Transformer) or carried BPTT streams
(RNN), forward, backward, clip, optimizer step, with loss.item() every step.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lmcore import events as ev  # noqa: E402
from lmcore.config import load_config  # noqa: E402
from lmcore.device import pick_device  # noqa: E402
from lmcore.models import build_model, model_config_from_dict  # noqa: E402
from lmcore.trainer import Trainer  # noqa: E402

WARMUP_STEPS = 5


def matmul_peak_flops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Achievable fp32 matmul FLOP/s on this device: the denominator of MFU."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def trainer_throughput(config, steps: int, runs_dir: Path) -> tuple[float, float]:
    """Tokens/s of the lmcore Trainer after warm-up (evaluation excluded), and the model's FLOPs per token."""
    config.train.max_steps = steps
    config.train.epochs = 0
    config.train.eval_interval = steps  # one evaluation at the end, outside the timed steps
    trainer = Trainer.new(config, runs_dir=runs_dir)
    marks: dict[int, float] = {}
    trainer.subscribe(lambda e: marks.__setitem__(e.step, e.elapsed) if isinstance(e, ev.StepMetrics) else None)
    if trainer.run() != "finished":
        raise SystemExit(f"the trainer failed: {trainer.folder.read_status().get('message')}")
    timed = marks[steps] - marks[WARMUP_STEPS]
    return (steps - WARMUP_STEPS) * trainer.tokens_per_step / timed, trainer.model.flops_per_token()


def reference_throughput(config, train_ids: np.ndarray, vocab_size: int, steps: int, device) -> float:
    """The same model trained by a straightforward hand-written eager loop."""
    torch.manual_seed(config.train.seed)
    model = build_model(model_config_from_dict(config.model_fields(vocab_size))).to(device)
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
            _sync(device)
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
    _sync(device)
    return (steps - WARMUP_STEPS) * t.batch_size * t.context / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--presets", nargs="+", default=["baby-gpt-char", "lstm-word"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    os.environ.setdefault("LMCORE_CACHE_DIR", str(Path(tempfile.gettempdir()) / "lmcore-bench-cache"))
    peak = matmul_peak_flops(device)
    print(f"device {device}, {torch.get_num_threads()} threads; fp32 matmul peak {peak / 1e9:.1f} GFLOP/s "
          f"(2048x2048, measured now)")
    print(f"{'preset':16} {'loop':10} {'tokens/s':>10} {'MFU':>7} {'vs reference':>13}")
    with tempfile.TemporaryDirectory() as runs_dir:
        for name in args.presets:
            config = load_config(ROOT / "resources" / "presets" / f"{name}.toml")
            config.train.device = args.device
            ours, flops = trainer_throughput(config, args.steps, Path(runs_dir))
            run = sorted(Path(runs_dir).glob(f"{config.name}-*"))[-1]
            train_ids = _training_ids(run)
            vocab = _vocab_size(run)
            reference = reference_throughput(config, train_ids, vocab, args.steps, device)
            for label, rate in (("reference", reference), ("lmcore", ours)):
                ratio = f"{rate / reference:12.2f}x" if label == "lmcore" else ""
                print(f"{name:16} {label:10} {rate:10,.0f} {rate * flops / peak:7.1%} {ratio:>13}")


def _training_ids(run: Path) -> np.ndarray:
    from lmcore.corpus import encode_cached, load_corpus
    from lmcore.runs import RunFolder
    from lmcore.tokenizers import load_tokenizer

    config = RunFolder(run).load_config()
    corpus = load_corpus(config.data.train, config.data.val, config.data.val_fraction)
    return encode_cached(load_tokenizer(run / "tokenizer"), corpus.train, corpus.digest[:24] + "-train")


def _vocab_size(run: Path) -> int:
    from lmcore.tokenizers import load_tokenizer

    return load_tokenizer(run / "tokenizer").vocab_size


if __name__ == "__main__":
    main()
