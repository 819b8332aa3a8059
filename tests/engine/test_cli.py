import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields

import pytest
import tomli_w

from engine_helpers import write_corpus
from lmcore.cli import build_parser, main
from lmcore.config import setting_field, setting_groups, settings_markdown
from lmcore.generation import SamplingSettings
from lmcore.tokenizers import TOKENIZER_KINDS, TokenizerConfig
from lmcore.runs import list_runs

TINY = {
    "name": "cli-tiny",
    "data": {"train": ["corpus.txt"]},
    "tokenizer": {"kind": "char"},
    "model": {"family": "transformer", "n_layer": 1, "n_head": 2, "n_embd": 32},
    "train": {"batch_size": 8, "context": 16, "max_steps": 20, "eval_interval": 10, "device": "cpu"},
}


@pytest.fixture
def trained_run(tmp_path, capsys):
    write_corpus(tmp_path, 20_000)
    (tmp_path / "tiny.toml").write_text(tomli_w.dumps(TINY))
    assert main(["train", str(tmp_path / "tiny.toml"), "--runs-dir", str(tmp_path / "runs"),
                 "--set", "train.max_steps=30"]) == 0
    err = capsys.readouterr().err
    assert "30/30" in err and "val loss" in err and "finished at step 30" in err
    return list_runs(tmp_path / "runs")[0].path


def test_train_runs_lists_evaluates_and_samples(trained_run, tmp_path, capsys):
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    listing = capsys.readouterr().out
    assert trained_run.name in listing and "finished" in listing and "transformer" in listing

    assert main(["eval", str(trained_run), "--data", str(tmp_path / "corpus.txt")]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and "bits/char" in out

    args = ["sample", str(trained_run), "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "5",
            "--temperature", "0.9", "--top-k", "20", "--top-p", "0.95"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert first.startswith("ROMEO:") and len(first) > len("ROMEO:") + 10
    assert capsys.readouterr().out == first  # a fixed seed reproduces the text


def test_resume_continues_a_stopped_run(trained_run, capsys):
    assert main(["train", "--resume", str(trained_run), "--quiet"]) == 0  # already finished: nothing to redo
    assert "error" not in capsys.readouterr().err


def test_tokenizer_train_writes_a_loadable_tokenizer(tmp_path, capsys):
    corpus = write_corpus(tmp_path, 20_000)
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", str(corpus), "--out", str(out), "--kind", "sentencepiece",
                 "--vocab-size", "400"]) == 0
    assert "400 tokens" in capsys.readouterr().out
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer.model").is_file()


def test_tokenizer_train_takes_its_defaults_and_choices_from_the_tokenizer_config(capsys):
    parser = build_parser()
    args = parser.parse_args(["tokenizer", "train", "x.txt", "--out", "tok"])
    assert TokenizerConfig(**{f.name: getattr(args, f.name) for f in fields(TokenizerConfig)}) == TokenizerConfig()
    for kind in TOKENIZER_KINDS:
        assert parser.parse_args(["tokenizer", "train", "x.txt", "--out", "tok", "--kind", kind]).kind == kind
    with pytest.raises(SystemExit):
        parser.parse_args(["tokenizer", "train", "x.txt", "--out", "tok", "--model-type", "wordpiece"])
    assert "invalid choice: 'wordpiece'" in capsys.readouterr().err
    args = parser.parse_args(["tokenizer", "train", "x.txt", "--out", "tok", "--lowercase", "--max-vocab", "500"])
    assert (args.lowercase, args.max_vocab, args.vocab_size) == (True, 500, TokenizerConfig().vocab_size)


def test_sample_takes_its_defaults_from_the_sampling_settings():
    args = build_parser().parse_args(["sample", "some-run"])
    assert SamplingSettings(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.repetition_penalty,
                            args.greedy, args.seed, args.stop) == SamplingSettings()


def test_train_help_and_lmcore_settings_list_every_setting_with_its_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    train_help = capsys.readouterr().out
    assert main(["settings"]) == 0
    listing = capsys.readouterr().out
    for _, _, items in setting_groups():
        for key, _ in items:
            assert f"  {key} = " in listing and f"  {key} = " in train_help, key
    lr = setting_field("optim.lr")
    assert lr.metadata["help"].split()[0] in listing and "optim.lr = 0.001  [positive and at most 100]" in listing
    assert main(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out == settings_markdown()


@pytest.mark.parametrize("argv, message", [
    (["train", "missing.toml"], "does not exist"),
    (["sample", "no-such-run"], "no-such-run"),
    (["eval", "no-such-run", "--data", "x.txt"], "no-such-run"),
    (["tokenizer", "train", "missing.txt", "--out", "x"], "does not exist"),
])
def test_bad_input_exits_2_with_a_message_not_a_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_every_command_has_help(capsys):
    parser = build_parser()
    for argv in (["--help"], ["train", "--help"], ["eval", "--help"], ["sample", "--help"],
                 ["tokenizer", "train", "--help"], ["runs", "--help"], ["settings", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 0 and "usage: lmcore" in capsys.readouterr().out


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "lmcore.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout and "sample" in result.stdout


def test_both_programs_say_their_version():
    from lmcore import __version__

    for program in (["-m", "lmcore"], ["-m", "app.main"]):
        result = subprocess.run([sys.executable, *program, "--version"], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        assert result.returncode == 0 and result.stdout.strip().endswith(__version__), result.stderr


def test_ctrl_c_stops_a_run_with_a_checkpoint_and_exit_code_130(tmp_path):
    """A script can tell a run stopped by Ctrl-C from a finished one."""
    write_corpus(tmp_path, 20_000)
    (tmp_path / "tiny.toml").write_text(tomli_w.dumps(TINY))
    child = subprocess.Popen([sys.executable, "-m", "lmcore", "train", str(tmp_path / "tiny.toml"), "--quiet",
                              "--runs-dir", str(tmp_path / "runs"), "--set", "train.max_steps=100000"])
    deadline = time.monotonic() + 120
    while not any(path.stat().st_size for path in tmp_path.glob("runs/*/metrics.jsonl")):  # a step was trained
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=120) == 130
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert (run / "checkpoints" / "last.safetensors").is_file()
