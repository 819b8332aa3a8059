"""What a training run tells its subscribers (the CLI, the GUI, tests). Plain dataclasses; no Qt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Preparing:
    message: str  # "Training tokenizer", "Encoding corpus", ...
    fraction: float | None = None  # 0..1 when known


@dataclass
class Started:
    run_dir: Path
    device: str
    parameters: int
    max_steps: int
    start_step: int
    tokens_per_step: int
    flops_per_token: float


@dataclass
class StepMetrics:
    step: int
    tokens: int  # tokens seen so far
    loss: float
    lr: float
    grad_norm: float
    tokens_per_s: float
    elapsed: float  # seconds of training, paused time excluded, carried across resumes


@dataclass
class EvalMetrics:
    step: int
    tokens: int
    elapsed: float
    val_loss: float
    val_perplexity: float
    val_bits_per_char: float | None  # only when the whole validation split was evaluated
    best: bool


@dataclass
class CheckpointSaved:
    step: int
    path: Path
    which: str  # "last" or "best"


@dataclass
class Paused:
    step: int


@dataclass
class Resumed:
    step: int


@dataclass
class Finished:
    step: int
    status: str  # "finished" or "stopped"
    best_val_loss: float | None
    run_dir: Path


@dataclass
class Failed:
    step: int
    message: str  # for the user: what happened and what to do
    run_dir: Path | None
