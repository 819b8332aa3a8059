"""The runs table: one row per run folder, read from the folder's files, and the diff of two runs' configs."""
import json
import shutil
import time
import tomllib

import pytest
import tomli_w

from engine_helpers import tiny_config, write_corpus
from lmcore.run_table import (COLUMNS, MISSING_TEXT, RunTable, config_diff, flat_config, format_cell,
                              mixed_tokenizers, read_row)
from lmcore.runs import RunFolder, liveness
from lmcore.trainer import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two runs trained for real: a character Transformer evaluated on the whole validation split, and a word LSTM
    evaluated on two batches (no bits per character then)."""
    root = tmp_path_factory.mktemp("table")
    corpus = write_corpus(root, 20_000)
    gpt = tiny_config(corpus, root / "runs", max_steps=20, eval_interval=10)
    lstm = tiny_config(corpus, root / "runs", "rnn", max_steps=12, eval_interval=6, eval_batches=2)
    lstm.tokenizer.kind = "word"
    runs = {}
    for key, config in (("gpt", gpt), ("lstm", lstm)):
        trainer = Trainer.new(config)
        assert trainer.run() == "finished"
        runs[key] = trainer.folder.path
    return root / "runs", runs


def config_toml(run_dir):
    return tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))


def metrics(run_dir, kind):
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == kind]


def test_a_row_holds_the_runs_settings_and_results(trained):
    _, runs = trained
    row = read_row(runs["gpt"])
    config = config_toml(runs["gpt"])
    evals, steps = metrics(runs["gpt"], "eval"), metrics(runs["gpt"], "step")
    status = RunFolder(runs["gpt"]).read_status()
    values = row.values
    assert values["name"] == runs["gpt"].name and values["status"] == "finished"
    model, train = config["model"], config["train"]
    assert (values["family"], values["layers"], values["width"], values["heads"]) == (
        "Transformer", model["n_layer"], model["n_embd"], model["n_head"])
    assert (values["context"], values["lr"], values["batch"], values["steps"]) == (
        train["context"], config["optim"]["lr"], train["batch_size"], train["max_steps"])
    assert values["tokenizer"] == "char" and values["vocab"] == 59  # the sample text's characters, and <unk>
    assert values["best_val_loss"] == min(e["val_loss"] for e in evals) == status["best_val_loss"]
    assert values["bits_per_char"] == min(e["val_bits_per_char"] for e in evals)
    assert values["bits_per_char"] > values["best_val_loss"]  # bits, not nats, for one character a token
    assert values["tokens"] == steps[-1]["tokens"] == 20 * 8 * 16
    assert values["wall_time"] == steps[-1]["elapsed"] and values["step"] == 20
    assert values["parameters"] == status["parameters"] > 0
    assert set(values) == {column.key for column in COLUMNS}
    assert row.text("bits_per_char") == f"{values['bits_per_char']:.3f}" and row.text("lr") == "0.003"


def test_a_run_evaluated_on_part_of_the_split_has_no_bits_per_character(trained):
    _, runs = trained
    row = read_row(runs["lstm"])
    assert row.values["family"] == "LSTM" and row.values["width"] == config_toml(runs["lstm"])["model"]["n_hidden"]
    assert row.values["heads"] is None and row.text("heads") == MISSING_TEXT
    assert row.values["tokenizer"] == "word" and row.values["vocab"] > 1000
    assert row.values["best_val_loss"] == min(e["val_loss"] for e in metrics(runs["lstm"], "eval"))
    assert row.values["bits_per_char"] is None and row.text("bits_per_char") == MISSING_TEXT


def test_the_table_lists_every_run_newest_first_and_sees_mixed_tokenizers(trained):
    runs_dir, runs = trained
    rows = RunTable(runs_dir).rows()
    assert [row.path for row in rows] == [runs["lstm"], runs["gpt"]]
    assert mixed_tokenizers(rows) and not mixed_tokenizers(rows[:1])


def test_config_diff_lists_the_keys_that_differ(trained):
    _, runs = trained
    diff = dict((key, (a, b)) for key, a, b in config_diff(runs["gpt"], runs["lstm"]))
    assert diff["model.family"] == ("transformer", "rnn") and diff["tokenizer.kind"] == ("char", "word")
    assert diff["model.vocab_size"][0] == 59 and diff["model.n_head"] == (2, None)  # an RNN has no heads
    assert diff["train.max_steps"] == (20, 12) and "optim.lr" not in diff and "name" in diff
    assert config_diff(runs["gpt"], runs["gpt"]) == []


def test_config_diff_of_two_configs_fills_in_defaults(tmp_path):
    """A key one config.toml leaves out is its default: only what really differs is listed."""
    a = {"name": "run", "model": {"family": "transformer", "n_layer": 1}, "optim": {"lr": 3e-3}}
    b = {"name": "run", "model": {"n_layer": 2, "positional": "learned"},  # the defaults, written out
         "optim": {"lr": 1e-3}, "train": {"context": 64}}
    folders = [RunFolder.create(tmp_path / "runs", "run") for _ in range(2)]
    for folder, config in zip(folders, (a, b), strict=True):
        folder.config_path.write_text(tomli_w.dumps(config), encoding="utf-8")
    assert config_diff(folders[0].path, folders[1].path) == [("model.n_layer", 1, 2), ("optim.lr", 3e-3, 1e-3)]
    assert flat_config(folders[0].path)["model.positional"] == "learned"
    assert "model.vocab_size" not in flat_config(folders[0].path)  # no tokenizer yet: unknown, not a default


def test_a_damaged_run_folder_gives_a_row_of_what_can_be_read(tmp_path):
    folder = RunFolder.create(tmp_path / "runs", "broken")
    folder.config_path.write_text("[model\nn_layer = ", encoding="utf-8")  # cut short
    folder.status_path.write_text('["not", "a", "status"]', encoding="utf-8")
    (folder.tokenizer_dir).mkdir()
    (folder.tokenizer_dir / "tokenizer.json").write_text("{", encoding="utf-8")
    folder.checkpoint_path("last").write_bytes(b"\x00" * 10)
    folder.checkpoint_path("last").with_suffix(".json").write_text("garbage", encoding="utf-8")
    step = {"kind": "step", "step": 3, "tokens": 96, "loss": 4.0, "lr": 1e-3, "grad_norm": 1.0,
            "tokens_per_s": 10.0, "elapsed": 2.5}
    folder.metrics_path.write_text(json.dumps(step) + '\n{"kind": "eval", "st', encoding="utf-8")
    row = read_row(folder.path)
    assert row.values["name"] == folder.path.name and row.values["status"] == "unknown"
    assert row.values["tokens"] == 96 and row.values["wall_time"] == 2.5 and row.values["step"] == 3
    for key in ("layers", "width", "context", "tokenizer", "vocab", "lr", "best_val_loss", "parameters"):
        assert row.values[key] is None and row.text(key) == MISSING_TEXT, key
    assert flat_config(folder.path) == {}


def test_values_of_the_wrong_kind_show_as_missing(tmp_path):
    folder = RunFolder.create(tmp_path / "runs", "odd")
    folder.config_path.write_text('model = 3\n[optim]\nlr = "fast"\n[train]\nbatch_size = true\n',
                                  encoding="utf-8")
    folder.write_status("finished", parameters="many", best_val_loss=float("nan"))
    with pytest.warns(UserWarning, match="not a metrics record"):
        folder.metrics_path.write_text('{"kind": "eval", "step": "x"}\n', encoding="utf-8")
        row = read_row(folder.path)
    # a config that cannot be read shows no settings at all: its defaults would claim what nobody can know
    for key in ("family", "layers", "context", "lr", "batch", "parameters", "best_val_loss"):
        assert row.values[key] is None and row.text(key) == MISSING_TEXT, key
    assert format_cell("started", 1e300) == MISSING_TEXT and format_cell("tokens", 2_650_000) == "2.65 M"


def test_the_table_follows_the_files_as_they_change(tmp_path):
    runs_dir = tmp_path / "runs"
    folder = RunFolder.create(runs_dir, "live")
    folder.save_config(tiny_config(write_corpus(tmp_path, 1000), runs_dir))
    folder.write_status("running", **liveness())
    table = RunTable(runs_dir)
    assert table.rows()[0].values["best_val_loss"] is None and table.rows()[0].values["status"] == "running"

    def evaluation(step, loss):
        return json.dumps({"kind": "eval", "step": step, "tokens": step * 10, "elapsed": step / 10, "val_loss": loss,
                           "val_perplexity": 2.0, "val_bits_per_char": loss * 1.5, "best": True}) + "\n"

    with folder.metrics_path.open("a", encoding="utf-8") as f:
        f.write(evaluation(10, 2.0) + evaluation(20, 1.5))
    assert table.rows()[0].values["best_val_loss"] == 1.5 and table.rows()[0].values["bits_per_char"] == 2.25
    folder.truncate_metrics(10)  # as a resume does: the file is rewritten shorter
    assert table.rows()[0].values["best_val_loss"] == 2.0
    folder.update_status(heartbeat=time.time() - 3600)  # the process stopped beating
    assert table.rows()[0].values["status"] == "interrupted"
    shutil.rmtree(folder.path)
    assert table.rows() == []
