"""Runs side by side: one row per run folder with its main settings and results, and the diff of two configs.

Everything comes from what a run folder already holds (config.toml, status.json, metrics.jsonl, the checkpoints'
.json summaries and safetensors headers, tokenizer/lmcore-tokenizer.json); nothing is unpickled. A run folder that is
half written or damaged gives a row with what can be read, and the rest None: reading never raises.

    table = RunTable(runs_dir)
    for row in table.rows():                    # newest first; files read again only when they changed
        print(row.text("name"), row.text("bits_per_char"))
    config_diff(run_a, run_b)                   # [("model.n_layer", 4, 6), ...]: the settings that differ
"""
from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import events as ev
from .checkpoint import read_summary
from .config import RunConfig, config_to_dict
from .errors import LMCoreError
from .metrics import MetricEvent, MetricsTail
from .runs import CONFIG_FILE, LIVE_STATUSES, RunFolder, is_alive, split_run_name
from .tokenizers import load_tokenizer, tokenizer_file

MISSING_TEXT = "–"  # what a table shows for a value that is missing or cannot be read
# What reading a damaged file can raise; any of them costs the value, never the row.
READ_ERRORS = (LMCoreError, OSError, ValueError, TypeError, KeyError, AttributeError, IndexError, RuntimeError)


@dataclass(frozen=True)
class Column:
    key: str  # the key of RunRow.values
    header: str
    kind: str  # "run" (which run), "setting" (what it was told) or "result" (what it did)
    format: str  # a key of FORMATS: how a value is written
    tooltip: str
    shown: bool = True  # shown until the user picks columns


# Shown at first: what tells runs apart, in about 1000 pixels. Context, batch and steps multiply into the tokens
# seen, a column of its own; the Columns… menu shows them.
COLUMNS: tuple[Column, ...] = (
    Column("name", "Run", "run", "text", "The run folder's name."),
    Column("status", "Status", "run", "text", "running, paused, finished, stopped, failed or interrupted "
                                                "(the name's dot says it too).", False),
    Column("started", "Started", "run", "date", "When the run was started (from its folder's name).", False),
    Column("family", "Model", "setting", "text", "Transformer, or the RNN's cell (LSTM, GRU, RNN)."),
    Column("layers", "Layers", "setting", "int", "model.n_layer: Transformer blocks, or stacked RNN layers."),
    Column("width", "Width", "setting", "int", "model.n_hidden (RNN, MLP) or else model.n_embd (Transformer, CNN)."),
    Column("heads", "Heads", "setting", "int", "model.n_head (Transformer only).", False),
    Column("context", "Context", "setting", "int", "train.context: tokens per training sequence.", False),
    Column("tokenizer", "Tokenizer", "setting", "text", "tokenizer.kind: char, word, or SentencePiece BPE/unigram."),
    Column("vocab", "Vocab", "setting", "int", "The tokenizer's vocabulary size."),
    Column("lr", "LR", "setting", "lr", "optim.lr: the peak learning rate."),
    Column("batch", "Batch", "setting", "int", "train.batch_size: sequences per step (per process).", False),
    Column("steps", "Steps", "setting", "int", "The steps the run was to train (train.max_steps, or its epochs).",
           False),
    Column("best_val_loss", "Val loss", "result", "loss",
           "Lowest validation loss, in nats per token: compare it only between runs with the same tokenizer."),
    Column("bits_per_char", "Bits/char", "result", "loss",
           "Lowest validation loss in bits per character: fair across tokenizers. Only when the whole validation "
           "split was evaluated (train.eval_batches = 0)."),
    Column("tokens", "Tokens", "result", "count", "Training tokens seen."),
    Column("wall_time", "Time", "result", "duration", "Time spent training, pauses left out, across resumes."),
    Column("parameters", "Params", "result", "count", "Model parameters."),
    Column("step", "At step", "result", "int", "The last step trained.", False),
)
COLUMN_BY_KEY = {column.key: column for column in COLUMNS}


def _finite(value: Any) -> float | None:
    """A number, or None for anything else (text, a bool, NaN or an infinity written into a file)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _whole(value: Any) -> int | None:
    number = _finite(value)
    return int(number) if number is not None and number == int(number) else None


def _si(n: float) -> str:
    """2_650_000 -> '2.65 M'."""
    exponent = 0
    while exponent < 3 and abs(n) >= 999.5 * 1000 ** exponent:  # 999_999 is '1 M', not '1e+03 k'
        exponent += 1
    return f"{n / 1000 ** exponent:.3g} {' kMB'[exponent]}".rstrip()


def _duration(seconds: float) -> str:
    """12.34 -> '12.3 s', 245 -> '4m 05s', 3725 -> '1h 02m'."""
    minutes, secs = divmod(int(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}h {minutes % 60:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.3g} s"


FORMATS: dict[str, Callable[[Any], str]] = {
    "text": str,
    "int": lambda n: f"{int(n):,}",
    "count": _si,
    "loss": lambda x: f"{x:.3f}",
    "lr": lambda x: f"{x:.3g}",
    "duration": _duration,
    "date": lambda t: datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M"),
}
NUMERIC_FORMATS = ("int", "count", "loss", "lr", "duration", "date")


def format_cell(column: Column | str, value: Any) -> str:
    """A value as the table writes it; MISSING_TEXT for None, or for a value its column cannot write."""
    column = COLUMN_BY_KEY[column] if isinstance(column, str) else column
    if value is None or (column.format in NUMERIC_FORMATS and _finite(value) is None):
        return MISSING_TEXT
    try:
        return FORMATS[column.format](value)
    except (ValueError, TypeError, OverflowError, OSError):  # OSError: a timestamp out of the platform's range
        return MISSING_TEXT


@dataclass
class RunRow:
    path: Path
    values: dict[str, Any]  # column key -> value (a number, text or None); see COLUMNS
    updated: float = 0.0  # when the run last wrote its status: rows are listed newest first

    def text(self, key: str) -> str:
        return format_cell(key, self.values.get(key))


# ---- reading one run folder ----------------------------------------------------------------------
def _read_toml(path: Path) -> dict[str, Any] | None:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def _read_status(folder: RunFolder) -> dict[str, Any]:
    status = folder.read_status()
    return status if isinstance(status, dict) else {}  # valid JSON, but a list or a number: as good as none


def _summary(folder: RunFolder) -> dict[str, Any]:
    """The newest checkpoint summary that describes its checkpoint (last, else best), or {}."""
    for which in ("last", "best"):
        try:
            summary = read_summary(folder.checkpoint_path(which))
        except READ_ERRORS:  # a header with a garbled version field
            summary = None
        if summary is not None:
            return summary
    return {}


def _vocab_size(folder: RunFolder, summary_model: dict[str, Any]) -> int | None:
    """The tokenizer's vocabulary: the built model's if a checkpoint says, else the tokenizer's own."""
    if _whole(summary_model.get("vocab_size")) is not None:
        return _whole(summary_model.get("vocab_size"))
    if not tokenizer_file(folder.tokenizer_dir).is_file():
        return None
    try:
        return load_tokenizer(folder.tokenizer_dir).vocab_size
    except READ_ERRORS:
        return None


def resolved_config(run_dir: Path, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.toml as the trainer reads it (every default filled in), as nested tables. The model section is the
    model as built when a checkpoint summary says (it knows the vocabulary, and a fine-tuned run's source model).
    A config that cannot be read gives empty sections (defaults would claim settings nobody can know) and the model
    only if a checkpoint tells it."""
    folder = RunFolder(Path(run_dir))
    summary = _summary(folder) if summary is None else summary
    try:
        config = config_to_dict(folder.load_config())
    except READ_ERRORS:
        config = {key: {} for key, value in config_to_dict(RunConfig()).items() if isinstance(value, dict)}
    built = summary.get("model")
    built = built if isinstance(built, dict) else {}
    model = {**config["model"], **built}
    vocab = _vocab_size(folder, built)
    if vocab is not None:
        model["vocab_size"] = vocab
    config["model"] = model
    return config


def flat_config(run_dir: Path) -> dict[str, Any]:
    """resolved_config flattened: {'model.n_layer': 4, 'train.batch_size': 12, 'name': ..., ...}."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                flat[f"{prefix}{key}"] = value

    walk("", resolved_config(run_dir))
    return flat


def config_diff(run_a: Path, run_b: Path) -> list[tuple[str, Any, Any]]:
    """The settings in which two runs differ: [(key, value in a, value in b)], in config.toml's order; None where a
    run's config lacks the key (a Transformer has no model.cell)."""
    a, b = flat_config(run_a), flat_config(run_b)
    keys = [*a, *(key for key in b if key not in a)]
    return [(key, a.get(key), b.get(key)) for key in keys if a.get(key) != b.get(key)]


def _family_name(model: dict[str, Any]) -> str | None:
    if model.get("family") == "transformer":
        return "Transformer"
    if model.get("family") == "rnn":
        cell = model.get("cell")
        return {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN tanh", "rnn_relu": "RNN ReLU"}.get(str(cell), "RNN")
    return {"mlp": "MLP", "conv": "CNN"}.get(str(model.get("family")))


def _tokenizer_name(tokenizer: dict[str, Any]) -> str | None:
    kind = tokenizer.get("kind")
    if kind == "sentencepiece":
        return {"bpe": "BPE", "unigram": "unigram"}.get(str(tokenizer.get("model_type")), "SentencePiece")
    return kind if isinstance(kind, str) else None


class MetricsSummary:
    """What a table needs of metrics.jsonl, kept up to date as the file grows (only new lines are read)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._reset()

    def _reset(self) -> None:
        self._tail, self._inode = MetricsTail(self.path), self._inode_now()
        self.best_val_loss: float | None = None
        self.bits_per_char: float | None = None  # the lowest; None until a whole-split evaluation gives one
        self.step: int | None = None
        self.tokens: int | None = None
        self.elapsed: float | None = None

    def _inode_now(self) -> int | None:
        try:
            return os.stat(self.path).st_ino
        except OSError:
            return None

    def update(self) -> bool:
        """Read what was appended since the last call; whether anything was."""
        replaced = self._inode_now() != self._inode  # rewritten (a resume drops the steps it redoes), or removed
        if replaced:
            self._reset()
        try:
            new = self._tail.read_new()
        except OSError:  # not a file (a folder by that name), or unreadable: no metrics
            new = []
        for event in new:
            self._fold(event)
        return replaced or bool(new)

    def _fold(self, event: MetricEvent) -> None:
        if isinstance(event, ev.ClassifyMetrics):  # its EvalMetrics twin holds what a table shows
            return
        if isinstance(event, ev.EvalMetrics):
            self.best_val_loss = _lowest(self.best_val_loss, _finite(event.val_loss))
            self.bits_per_char = _lowest(self.bits_per_char, _finite(event.val_bits_per_char))
        self.tokens = _whole(event.tokens)  # both kinds say how many tokens had been seen
        self.step = _whole(event.step)
        self.elapsed = _first(event.elapsed, self.elapsed)


def _lowest(best: float | None, value: float | None) -> float | None:
    return value if best is None or (value is not None and value < best) else best


def _status(status: dict[str, Any]) -> str:
    """What the run is, as list_runs says it: a live status whose process is gone is 'interrupted'."""
    written = status.get("status")
    if not isinstance(written, str):
        return "unknown"
    return "interrupted" if written in LIVE_STATUSES and not is_alive(status) else written


def read_row(run_dir: Path, metrics: MetricsSummary | None = None) -> RunRow:
    """The row of one run folder. `metrics`, kept between calls, reads only what metrics.jsonl gained since."""
    folder = RunFolder(Path(run_dir))
    if metrics is None:
        metrics = MetricsSummary(folder.metrics_path)
    metrics.update()
    status, summary = _read_status(folder), _summary(folder)
    config = resolved_config(folder.path, summary)
    model, train = config["model"], config["train"]
    started = split_run_name(folder.path.name)[1]
    steps = _whole(status.get("max_steps"))  # the trainer's count, train.epochs turned into steps
    if steps is None and not _finite(train.get("epochs")):
        steps = _whole(train.get("max_steps"))
    values = {
        "name": folder.path.name,
        "status": _status(status),
        "started": started.timestamp() if started else None,
        "family": _family_name(model),
        "layers": _whole(model.get("n_layer")),
        "width": _whole(model.get("n_hidden", model.get("n_embd"))),
        "heads": _whole(model.get("n_head")),
        "context": _whole(train.get("context")),
        "tokenizer": _tokenizer_name(config["tokenizer"]),
        "vocab": _whole(model.get("vocab_size")),
        "lr": _finite(config["optim"].get("lr")),
        "batch": _whole(train.get("batch_size")),
        "steps": steps,
        "best_val_loss": _first(metrics.best_val_loss, status.get("best_val_loss"), summary.get("best_val_loss")),
        "bits_per_char": metrics.bits_per_char,
        "tokens": _whole(_first(metrics.tokens, summary.get("tokens_seen"))),
        "wall_time": metrics.elapsed,
        "parameters": _whole(_first(status.get("parameters"), summary.get("parameters"))),
        "step": _whole(_first(metrics.step, status.get("step"), summary.get("step"))),
    }
    try:
        updated = _finite(status.get("updated")) or folder.path.stat().st_mtime
    except OSError:  # the folder went while it was read
        updated = 0.0
    return RunRow(folder.path, values, updated)


def _first(*values: Any) -> float | None:
    """The first value that is a finite number."""
    return next((v for v in map(_finite, values) if v is not None), None)


def run_folders(runs_dir: Path) -> list[Path]:
    try:
        return [p for p in Path(runs_dir).iterdir() if (p / CONFIG_FILE).is_file()]
    except OSError:
        return []


def mixed_tokenizers(rows: Iterable[RunRow]) -> bool:
    """Whether the rows' runs split text with different tokenizers: then only bits per character compares them."""
    return len({(row.values.get("tokenizer"), row.values.get("vocab")) for row in rows}) > 1


def _signature(folder: RunFolder) -> tuple:
    """What changes when a run's files (other than metrics.jsonl) change: their inode, size and time."""
    paths = (folder.config_path, folder.status_path, folder.checkpoint_path("last").with_suffix(".json"),
             folder.checkpoint_path("best").with_suffix(".json"), tokenizer_file(folder.tokenizer_dir))
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
            stamps.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


class RunTable:
    """The rows of every run in a runs folder, newest first. Kept between calls: a run is read again only when
    one of its files changed, and of metrics.jsonl only the lines appended since."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)
        self._metrics: dict[Path, MetricsSummary] = {}
        self._rows: dict[Path, tuple[tuple, RunRow]] = {}

    def rows(self) -> list[RunRow]:
        folders = run_folders(self.runs_dir)
        for gone in set(self._rows) - set(folders):
            self._rows.pop(gone, None)
            self._metrics.pop(gone, None)
        rows = []
        for path in folders:
            folder = RunFolder(path)
            metrics = self._metrics.setdefault(path, MetricsSummary(folder.metrics_path))
            grew = metrics.update()
            signature = _signature(folder)
            cached = self._rows.get(path)
            if grew or cached is None or cached[0] != signature:
                cached = self._rows[path] = (signature, read_row(path, metrics))
            row = cached[1]
            if row.values["status"] in LIVE_STATUSES:  # a heartbeat goes stale with no file changing
                row.values["status"] = _status(_read_status(folder))
            rows.append(row)
        return sorted(rows, key=lambda r: r.updated, reverse=True)
