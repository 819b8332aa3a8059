"""Small corpora and configs shared by the engine tests (plain functions, so any test module can import them)."""
from __future__ import annotations

from pathlib import Path

from lmcore import events as ev
from lmcore.config import RunConfig, config_from_dict
from lmcore.runs import RunFolder, list_runs
from lmcore.trainer import Trainer

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


def stopped_and_resumed(config, tmp_path: Path, eval_fields: tuple[str, ...] = ("val_loss",)):
    """config(folder) trained uninterrupted in tmp_path/a, and stopped after step 11 and resumed in tmp_path/b; each
    run's (step losses, evaluation records' eval_fields), uninterrupted first."""
    Trainer.new(config("a")).run()
    first = Trainer.new(config("b"))
    first.subscribe(lambda e: first.request_stop() if isinstance(e, ev.StepMetrics) and e.step == 11 else None)
    assert first.run() == "stopped"
    assert Trainer.resume(first.folder.path).run() == "finished"

    def history(run_dir):
        records = RunFolder(run_dir).read_metrics()
        return ([r["loss"] for r in records if r["kind"] == "step"],
                [tuple(r[f] for f in eval_fields) for r in records if r["kind"] == "eval"])

    return history(list_runs(tmp_path / "a")[0].path), history(first.folder.path)
