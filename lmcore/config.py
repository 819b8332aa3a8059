"""Run configuration: one TOML file, a dataclass per section, checked before anything trains."""
from __future__ import annotations

import dataclasses
import math
import textwrap
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .device import check_device_choice
from .errors import ConfigError
from .labelled import LABELLED_SUFFIXES
from .models import MODEL_CONFIGS, ModelConfig, TransformerConfig, model_config_from_dict
from .models.classifier import POOLINGS, check_pooling
from .settings import check_settings, default_text, expect_table, from_table, range_text, setting
from .tokenizers import TokenizerConfig

FAMILIES = tuple(MODEL_CONFIGS)
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "plateau")
ENCODING_ERRORS = ("strict", "replace")
DTYPES = ("auto", "fp32", "bf16", "fp16")
TASKS = ("lm", "classify")
CLASSIFY_METRICS = ("accuracy", "macro_f1")
RUN_NAME_MAX = 100  # characters; the folder adds "-yyyymmdd-hhmmss"
RUN_NAME_PUNCTUATION = "_.- "  # besides letters and digits: no path separators, NUL or shell specials
MAX_LR = 100.0  # SGD on an LSTM uses up to about 20; anything far above diverges at the first step
MAX_EPOCHS = 1e6
MAX_TRAIN_SIZE = 1 << 20  # sequences per batch, tokens per sequence
MAX_SEED = 2**31 - 1
# Stands in for a vocabulary that only the corpus can tell (characters, words), so the model settings are checked
# before the corpus is read; large enough to rule out no cutoff that a real vocabulary might allow.
UNKNOWN_VOCAB = 1 << 30


@dataclass
class DataConfig:
    train: list[str] = setting(help="The training text: .txt files and/or folders of .txt files (UTF-8, or UTF-16/32 "
                                    "with a byte-order mark); relative paths start at the config file's folder.",
                               factory=list)
    val: list[str] = setting(help="Validation files. Without them the last data.val_fraction of the text is held "
                                  "out instead.", factory=list)
    val_fraction: float = setting(0.1, "Share of the text, taken from its end, held out to measure validation loss "
                                       "(when data.val is empty). 0.05 to 0.2; 0.1 is typical.", above=0.0, below=1.0)
    encoding_errors: str = setting("strict", "What to do with bytes that are not valid UTF-8: stop and explain "
                                             "(strict, safest), or replace them with � and train anyway.",
                                   choices=ENCODING_ERRORS)


@dataclass
class OptimConfig:
    name: str = setting("adamw", "AdamW is the standard for Transformers. SGD with a high learning rate and a "
                                 "plateau schedule is the classic LSTM recipe.", choices=OPTIMIZERS)
    lr: float = setting(1e-3, "Step size. AdamW: 1e-4 to 3e-3 (1e-3 for small models); SGD: 1 to 20. Too high makes "
                              "the loss jump or turn NaN.", above=0.0, at_most=MAX_LR)
    betas: list[float] = setting(help="Adam(W)'s decay rates for the running averages of the gradient and of its "
                                      "square: two numbers in [0, 1). [0.9, 0.99] for small models, [0.9, 0.95] for "
                                      "large ones.", factory=lambda: [0.9, 0.99])
    weight_decay: float = setting(0.1, "Pulls weight matrices (not biases or norms) towards zero, against "
                                       "overfitting. 0 to 0.1; 0.1 is typical for AdamW.", at_least=0.0)
    momentum: float = setting(0.0, "SGD momentum: 0 is plain SGD, 0.9 is common.", at_least=0.0, below=1.0)
    grad_clip: float = setting(1.0, "Largest gradient norm allowed; larger gradients are scaled down, preventing "
                                    "blow-ups. 1.0 for Transformers, 0.25 for LSTMs; 0 turns it off.", at_least=0.0)


@dataclass
class ScheduleConfig:
    kind: str = setting("cosine", "How the learning rate changes. Cosine decays smoothly to the minimum; plateau cuts "
                                  "it when validation stops improving; constant keeps it.", choices=SCHEDULES)
    warmup_steps: int = setting(0, "Steps over which the learning rate ramps up from near zero, avoiding early "
                                   "instability. 0 to a few hundred (about 5% of the run).", unit="steps", at_least=0)
    min_lr: float = setting(0.0, "Where the cosine decay ends, at most optim.lr: about a tenth of the learning "
                                 "rate; 0 decays fully.", at_least=0.0)
    decay_steps: int = setting(0, "Steps the cosine decay lasts; 0 means the whole run (train.max_steps).",
                               unit="steps", at_least=0)
    plateau_factor: float = setting(0.25, "Multiply the learning rate by this when validation loss stops "
                                          "improving: 0.1 to 0.5.", above=0.0, below=1.0)
    plateau_patience: int = setting(0, "Evaluations without improvement tolerated before a cut. 0 cuts at once; 1 "
                                       "to 3 is gentler.", unit="evaluations", at_least=0)


@dataclass
class TrainConfig:
    batch_size: int = setting(12, "Sequences per optimizer step (per process under torchrun). Larger is smoother and "
                                  "faster per token but needs more memory: 8 to 64 on a CPU.", unit="sequences",
                              at_least=1, at_most=MAX_TRAIN_SIZE)
    context: int = setting(64, "Tokens per sequence: how far back a Transformer can look, or how far an RNN's "
                               "gradients flow. 32 to 256 characters, 35 to 128 words or subwords.", unit="tokens",
                           at_least=1, at_most=MAX_TRAIN_SIZE)
    max_steps: int = setting(2000, "Optimizer steps to train for: a few hundred to see learning, 2,000 to 5,000 for "
                                   "a good small model. At least 1, unless train.epochs sets the length.",
                             unit="steps", at_least=0)
    epochs: float = setting(0.0, "Passes over the training text, fractions allowed; 1 to 10 for a small corpus. "
                                 "More than 0 sets the run's length instead of train.max_steps.", unit="passes",
                            at_least=0.0, at_most=MAX_EPOCHS)
    grad_accum: int = setting(1, "Micro-batches whose gradients add up to one optimizer step: a larger batch in the "
                                 "same memory. 1 steps after every batch.", at_least=1)
    eval_interval: int = setting(250, "Steps between validation-loss measurements, each of which also saves a "
                                      "checkpoint. 100 to 500; smaller gives more points but trains slower.",
                                 unit="steps", at_least=1)
    eval_batches: int = setting(0, "Validation batches per evaluation; 0 evaluates the whole validation split.",
                                unit="batches", at_least=0)
    log_interval: int = setting(1, "Steps between metric read-backs (a GPU sync): 1 on a CPU, which reads cheaply; "
                                   "10 to 50 on a fast GPU.", unit="steps", at_least=1)
    seed: int = setting(1337, "Random seed: the same seed and settings give the same run. Any whole number from 0 to "
                              "2,147,483,647.", at_least=0, at_most=MAX_SEED)
    device: str = setting("auto", "Where to train. auto picks a CUDA GPU, then Apple's GPU (mps), then the CPU; or "
                                  "name one: cpu, cuda, cuda:N (one GPU of several), mps.")
    dtype: str = setting("auto", "Number format: auto is bf16 autocast on a CUDA GPU that has it (Ampere and later), "
                                 "fp16 with a gradient scaler on an older one (T4, V100), and fp32 elsewhere; or "
                                 "fp32, bf16 or fp16.", choices=DTYPES)
    compile: bool = setting(False, "Compile the model with torch.compile: faster steps on a GPU, after a slow "
                                   "first one.")
    tensorboard: bool = setting(False, "Also write TensorBoard event files in the run's tensorboard/ folder: the "
                                       "metrics, the config with the final results, and a sample of text at each "
                                       "evaluation. Needs pip install 'lm-workbench[tensorboard]'.")


@dataclass
class DistillConfig:
    teacher: str = setting("", "A trained run folder (or checkpoint file) to distil from: the student learns from the "
                               "teacher's predictions as well as from the text. Its tokenizer must be this run's. "
                               "Empty trains on the text alone.")
    alpha: float = setting(0.5, "Weight of the ordinary loss on the text; the rest (1 - alpha) goes to matching the "
                                "teacher. 0.1 to 0.5; 1 ignores the teacher.", at_least=0.0, at_most=1.0)
    temperature: float = setting(2.0, "Softens both models' distributions before they are compared, so the "
                                      "teacher's second and third choices teach too. 1 to 4; 2 is typical.",
                                 above=0.0, at_most=100.0)


@dataclass
class ClassifyConfig:
    """A classifier's settings (task = "classify"): data.train and data.val then name labelled files."""

    test: list[str] = setting(help="Labelled test files (.tsv, .csv or .jsonl), scored with the best checkpoint when "
                                   "the run ends; relative paths start at the config file's folder.", factory=list)
    labels: list[str] = setting(help="The labels, in the order the classifier numbers them. Empty takes every label "
                                     "of the training file, sorted; a row with a label not listed is an error.",
                                factory=list)
    text_field: str = setting("text", "The text's column (its header in a .tsv or .csv file, its key in .jsonl). A "
                                      ".tsv or .csv without a header row is read as text, label.")
    label_field: str = setting("label", "The label's column (its header in a .tsv or .csv file, its key in .jsonl).")
    pooling: str = setting("auto", "How the body's hidden states become one vector per text. auto: [CLS] for an "
                                   "encoder, the last token for a GPT, the final hidden state for an RNN, the mean "
                                   "for an MLP or a convolutional network, whose last token reads only a window; "
                                   "mean averages every token; cls is for encoders only.",
                           choices=POOLINGS)
    freeze_body: bool = setting(False, "Train the head alone, the body's weights fixed (a linear probe): fast, and "
                                       "shows what the pre-trained body already knows.")
    body_lr_scale: float = setting(0.1, "The body's learning rate as a share of optim.lr when it is fine-tuned (the "
                                        "new head learns at the full rate): 0.1 to 1.", above=0.0, at_most=1.0)
    class_weights: bool = setting(False, "Weight each label's loss by its rarity (balanced weights), so a rare label "
                                         "counts as much as a common one.")
    early_stopping: int = setting(0, "Stop after this many evaluations without a better validation metric; 0 trains "
                                     "to the end. 3 to 10 is typical.", unit="evaluations", at_least=0)
    metric: str = setting("accuracy", "The validation metric that picks the best checkpoint and drives early "
                                      "stopping: accuracy, or macro_f1 (the mean F1 over labels, fairer to rare "
                                      "ones).", choices=CLASSIFY_METRICS)


@dataclass
class RunConfig:
    name: str = setting("run", "The run's name; its folder is the name plus the start time. Letters, digits, "
                               "spaces, '-', '_' and '.', up to 100 characters.")
    runs_dir: str = setting("runs", "Where run folders are made (lmcore train --runs-dir overrides it).")
    init_from: str = setting("", "A run folder (or checkpoint file) to fine-tune: its model and tokenizer carry on, "
                                 "trained further on data.train. Empty trains a new model.")
    task: str = setting("lm", "What the model learns. lm: language modelling (next token; masked tokens for an "
                              "encoder). classify: a classifier of labelled texts ([classify]), its body taken from "
                              "init_from or built from [model].", choices=TASKS)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    # The model's own fields say what they do; this field's help and choices are model.family's, the key that picks
    # the model's class in a config file.
    model: ModelConfig = setting(help="The architecture. A Transformer (GPT) attends over the whole context; a "
                                      "recurrent network (LSTM, GRU) reads token by token, carrying a hidden state; "
                                      "an encoder (BERT) attends both ways and learns to fill in masked tokens "
                                      "rather than to continue text; an MLP (Bengio et al.'s n-gram model) reads the "
                                      "n - 1 tokens before each; a gated convolutional network (Dauphin et al.) reads "
                                      "a fixed receptive field through causal convolutions.",
                                 factory=TransformerConfig, choices=FAMILIES, default_text='"transformer"')
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)

    @property
    def family(self) -> str:
        return self.model.family

    def validate(self) -> None:
        """Raise ConfigError for the first setting that cannot work, naming it. Nothing is read from disk, so a
        mistake is reported at once, before a corpus is read or a run folder is made."""
        check_run_name(self.name)
        self._check_finite()
        _check(self.init_from != "" or bool(self.data.train),
               "data.train is empty; give a .txt file or a folder of .txt files", "data.train")
        check_settings(self.data, "data", skip=("val_fraction",) if self.data.val else ())
        self.tokenizer.validate()
        _check(self.init_from != "" or self.tokenizer.kind != "huggingface",
               "tokenizer.kind = 'huggingface' comes with an imported model and is not trained; fine-tune that run "
               "(init_from), or choose char, word or sentencepiece", "tokenizer.kind")
        o = self.optim
        check_settings(o, "optim")
        _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
               f"optim.betas = {o.betas} must be two numbers in [0, 1)", "optim.betas")
        s = self.schedule
        check_settings(s, "schedule")
        _check(s.min_lr <= o.lr, f"schedule.min_lr = {s.min_lr} must be between 0 and optim.lr = {o.lr}",
               "schedule.min_lr", also=("optim.lr",))
        t = self.train
        check_settings(t, "train")
        _check(t.max_steps >= 1 or t.epochs > 0, f"train.max_steps = {t.max_steps} must be >= 1 (or set train.epochs)",
               "train.max_steps", also=("train.epochs",))
        check_device_choice(t.device)
        check_settings(self.distill, "distill")
        check_settings(self.classify, "classify")
        if self.task == "classify":
            self._check_classify()
        if not self.init_from:  # a fine-tuned run takes its model from the source checkpoint
            self.model_for(self._vocab_size_bound())
        if isinstance(self.model, TransformerConfig):
            _check(t.context <= self.model.context_length,
                   f"train.context = {t.context} is longer than model.context_length = {self.model.context_length}",
                   "train.context", also=("model.context_length",))
        if self.family == "encoder":
            _check(t.context >= 3, f"train.context = {t.context} leaves no room for text between an encoder's [CLS] "
                                   "and [SEP]; use at least 3 (64 is typical)", "train.context")

    def _check_classify(self) -> None:
        c = self.classify
        _check(not self.distill.teacher, "distill.teacher is for language models; a classifier (task = \"classify\") "
                                         "learns from its labels: leave distill.teacher empty", "distill.teacher",
               also=("task",))
        for name, paths in (("data.train", self.data.train), ("data.val", self.data.val), ("classify.test", c.test)):
            bad = next((p for p in paths if Path(p).suffix.lower() not in LABELLED_SUFFIXES), None)
            _check(bad is None, f"{name} = {bad!r}: a classifier reads labelled files, one of "
                                f"{', '.join(LABELLED_SUFFIXES)} (a text and a label per row)", name)
        _check(not c.labels or (len(set(c.labels)) == len(c.labels) >= 2 and all(x.strip() for x in c.labels)),
               f"classify.labels = {c.labels} must be at least two distinct, non-empty labels, or empty to take "
               "them from the training file", "classify.labels")
        if not self.init_from:  # otherwise the body's family is the source run's, known once it is read
            check_pooling(c.pooling, self.family)

    def _check_finite(self) -> None:
        """inf and nan parse as TOML floats; no setting means them."""
        for section in (*SECTIONS, "model"):
            for f in dataclasses.fields(getattr(self, section)):
                value = getattr(getattr(self, section), f.name)
                numbers = value if isinstance(value, list) else [value]
                _check(not any(isinstance(x, float) and not math.isfinite(x) for x in numbers),
                       f"{section}.{f.name} = {value} must be a finite number", f"{section}.{f.name}")

    def _vocab_size_bound(self) -> int:
        """The vocabulary size the tokenizer settings fix (SentencePiece) or cap (words), else UNKNOWN_VOCAB."""
        tok = self.tokenizer
        if tok.kind == "sentencepiece":
            return tok.vocab_size
        if tok.kind == "word" and tok.max_vocab:
            return tok.max_vocab
        return UNKNOWN_VOCAB

    def model_for(self, vocab_size: int) -> ModelConfig:
        """The model section completed with what only the data tells, its tokenizer's vocabulary size; validated
        (ConfigError naming the field)."""
        model = dataclasses.replace(self.model, vocab_size=vocab_size)
        model.validate()
        return model


SECTIONS: dict[str, type[Any]] = {"data": DataConfig, "tokenizer": TokenizerConfig, "optim": OptimConfig,
                                  "schedule": ScheduleConfig, "train": TrainConfig, "distill": DistillConfig,
                                  "classify": ClassifyConfig}


def _check(ok: bool, message: str, field_name: str, also: tuple[str, ...] = ()) -> None:
    if not ok:
        raise ConfigError(message + ".", field=field_name, also=also)


def check_run_name(name: str, field_name: str = "name") -> None:
    """A run's name becomes its folder's name: one path component, so no run is written outside the runs folder
    or nested where no list shows it. Raises ConfigError naming `field_name` and the value."""
    example = "e.g. 'shakespeare-gpt'"
    _check(bool(name.strip()), f"{field_name} is empty; give the run a name, {example}", field_name)
    if len(name) > RUN_NAME_MAX:
        raise ConfigError(f"{field_name} = {name[:40]!r}... is {len(name):,} characters long; "
                          f"use at most {RUN_NAME_MAX}.", field=field_name)
    bad = next((c for c in name if not (c.isalnum() or c in RUN_NAME_PUNCTUATION)), None)
    # A leading "." or "-" would make ".", "..", a hidden folder or something a command line takes for an option.
    if bad is not None or name[0] in ".- " or name.endswith(" "):
        problem = (f"{bad!r} is not allowed" if bad is not None
                   else "it starts with '.', '-' or a space, or ends with a space")
        raise ConfigError(f"{field_name} = {name!r} cannot name a run folder ({problem}): use letters, digits, "
                          f"spaces, '-', '_' and '.', starting with a letter, digit or '_', {example}.",
                          field=field_name)


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Build a RunConfig from parsed TOML, rejecting unknown sections and keys by name. [model]'s family (a
    Transformer when it has none) picks the model's config class; a Transformer's context_length defaults to
    train.context."""
    known = [f.name for f in dataclasses.fields(RunConfig)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown setting {key!r}; known settings are {', '.join(known)}.", field=key)
        if key in SECTIONS:
            kwargs[key] = from_table(SECTIONS[key], value, key, source)
        elif key == "model":
            expect_table(key, value, source)
            kwargs[key] = model_config_from_dict({"family": "transformer", **value}, source)
        elif not isinstance(value, str):
            raise ConfigError(f"{source}: {key} = {value!r} should be text.", field=key)
        else:
            kwargs[key] = value
    config = RunConfig(**kwargs)
    for section, name in ((config.data, "train"), (config.data, "val"), (config.classify, "test")):
        paths = getattr(section, name)  # a single path may be written as a plain string
        if isinstance(paths, str):
            setattr(section, name, [paths] if paths else [])
    if isinstance(config.model, TransformerConfig) and "context_length" not in raw.get("model", {}):
        config.model.context_length = config.train.context  # the model's window is the training window
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
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
    if config.distill.teacher:
        config.distill.teacher = _absolute(config.distill.teacher, base)
    config.classify.test = [_absolute(p, base) for p in config.classify.test]
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
    """The config as TOML tables; [model] names its family and leaves out the vocabulary size, which the run's
    tokenizer tells."""
    raw = dataclasses.asdict(config)
    model = {name: value for name, value in raw["model"].items() if name != "vocab_size"}
    raw["model"] = {"family": config.family, **model}
    return raw


def save_config(config: RunConfig, path: Path) -> None:
    from .fileio import write_atomic

    write_atomic(path, tomli_w.dumps(config_to_dict(config)).encode("utf-8"))


# ---- the settings, documented --------------------------------------------------------------------------------------
def setting_groups() -> list[tuple[str, str, list[tuple[str, dataclasses.Field]]]]:
    """Every setting a config file may hold, in the file's order, as (table, when, [(key, field), ...]): the
    top-level settings (table ""), then each section; [model] has model.family, then each family's settings (when
    'family = "rnn"')."""
    top: list[tuple[str, dataclasses.Field]] = []
    groups = [("", "", top)]
    for f in dataclasses.fields(RunConfig):
        if f.name == "model":
            groups.append(("model", "", [("model.family", f)]))
            groups += [("model", f'family = "{family}"', [(f"model.{g.name}", g) for g in dataclasses.fields(cls)])
                       for family, cls in MODEL_CONFIGS.items()]
        elif f.name in SECTIONS:
            groups.append((f.name, "", [(f"{f.name}.{g.name}", g) for g in dataclasses.fields(SECTIONS[f.name])]))
        else:
            top.append((f.name, f))
    return groups


def setting_field(key: str, family: str = "transformer") -> dataclasses.Field | None:
    """The dataclass field that documents `key` ("optim.lr"; "model.n_hidden" in `family`'s model, or else in the
    other family's), or None for no setting."""
    found = [(when == f'family = "{family}"', f)
             for _, when, items in setting_groups() for name, f in items if name == key]
    return max(found, key=lambda item: item[0])[1] if found else None


def _facts(f: dataclasses.Field) -> str:
    return "; ".join(x for x in (f.metadata.get("unit", ""), range_text(f.metadata)) if x)


def settings_text(width: int = 100) -> str:
    """Every setting with its default, unit, range and help, as plain text (lmcore settings, lmcore train --help)."""
    lines = []
    for table, when, items in setting_groups():
        lines += ["", f"[{table}]" + (f" with {when}" if when else "")] if table else ["At the top:"]
        for key, f in items:
            lines.append(f"  {key} = {default_text(f)}" + (f"  [{_facts(f)}]" if _facts(f) else ""))
            lines += textwrap.wrap(f.metadata.get("help", ""), width, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6)
    return "\n".join(lines) + "\n"


def settings_markdown() -> str:
    """docs/configuration.md: every setting with its default, unit, range and help (lmcore settings --markdown)."""
    out = ["# Configuration", "",
           "<!-- Written by `lmcore settings --markdown > docs/configuration.md` from the settings' help, units and "
           "ranges in lmcore (lmcore/config.py, lmcore/tokenizers.py, lmcore/models/); edit them there. -->", "",
           "A run is one TOML file with the sections below (see `resources/presets`). Any setting can be overridden "
           "on the command line with `--set section.key=value`; every one is checked, the model's included, before "
           "the corpus is read or a run folder is made. `[model]`'s `family` picks the model's settings.", ""]
    for table, when, items in setting_groups():
        out += [(f"## `[{table}]`" + (f" with `{when}`" if when else "")) if table else "## At the top", "",
                "| setting | default | unit, allowed values | what it does |", "|---|---|---|---|"]
        for key, f in items:
            default = default_text(f)  # a value, or words for what it stands for ("the tokenizer's")
            default = default if "default_text" in f.metadata and " " in default else f"`{default}`"
            cells = [f"`{key}`", default, _facts(f), f.metadata.get("help", "")]
            out.append("| " + " | ".join(cell.replace("|", "\\|").replace("<", "&lt;") for cell in cells) + " |")
        out.append("")
    return "\n".join(out)
