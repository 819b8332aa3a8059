"""Small corpora and configs shared by the engine tests (plain functions, so any test module can import them)."""
from __future__ import annotations

from pathlib import Path

from lmcore.config import RunConfig, config_from_dict

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "resources" / "corpora" / "tinyshakespeare.txt"


def write_corpus(folder: Path, chars: int = 20_000, name: str = "corpus.txt") -> Path:
    """The first `chars` characters of the bundled sample corpus, as a file in `folder`."""
    path = Path(folder) / name
    path.write_text(SAMPLE_CORPUS.read_text(encoding="utf-8")[:chars], encoding="utf-8")
    return path


TINY_MODELS = {"transformer": {"n_layer": 1, "n_head": 2, "n_embd": 32, "context_length": 16},
               "rnn": {"cell": "lstm", "n_layer": 1, "n_embd": 32, "n_hidden": 32, "dropout": 0.0},
               "mlp": {"n_gram": 5, "n_embd": 16, "n_hidden": 32},
               "conv": {"n_layer": 2, "n_embd": 32, "kernel_size": 3, "dilation_cycle": 2}}


def tiny_config(corpus: Path, runs_dir: Path, family: str = "transformer", **train) -> RunConfig:
    """A model small enough to train a few dozen steps in a second or two."""
    model = {"family": family, **TINY_MODELS[family]}
    raw = {
        "name": f"tiny-{family}",
        "runs_dir": str(runs_dir),
        "data": {"train": [str(corpus)], "val_fraction": 0.1},
        "tokenizer": {"kind": "char"},
        "model": model,
        "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.1, "grad_clip": 1.0},
        "schedule": {"kind": "cosine", "warmup_steps": 5, "min_lr": 3e-4},
        "train": {"batch_size": 8, "context": 16, "max_steps": 30, "eval_interval": 10, "seed": 7,
                  "device": "cpu", **train},
    }
    return config_from_dict(raw)
