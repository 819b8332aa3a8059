"""What a training run tells its subscribers (the CLI, the GUI, tests). Frozen dataclasses; no Qt.

Each event also has a JSON form, one object per line, for `lmcore train --events -` (docs/event-protocol.md):
{"event": "<ClassName>", "v": SCHEMA_VERSION, ...fields}.
"""
from __future__ import annotations

import json
from dataclasses import Field, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

# Adding a field (with a default) keeps the version; renaming or removing one, or changing its meaning, bumps it.
SCHEMA_VERSION = 1
PATH_TYPES = ("Path", "Path | None")  # field annotations (strings, see the __future__ import) that hold a Path


class Event:
    """The JSON form shared by every event."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # every event is a dataclass

    def to_json(self) -> dict:
        d = {"event": type(self).__name__, "v": SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            d[f.name] = str(value) if isinstance(value, Path) else value
        return d

    @classmethod
    def from_json(cls, d: dict):
        """Fields this version does not know are ignored and missing ones take their defaults, so a reader
        copes with a writer one additive change ahead or behind."""
        values = {}
        for f in fields(cls):
            if f.name in d:
                value = d[f.name]
                values[f.name] = Path(value) if f.type in PATH_TYPES and value is not None else value
        return cls(**values)


@dataclass(frozen=True)
class Launched(Event):
    run_dir: Path  # the run folder exists from now on; preparation has not started yet
    pid: int
    resumed: bool


@dataclass(frozen=True)
class Preparing(Event):
    message: str  # "Training tokenizer", "Encoding corpus", ...
    fraction: float | None = None  # 0..1 when known


@dataclass(frozen=True)
class Started(Event):
    run_dir: Path
    device: str
    parameters: int
    max_steps: int
    start_step: int
    tokens_per_step: int
    flops_per_token: float  # training FLOPs per token (forward and backward)
    # FLOP/s all the run's devices can do together, MFU's denominator (lmcore.device.run_peak_flops); None: unknown
    peak_flops: float | None = None
    # Threads of this machine's CPU the run keeps busy (lmcore.device.host_threads); 0: not said (an older writer)
    host_threads: int = 0


@dataclass(frozen=True)
class StepMetrics(Event):
    step: int
    tokens: int  # tokens seen so far
    loss: float
    lr: float
    grad_norm: float
    tokens_per_s: float
    elapsed: float  # seconds of training, paused time excluded, carried across resumes
    # A distilled run's two parts of `loss` (lmcore.distill), each unweighted: loss = alpha·text + (1-alpha)·teacher
    text_loss: float | None = None  # cross-entropy on the text's next tokens
    teacher_loss: float | None = None  # T²·KL(teacher || student) at the distillation temperature


@dataclass(frozen=True)
class EvalMetrics(Event):
    step: int
    tokens: int
    elapsed: float
    val_loss: float  # mean nats per predicted token (a masked LM's: per masked token)
    val_perplexity: float
    val_bits_per_char: float | None  # only when the whole validation split was evaluated; never for a masked LM
    best: bool
    val_accuracy: float | None = None  # a masked LM's share of masked tokens predicted right; None for the others


@dataclass(frozen=True)
class ClassifyMetrics(Event):
    """A classifier's validation metrics, emitted with each EvalMetrics (whose val_loss is the classification loss
    and val_accuracy the accuracy)."""

    step: int
    accuracy: float
    macro_f1: float  # the mean over labels of each label's F1
    labels: list[str]
    precision: list[float]  # per label, in label order; 0 for a label never predicted
    recall: list[float]  # per label; 0 for a label absent from the validation split
    confusion: list[list[int]]  # confusion[i][j]: validation texts of label i predicted as label j


@dataclass(frozen=True)
class CheckpointSaved(Event):
    step: int
    path: Path
    which: str  # "last" or "best"


@dataclass(frozen=True)
class AttentionSaved(Event):
    step: int
    path: Path  # the weights (.npy); the tokens and the rest are in path.with_suffix(".json")
    kind: str  # "attention" or "saliency"


@dataclass(frozen=True)
class Paused(Event):
    step: int


@dataclass(frozen=True)
class Resumed(Event):
    step: int


@dataclass(frozen=True)
class Finished(Event):
    step: int
    status: str  # "finished" or "stopped"
    best_val_loss: float | None
    run_dir: Path


@dataclass(frozen=True)
class Failed(Event):
    step: int
    message: str  # for the user: what happened and what to do
    run_dir: Path | None  # None when the run folder could not be made


EVENTS = {cls.__name__: cls for cls in Event.__subclasses__()}


def event_to_line(event: Event) -> str:
    """One line of JSON (no newline). NaN and infinities are written as NaN/Infinity, which json reads back."""
    return json.dumps(event.to_json())


def event_from_line(line: str) -> Event:
    """The event of one line; ValueError for a line that is not one, or one from a newer schema version."""
    try:
        d = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON event line ({exc}): {line[:200]!r}") from None
    if not isinstance(d, dict) or d.get("event") not in EVENTS:
        raise ValueError(f"unknown event: {line[:200]!r}")
    version = d.get("v")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(f"event schema version {version!r} is newer than this lmcore's ({SCHEMA_VERSION}); "
                         "update lmcore to read it")
    try:
        return EVENTS[d["event"]].from_json(d)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"bad {d['event']} event ({exc}): {line[:200]!r}") from None
