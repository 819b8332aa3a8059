"""int8 copies of runs (lmcore.quantize, lmcore quantize): they load wherever a run loads, generate, score close to
the original, and are stored without pickles."""
from __future__ import annotations

import json
import tomllib

import pytest
import torch
from safetensors import safe_open

from engine_helpers import tiny_config, write_corpus
from lmcore.checkpoint import load_trained_model, model_device
from lmcore.cli import main
from lmcore.errors import CheckpointError, ConfigError
from lmcore.generation import SamplingSettings, generate, score_text
from lmcore.quantize import is_int8, quantize_run
from lmcore.runs import list_runs
from lmcore.trainer import Trainer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module", params=["transformer", "rnn"])
def trained(request, tmp_path_factory, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path_factory.mktemp("runs"), request.param, max_steps=40))
    assert trainer.run() == "finished"
    return trainer.folder.path


def test_the_int8_copy_loads_generates_and_scores_close_to_the_original(trained, corpus):
    copy = quantize_run(trained)
    assert copy == trained.with_name(trained.name + "-int8")
    assert {run.path for run in list_runs(trained.parent)} == {trained, copy}
    model, tokenizer, meta = load_trained_model(copy)
    assert is_int8(model) and meta["quantized"] == "int8-dynamic" and model_device(model).type == "cpu"
    original, _, _ = load_trained_model(trained)
    text = corpus.read_text()[-1500:]
    int8, full = score_text(model, tokenizer, text).perplexity, score_text(original, tokenizer, text).perplexity
    assert int8 == pytest.approx(full, rel=0.03)
    tokens = list(generate(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=20, seed=1)))
    assert len(tokens) == 20


def test_the_copy_is_stored_in_open_formats_with_int8_weights(trained):
    copy = quantize_run(trained, trained.parent / "small")
    files = [path for path in copy.rglob("*") if path.is_file()]
    assert {path.suffix for path in files} == {".json", ".toml", ".safetensors"}  # no .pt, .pkl or .bin
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".toml":
            tomllib.loads(path.read_text(encoding="utf-8"))
    checkpoint = copy / "checkpoints" / "best.safetensors"
    with safe_open(str(checkpoint), framework="pt") as f:
        header = json.loads(f.metadata()["lmcore"])
        dtypes = {f.get_tensor(name).dtype for name in f.keys()}
    assert header["quantized"] == "int8-dynamic" and torch.int8 in dtypes
    weights = sum(t.numel() * 4 for t in load_trained_model(trained)[0].state_dict().values())
    assert checkpoint.stat().st_size < 0.6 * weights
    with pytest.raises(ConfigError, match="already exists"):
        quantize_run(trained, copy)
    with pytest.raises(CheckpointError, match="already an int8 copy"):
        quantize_run(copy, trained.parent / "again")


def test_lmcore_quantize_then_sample_and_eval_the_copy(trained, corpus, tmp_path, capsys):
    out = tmp_path / "int8-run"
    assert main(["quantize", str(trained), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["sample", str(out), "--prompt", "ROMEO:", "--max-new-tokens", "10", "--seed", "1", "--json"]) == 0
    (sample,) = json.loads(capsys.readouterr().out)
    assert len(sample["tokens"]) == 10
    assert main(["eval", str(out), "--data", str(corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["perplexity"] > 1
