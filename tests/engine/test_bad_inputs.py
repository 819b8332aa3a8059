"""Bad inputs through `lmcore train`: each is refused at once with exit code 2 and a message naming the field, file
or value, never a traceback, and leaves nothing behind (no run folder, inside the runs folder or outside it).

To add a case, add a row to BAD_INPUTS: an id, the change (a list of --set overrides, or a function that edits the
config dict and the temporary folder and returns any further command-line arguments), and words the message holds.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
import torch

from engine_helpers import tiny_config, write_corpus
from lmcore.cli import main
from lmcore.config import config_to_dict
from lmcore.errors import ConfigError
from lmcore.runs import RunFolder, rename_run
from lmcore.trainer import Trainer


def row(id: str, change, *words: str, marks=()):
    return pytest.param(change, words, id=id, marks=marks)


def absolute_name(raw: dict, tmp: Path) -> list[str]:
    raw["name"] = str(tmp / "elsewhere")
    return []


def runs_dir_is_a_file(raw: dict, tmp: Path) -> list[str]:
    (tmp / "not-a-folder").write_text("x")
    return ["--runs-dir", str(tmp / "not-a-folder")]


BAD_INPUTS = [
    # run names: one path component of safe characters, at most 100 of them
    row("name-climbs-out", ['name="../../x"'], "name", "../../x", "'/' is not allowed"),
    row("name-absolute", absolute_name, "name", "elsewhere", "'/' is not allowed"),
    row("name-nested", ['name="a/b"'], "name", "'a/b'"),
    row("name-dot", ['name="."'], "name", "'.'", "starts with '.'"),
    row("name-dot-dot", ['name=".."'], "name", "'..'"),
    row("name-300-chars", [f'name="{"x" * 300}"'], "name", "300 characters", "at most 100"),
    row("name-nul", ['name="a\\u0000b"'], "name", "\\x00"),
    row("name-empty", ['name=""'], "name is empty"),
    row("name-not-text", ["name=5"], "name = 5", "text"),
    # numbers out of range, infinite or not a number at all
    row("lr-inf", ["optim.lr=inf"], "optim.lr = inf", "finite"),
    row("lr-nan", ["optim.lr=nan"], "optim.lr = nan", "finite"),
    row("lr-negative", ["optim.lr=-0.1"], "optim.lr = -0.1", "positive"),
    row("lr-zero", ["optim.lr=0"], "optim.lr = 0", "positive"),
    row("lr-absurd", ["optim.lr=1e6"], "optim.lr = 1000000.0", "too high"),
    row("epochs-inf", ["train.epochs=inf"], "train.epochs = inf", "finite"),
    row("epochs-negative", ["train.epochs=-1"], "train.epochs = -1"),
    row("epochs-absurd", ["train.epochs=1e300"], "train.epochs = 1e+300"),
    row("batch-size-zero", ["train.batch_size=0"], "train.batch_size = 0"),
    row("batch-size-negative", ["train.batch_size=-4"], "train.batch_size = -4"),
    row("batch-size-absurd", ["train.batch_size=1000000000"], "train.batch_size = 1,000,000,000", "too large"),
    row("context-zero", ["train.context=0"], "train.context = 0"),
    row("context-past-the-model", ["model.context_length=8"], "train.context = 16", "model.context_length = 8"),
    row("val-fraction-0", ["data.val_fraction=0"], "data.val_fraction = 0.0"),
    row("val-fraction-1", ["data.val_fraction=1"], "data.val_fraction = 1.0"),
    row("val-fraction-1.5", ["data.val_fraction=1.5"], "data.val_fraction = 1.5"),
    row("grad-clip-negative", ["optim.grad_clip=-1"], "optim.grad_clip = -1.0"),
    row("warmup-negative", ["schedule.warmup_steps=-5"], "schedule.warmup_steps = -5"),
    row("min-lr-inf", ["schedule.min_lr=inf"], "schedule.min_lr = inf", "finite"),
    # the model section, checked before the corpus is read
    row("heads-do-not-divide", ["model.n_embd=30", "model.n_head=4"], "model.n_embd = 30", "model.n_head = 4"),
    row("no-layers", ["model.n_layer=0"], "model.n_layer = 0"),
    row("dropout-1.5", ["model.dropout=1.5"], "model.dropout = 1.5"),
    row("unknown-family", ['model.family="cnn"'], "model.family = 'cnn'"),
    row("embedding-absurd", ["model.n_embd=1000000000"], "model.n_embd = 1,000,000,000", "too large"),
    row("unknown-model-key", ["model.n_embed=32"], "model.n_embed"),
    row("rnn-untied-sizes", ['model={family="rnn", n_embd=32, n_hidden=64}'], "model.tie_embeddings",
        "model.n_hidden (64)"),
    # the tokenizer
    row("vocab-size-0", ['tokenizer.kind="sentencepiece"', "tokenizer.vocab_size=0"], "tokenizer.vocab_size = 0"),
    row("unknown-tokenizer", ['tokenizer.kind="bytes"'], "tokenizer.kind = 'bytes'"),
    # unknown settings and wrong types
    row("unknown-section", ["bogus.key=1"], "'bogus'"),
    row("unknown-key", ["train.batch_sise=8"], "train.batch_sise"),
    row("batch-size-text", ['train.batch_size="big"'], "train.batch_size = 'big'", "whole number"),
    row("lr-bool", ["optim.lr=true"], "optim.lr = True", "a number"),
    row("embedding-text", ['model.n_embd="wide"'], "model.n_embd = 'wide'"),
    row("betas-text", ['optim.betas=["a", "b"]'], "optim.betas", "list of numbers"),
    row("train-paths-numbers", ["data.train=[1, 2]"], "data.train = [1, 2]", "list of paths"),
    # where and on what it would train
    row("device-unknown", ['train.device="tpu"'], "train.device = 'tpu'"),
    row("device-unavailable", ['train.device="mps"'], "train.device = 'mps'",
        marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")),
    row("runs-dir-is-a-file", runs_dir_is_a_file, "not-a-folder", "runs_dir"),
]


@pytest.fixture
def no_training(monkeypatch):
    """A bad input must be refused before training starts; reaching it fails the test at once."""
    monkeypatch.setattr(Trainer, "run", lambda self: pytest.fail("a bad input reached training"))


@pytest.mark.parametrize("change, words", BAD_INPUTS)
def test_bad_input_is_refused_at_once_by_name(change, words, tmp_path, capsys, no_training):
    runs = tmp_path / "a" / "b" / "runs"  # deep enough that "../../x" would still land inside tmp_path
    raw = config_to_dict(tiny_config(write_corpus(tmp_path, 2_000), runs))
    args = [arg for o in change for arg in ("--set", o)] if isinstance(change, list) else change(raw, tmp_path)
    (tmp_path / "run.toml").write_text(tomli_w.dumps(raw))
    before = sorted(tmp_path.rglob("*"))

    assert main(["train", str(tmp_path / "run.toml"), "--runs-dir", str(runs), *args]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and "Traceback" not in out + err
    for word in words:
        assert word in err
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, in the runs folder or anywhere else


@pytest.mark.parametrize("name", ["baby-gpt-char", "run_2.1", "my first run", "Shakespeare-été",
                                  pytest.param("x" * 100, id="100-chars")])
def test_a_good_name_makes_one_folder_in_the_runs_folder(name, tmp_path):
    folder = RunFolder.create(tmp_path, name)
    assert folder.path.parent == tmp_path and folder.path.name.startswith(name + "-")


@pytest.mark.parametrize("name", ["a/b", "../x", ".", "..", "", "   ", "a\\b", "a\0b", "-rf",
                                  pytest.param("x" * 101, id="101-chars")])
def test_renaming_to_a_bad_name_is_refused_and_keeps_the_run(name, tmp_path):
    run = RunFolder.create(tmp_path / "runs", "old").path
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="New name"):
        rename_run(run, name)
    assert sorted(tmp_path.rglob("*")) == before
