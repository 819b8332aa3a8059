import io
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
    assert (out / "lmcore-tokenizer.json").is_file() and (out / "tokenizer.model").is_file()


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


# --- JSON output, prompt files, several samples ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("json-run")
    write_corpus(folder, 20_000)
    (folder / "tiny.toml").write_text(tomli_w.dumps(TINY))
    assert main(["train", str(folder / "tiny.toml"), "--runs-dir", str(folder / "runs"), "--quiet"]) == 0
    return list_runs(folder / "runs")[0].path


def json_out(capsys, argv):
    """The command's stdout, which must be one JSON document and nothing else."""
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_and_runs_print_json(sampled_run, capsys):
    corpus = sampled_run.parent.parent / "corpus.txt"
    report = json_out(capsys, ["eval", str(sampled_run), "--data", str(corpus), "--json"])
    assert report["step"] == 20 and report["tokens"] > 1000 and report["checkpoint"] == "best"
    assert report["perplexity"] == pytest.approx(2.718281828 ** report["loss"], rel=1e-6)
    assert 0 < report["bits_per_char"] < 8
    assert main(["eval", str(sampled_run), "--data", str(corpus)]) == 0
    assert f"bits/char {report['bits_per_char']:.4f}" in capsys.readouterr().out  # the same figures as text

    (run,) = json_out(capsys, ["runs", "--runs-dir", str(sampled_run.parent), "--json"])
    assert run["name"] == sampled_run.name and run["path"] == str(sampled_run)
    assert (run["status"], run["step"], run["family"]) == ("finished", 20, "transformer")
    assert json_out(capsys, ["runs", "--runs-dir", str(sampled_run / "nothing-here"), "--json"]) == []


def test_sample_json_gives_each_sample_its_tokens_and_a_batch_equals_single_runs(sampled_run, capsys):
    args = ["sample", str(sampled_run), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--json"]
    samples = json_out(capsys, [*args, "--num-samples", "3", "--seed", "5"])
    assert [s["seed"] for s in samples] == [5, 6, 7] and all(s["prompt"] == "ROMEO:" for s in samples)
    for sample in samples:
        assert len(sample["tokens"]) == 30 and sample["text"] == "".join(t["text"] for t in sample["tokens"])
        assert all(set(t) == {"id", "text", "probability"} and 0 < t["probability"] <= 1 for t in sample["tokens"])
    (second,) = json_out(capsys, [*args, "--seed", "6"])  # sample i is a single sample with seed + i ...
    assert {**second, "tokens": None} == {**samples[1], "tokens": None}
    assert [(t["id"], t["text"]) for t in second["tokens"]] == [(t["id"], t["text"]) for t in samples[1]["tokens"]]
    assert ([t["probability"] for t in second["tokens"]]  # ... to the rounding of a batched forward pass
            == pytest.approx([t["probability"] for t in samples[1]["tokens"]], rel=1e-4))
    assert main(["sample", str(sampled_run), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "6"]) == 0
    assert capsys.readouterr().out == "ROMEO:" + second["text"] + "\n"

    assert main(["sample", str(sampled_run), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "5",
                 "--num-samples", "2"]) == 0
    text = capsys.readouterr().out
    assert text == "".join(f"--- sample {i + 1} of 2 (seed {s['seed']}) ---\nROMEO:{s['text']}\n"
                           for i, s in enumerate(samples[:2]))
    assert main([*args, "--num-samples", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_sample_reads_its_prompt_from_a_file_or_standard_input(sampled_run, tmp_path, capsys, monkeypatch):
    prompt = "MENENIUS:\nNow is the"
    args = ["sample", str(sampled_run), "--max-new-tokens", "20", "--seed", "3", "--json"]
    (expected,) = json_out(capsys, [*args, "--prompt", prompt])
    (tmp_path / "prompt.txt").write_text(prompt, encoding="utf-8")
    assert json_out(capsys, [*args, "--prompt-file", str(tmp_path / "prompt.txt")]) == [expected]
    monkeypatch.setattr(sys, "stdin", io.StringIO(prompt))
    assert json_out(capsys, [*args, "--prompt-file", "-"]) == [expected]

    assert main([*args, "--prompt-file", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    assert main([*args, "--prompt-file", str(tmp_path / "latin1.txt")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one prompt or the other
        build_parser().parse_args(["sample", "run", "--prompt", "x", "--prompt-file", "-"])
