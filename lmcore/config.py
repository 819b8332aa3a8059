"""Run configuration: one TOML file, a dataclass per section, checked before anything trains."""
from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .device import check_device_choice
from .errors import ConfigError
from .models import model_config_from_dict
from .tokenizers import TokenizerConfig

FAMILIES = ("transformer", "rnn")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "plateau")
RUN_NAME_MAX = 100  # characters; the folder adds "-yyyymmdd-hhmmss"
RUN_NAME_PUNCTUATION = "_.- "  # besides letters and digits: no path separators, NUL or shell specials
MAX_LR = 100.0  # SGD on an LSTM uses up to about 20; anything far above diverges at the first step
MAX_EPOCHS = 1e6
MAX_TRAIN_SIZE = 1 << 20  # sequences per batch, tokens per sequence
# Stands in for a vocabulary that only the corpus can tell (characters, words), so the model settings are checked
# before the corpus is read; large enough to rule out no cutoff that a real vocabulary might allow.
UNKNOWN_VOCAB = 1 << 30


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # .txt files and/or folders of .txt files
    val: list[str] = field(default_factory=list)  # optional separate validation files
    val_fraction: float = 0.1  # used when `val` is empty: the last fraction of the text
    encoding_errors: str = "strict"  # "strict" stops at invalid UTF-8; "replace" substitutes U+FFFD


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.1  # applied to matrices only
    momentum: float = 0.0  # SGD only
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off


@dataclass
class ScheduleConfig:
    kind: str = "cosine"
    warmup_steps: int = 0
    min_lr: float = 0.0  # cosine floor
    decay_steps: int = 0  # cosine length; 0 means train.max_steps
    plateau_factor: float = 0.25  # plateau: lr *= factor when validation loss stops improving
    plateau_patience: int = 0  # evaluations without improvement tolerated before cutting


@dataclass
class TrainConfig:
    batch_size: int = 12  # sequences per step; per process under torchrun (tokens/step counts every process)
    context: int = 64  # tokens per sequence: the window (Transformer) or BPTT length (RNN)
    max_steps: int = 2000  # optimizer steps; ignored when epochs > 0
    epochs: float = 0.0  # passes over the training tokens; > 0 overrides max_steps
    grad_accum: int = 1
    eval_interval: int = 250
    eval_batches: int = 0  # 0 evaluates the whole validation split
    log_interval: int = 1  # steps between metric read-backs (a GPU sync); CPU reads every step cheaply
    seed: int = 1337
    device: str = "auto"
    dtype: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 elsewhere), "fp32", "bf16"
    compile: bool = False


@dataclass
class RunConfig:
    name: str = "run"  # the run folder's name before its start time: see check_run_name
    runs_dir: str = "runs"
    init_from: str = ""  # a run folder (or checkpoint file) to fine-tune from
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"family": "transformer"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def family(self) -> str:
        return self.model.get("family", "transformer")

    def validate(self) -> None:
        """Raise ConfigError for the first setting that cannot work, naming it. Nothing is read from disk, so a
        mistake is reported at once, before a corpus is read or a run folder is made."""
        check_run_name(self.name)
        self._check_finite()
        _check(self.family in FAMILIES, f"model.family = {self.family!r} is not one of {', '.join(FAMILIES)}")
        _check(self.init_from != "" or bool(self.data.train),
               "data.train is empty; give a .txt file or a folder of .txt files")
        _check(0.0 < self.data.val_fraction < 1.0 or bool(self.data.val),
               f"data.val_fraction = {self.data.val_fraction} must be between 0 and 1 (exclusive)")
        _check(self.data.encoding_errors in ("strict", "replace"),
               f"data.encoding_errors = {self.data.encoding_errors!r} must be 'strict' or 'replace'")
        self.tokenizer.validate()
        o = self.optim
        _check(o.name in OPTIMIZERS, f"optim.name = {o.name!r} is not one of {', '.join(OPTIMIZERS)}")
        _check(o.lr > 0, f"optim.lr = {o.lr} must be positive")
        _check(o.lr <= MAX_LR, f"optim.lr = {o.lr} is far too high (at most {MAX_LR:g}; AdamW wants 1e-4 to 3e-3, "
                               "SGD 1 to 20)")
        _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
               f"optim.betas = {o.betas} must be two numbers in [0, 1)")
        _check(o.weight_decay >= 0, f"optim.weight_decay = {o.weight_decay} must be >= 0")
        _check(0 <= o.momentum < 1, f"optim.momentum = {o.momentum} must be in [0, 1)")
        _check(o.grad_clip >= 0, f"optim.grad_clip = {o.grad_clip} must be >= 0 (0 turns clipping off)")
        s = self.schedule
        _check(s.kind in SCHEDULES, f"schedule.kind = {s.kind!r} is not one of {', '.join(SCHEDULES)}")
        _check(s.warmup_steps >= 0, f"schedule.warmup_steps = {s.warmup_steps} must be >= 0")
        _check(0 <= s.min_lr <= o.lr, f"schedule.min_lr = {s.min_lr} must be between 0 and optim.lr = {o.lr}")
        _check(s.decay_steps >= 0, f"schedule.decay_steps = {s.decay_steps} must be >= 0")
        _check(0 < s.plateau_factor < 1, f"schedule.plateau_factor = {s.plateau_factor} must be in (0, 1)")
        _check(s.plateau_patience >= 0, f"schedule.plateau_patience = {s.plateau_patience} must be >= 0")
        t = self.train
        for name in ("batch_size", "context", "grad_accum", "eval_interval", "log_interval"):
            value = getattr(t, name)
            _check(isinstance(value, int) and value >= 1, f"train.{name} = {value!r} must be a whole number >= 1")
        for name in ("batch_size", "context"):
            value = getattr(t, name)
            _check(value <= MAX_TRAIN_SIZE, f"train.{name} = {value:,} is far too large (at most {MAX_TRAIN_SIZE:,})")
        _check(t.max_steps >= 1 or t.epochs > 0, f"train.max_steps = {t.max_steps} must be >= 1 (or set train.epochs)")
        _check(0 <= t.epochs <= MAX_EPOCHS, f"train.epochs = {t.epochs} must be between 0 and {MAX_EPOCHS:g}")
        _check(t.eval_batches >= 0, f"train.eval_batches = {t.eval_batches} must be >= 0 (0 = whole split)")
        _check(t.dtype in ("auto", "fp32", "bf16"), f"train.dtype = {t.dtype!r} must be auto, fp32 or bf16")
        check_device_choice(t.device)
        context_length = self.model.get("context_length")
        if self.family == "transformer" and context_length is not None:
            _check(t.context <= context_length,
                   f"train.context = {t.context} is longer than model.context_length = {context_length}")
        if not self.init_from:  # a fine-tuned run takes its model from the source checkpoint
            model_config_from_dict(self.model_fields(self._vocab_size_bound()))

    def _check_finite(self) -> None:
        """inf and nan parse as TOML floats; no setting means them."""
        for section in SECTIONS:
            for f in dataclasses.fields(getattr(self, section)):
                value = getattr(getattr(self, section), f.name)
                numbers = value if isinstance(value, list) else [value]
                _check(not any(isinstance(x, float) and not math.isfinite(x) for x in numbers),
                       f"{section}.{f.name} = {value} must be a finite number")

    def _vocab_size_bound(self) -> int:
        """The vocabulary size the tokenizer settings fix (SentencePiece) or cap (words), else UNKNOWN_VOCAB."""
        tok = self.tokenizer
        if tok.kind == "sentencepiece":
            return tok.vocab_size
        if tok.kind == "word" and tok.max_vocab:
            return tok.max_vocab
        return UNKNOWN_VOCAB

    def model_fields(self, vocab_size: int) -> dict[str, Any]:
        """The model section completed with what only the data can tell (vocabulary size, context)."""
        fields = {"family": self.family, **self.model, "vocab_size": vocab_size}
        if self.family == "transformer":
            fields.setdefault("context_length", self.train.context)
        return fields


SECTIONS = {"data": DataConfig, "tokenizer": TokenizerConfig, "optim": OptimConfig,
            "schedule": ScheduleConfig, "train": TrainConfig}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message + ".")


def check_run_name(name: str, field_name: str = "name") -> None:
    """A run's name becomes its folder's name: one path component, so no run is written outside the runs folder
    or nested where no list shows it. Raises ConfigError naming `field_name` and the value."""
    example = "e.g. 'shakespeare-gpt'"
    _check(bool(name.strip()), f"{field_name} is empty; give the run a name, {example}")
    if len(name) > RUN_NAME_MAX:
        raise ConfigError(f"{field_name} = {name[:40]!r}... is {len(name):,} characters long; "
                          f"use at most {RUN_NAME_MAX}.")
    bad = next((c for c in name if not (c.isalnum() or c in RUN_NAME_PUNCTUATION)), None)
    # A leading "." or "-" would make ".", "..", a hidden folder or something a command line takes for an option.
    if bad is not None or name[0] in ".- " or name.endswith(" "):
        problem = (f"{bad!r} is not allowed" if bad is not None
                   else "it starts with '.', '-' or a space, or ends with a space")
        raise ConfigError(f"{field_name} = {name!r} cannot name a run folder ({problem}): use letters, digits, "
                          f"spaces, '-', '_' and '.', starting with a letter, digit or '_', {example}.")


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a RunConfig from parsed TOML, rejecting unknown sections and keys by name."""
    known = [f.name for f in dataclasses.fields(RunConfig)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown setting {key!r}; known settings are {', '.join(known)}.")
        if key in SECTIONS:
            kwargs[key] = _section(key, SECTIONS[key], value, source)
        elif key == "model":
            _expect_table(key, value, source)
            kwargs[key] = dict(value)
        elif not isinstance(value, str):
            raise ConfigError(f"{source}: {key} = {value!r} should be text.")
        else:
            kwargs[key] = value
    config = RunConfig(**kwargs)
    for name in ("train", "val"):  # a single path may be written as a plain string
        paths = getattr(config.data, name)
        if isinstance(paths, str):
            setattr(config.data, name, [paths] if paths else [])
    return config


def _expect_table(key: str, value: Any, source: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{key}] must be a table of settings, not {value!r}.")


def _section(key: str, factory, value: Any, source: str):
    _expect_table(key, value, source)
    default = factory()
    known = {f.name: f for f in dataclasses.fields(default)}
    hints = typing.get_type_hints(factory)
    for name, item in value.items():
        if name not in known:
            raise ConfigError(f"{source}: unknown setting {key}.{name}; known: {', '.join(known)}.")
        if not _same_kind(hints[name], item):
            raise ConfigError(f"{source}: {key}.{name} = {item!r} should be {_kind_name(hints[name])}.")
    values = {name: (float(item) if isinstance(getattr(default, name), float) else item) for name, item in value.items()}
    return dataclasses.replace(default, **values)


def _same_kind(hint, value: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(hint) is list:
        (element,) = typing.get_args(hint)
        if isinstance(value, str):  # a single path may be written as a plain string
            return element is str
        return isinstance(value, list) and all(_same_kind(element, x) for x in value)
    return isinstance(value, hint)


def _kind_name(hint) -> str:
    if typing.get_origin(hint) is list:
        return "a list of paths" if typing.get_args(hint) == (str,) else "a list of numbers"
    return {bool: "true or false", float: "a number", int: "a whole number", str: "text"}[hint]


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a TOML config, apply `key=value` overrides, and make relative data paths absolute.

    Relative corpus paths are taken relative to the config file, so a preset runs from any folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist; give the path of a .toml file (see resources/presets).")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file and try again.") from None
    for override in overrides:
        apply_override(raw, override)
    config = config_from_dict(raw, source=str(path))
    base = path.resolve().parent
    config.data.train = [_absolute(p, base) for p in config.data.train]
    config.data.val = [_absolute(p, base) for p in config.data.val]
    if config.init_from:
        config.init_from = _absolute(config.init_from, base)
    return config


def _absolute(p: str, base: Path) -> str:
    candidate = Path(p).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one `section.key=value` override; the value is read as TOML, else taken as a string."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {override!r} must look like section.key=value, e.g. train.max_steps=100.")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    *sections, leaf = key.strip().split(".")
    table = raw
    for section in sections:
        table = table.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"--set {override!r}: {section} is not a section.")
    table[leaf] = value


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: RunConfig, path: Path) -> None:
    from .fileio import write_atomic

    write_atomic(path, tomli_w.dumps(config_to_dict(config)).encode("utf-8"))
