"""Distillation: a small student trained alone against the same student distilled from a larger teacher.

    python bench/distill.py [--teacher-steps 1500] [--steps 600] [--alpha 0.5] [--temperature 2] [--device auto]

The teacher is the baby-gpt-char preset (4 layers, 128 wide) trained on the bundled corpus; the student is a
2-layer, 64-wide GPT with the same tokenizer. Both students train for the same steps from the same seed on the same
batches; the distilled one adds T²·KL(teacher_T || student_T) with weight 1 - alpha (lmcore.distill). Validation
losses are over the whole validation split.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import (parse_with_torch_options, preset_config, train_to_end,  # noqa: E402
                                   use_bench_cache)
from lmcore.config import RunConfig  # noqa: E402

STUDENT = {"n_layer": 2, "n_head": 2, "n_embd": 64}


@dataclass
class Outcome:
    teacher_loss: float
    alone_loss: float
    distilled_loss: float
    seconds: float


def student_config(device: str, steps: int) -> RunConfig:
    config = preset_config("baby-gpt-char", device)
    config.name = "student"
    config.model = dataclasses.replace(config.model, **STUDENT)
    config.schedule.warmup_steps = min(config.schedule.warmup_steps, steps // 10)
    return config


def compare(teacher_steps: int, steps: int, alpha: float, temperature: float, device: str, runs_dir: Path
            ) -> Outcome:
    begin = time.perf_counter()
    teacher = train_to_end(preset_config("baby-gpt-char", device), teacher_steps, runs_dir)
    alone = train_to_end(student_config(device, steps), steps, runs_dir)
    config = student_config(device, steps)
    config.distill = dataclasses.replace(config.distill, teacher=str(teacher.folder.path), alpha=alpha,
                                         temperature=temperature)
    distilled = train_to_end(config, steps, runs_dir)
    losses = [t.best_val_loss for t in (teacher, alone, distilled)]
    assert all(loss is not None for loss in losses)
    return Outcome(*losses, time.perf_counter() - begin)  # type: ignore[arg-type]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher-steps", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=600, help="each student's steps")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--runs-dir", default="runs/distill", help="where the three runs are kept")
    args = parse_with_torch_options(parser, argv)
    use_bench_cache()
    o = compare(args.teacher_steps, args.steps, args.alpha, args.temperature, args.device, Path(args.runs_dir))
    print(f"validation loss (nats/char), whole split; students {STUDENT}, {args.steps} steps, "
          f"alpha {args.alpha}, T {args.temperature}")
    print(f"  teacher (baby-gpt-char, {args.teacher_steps} steps)  {o.teacher_loss:.4f}")
    print(f"  student alone                              {o.alone_loss:.4f}")
    print(f"  student distilled                          {o.distilled_loss:.4f}  "
          f"({o.alone_loss - o.distilled_loss:+.4f} against alone)")
    print(f"{o.seconds:.0f} s")


if __name__ == "__main__":
    main()
