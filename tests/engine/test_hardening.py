"""Issue 17, hardening the engine: forged checkpoint headers, failed resumes, garbled metrics, full disks, what kill -9
leaves behind, bad losses, --quiet and --set on resume, UTF-16 corpora; and a training process killed with SIGKILL
at random moments, resumed each time, that still ends where an uninterrupted run would."""
import codecs
import errno
import json
import os
import queue
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from engine_helpers import tiny_config
from lmcore import checkpoint as ckpt
from lmcore import events as ev
from lmcore import fileio
from lmcore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lmcore.cli import main
from lmcore.config import save_config
from lmcore.corpus import encode_cached, inspect_corpus, load_corpus, read_corpus
from lmcore.errors import CheckpointError, CorpusError, TrainingError
from lmcore.metrics import read_metric_events
from lmcore.models import TransformerConfig, build_model, model_config_to_dict
from lmcore.runs import HEARTBEAT_STALE_S, RunFolder
from lmcore.tokenizers import TokenizerConfig, train_tokenizer
from lmcore.trainer import Trainer

TIMEOUT = 60  # seconds for anything a child process does: generous, the machine may be busy


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, small_corpus) -> Path:
    """A tiny run stopped at step 15 of 30: its best checkpoint is from step 10, its last from step 15."""
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path_factory.mktemp("base") / "runs", max_steps=30,
                                      eval_interval=10))
    trainer.subscribe(lambda e: trainer.request_stop() if isinstance(e, ev.StepMetrics) and e.step == 15 else None)
    assert trainer.run() == "stopped"
    return trainer.folder.path


@pytest.fixture
def run(stopped_run, tmp_path) -> Path:
    """A copy of stopped_run, for a test to damage."""
    return Path(shutil.copytree(stopped_run, tmp_path / "runs" / stopped_run.name))


def config_file(folder: Path, corpus: Path, **train) -> Path:
    path = folder / "tiny.toml"
    save_config(tiny_config(corpus, folder / "runs", **train), path)
    return path


def failures(trainer) -> list[ev.Failed]:
    seen = []
    trainer.subscribe(lambda e: seen.append(e) if isinstance(e, ev.Failed) else None)
    return seen


def step_numbers(run_dir: Path) -> list[int]:
    return [r["step"] for r in RunFolder(run_dir).read_metrics() if r["kind"] == "step"]


def temp_files(folder: Path) -> list[Path]:
    return list(folder.rglob(f".*{fileio.TEMP_SUFFIX}"))


def disk_full(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --- 2: a forged checkpoint header -----------------------------------------------------------------------------

def forge(path: Path, **claim) -> None:
    """Rewrite checkpoint `path` with a header whose model config says `claim`; its tensors stay as they were."""
    forged = load_checkpoint(path)
    forged.meta["model"].update(claim)
    save_checkpoint(path, Checkpoint(forged.meta, forged.model, forged.optimizer, forged.extra))


@pytest.mark.parametrize("claim", [{"n_embd": 2_000_000}, {"n_embd": 1_000_000}, {"n_layer": 200},
                                   {"vocab_size": 10 ** 12}], ids=lambda claim: "-".join(map(str, claim.items())))
def test_a_forged_header_is_refused_before_its_model_is_built(run, claim, capsys):
    best = RunFolder(run).checkpoint_path("best")
    forge(best, **claim)
    assert main(["sample", str(run), "--max-new-tokens", "5", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Checkpoint ") and str(best) in err and "use another checkpoint" in err


def test_fine_tuning_from_a_forged_checkpoint_fails_naming_it(run, small_corpus, tmp_path):
    best = RunFolder(run).checkpoint_path("best")
    forge(best, n_embd=1_000_000)
    config = tiny_config(small_corpus, tmp_path / "tuned")
    config.init_from = str(run)
    trainer = Trainer.new(config)
    failed = failures(trainer)
    assert trainer.run() == "failed"
    assert failed[0].message.startswith(f"Checkpoint {best} ") and "use another checkpoint" in failed[0].message
    assert not (trainer.folder.path / "error.log").exists()  # a user's problem, not a bug


def test_a_header_claiming_a_huge_context_is_refused(tmp_path):
    config = TransformerConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=256, context_length=8, positional="rotary")
    path = tmp_path / "ck.safetensors"
    claimed = {**model_config_to_dict(config), "context_length": 1 << 20}  # rotary: no tensor shows the context
    save_checkpoint(path, Checkpoint({"step": 1, "model": claimed}, build_model(config).state_dict()))
    with pytest.raises(CheckpointError, match="context_length") as info:
        ckpt.build_checkpoint_model(load_checkpoint(path))
    assert str(path) in str(info.value)


# --- 3: a failed resume ------------------------------------------------------------------------------------------

def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_resume_falls_back_to_the_best_checkpoint_when_the_last_is_unreadable(run, capsys):
    truncate(RunFolder(run).checkpoint_path("last"))
    assert main(["train", "--resume", str(run)]) == 0
    err = capsys.readouterr().err
    assert "goes back to its best checkpoint, at step 10" in err and "last.safetensors" in err
    assert RunFolder(run).read_status()["status"] == "finished"
    assert step_numbers(run) == list(range(1, 31))  # steps 11..15 were dropped and trained again


def test_a_failed_resume_keeps_the_runs_status_and_figures(run, capsys):
    folder = RunFolder(run)
    before = folder.read_status()
    truncate(folder.checkpoint_path("last"))
    truncate(folder.checkpoint_path("best"))
    assert main(["train", "--resume", str(run), "--quiet"]) == 1
    assert "last.safetensors" in capsys.readouterr().err
    after = folder.read_status()
    assert {k: after[k] for k in ("status", "step", "best_val_loss", "updated")} == \
           {k: before[k] for k in ("status", "step", "best_val_loss", "updated")}
    assert before["status"] == "stopped" and before["step"] == 15 and before["best_val_loss"] is not None
    assert after["message"].startswith("Resume failed: ") and "best.safetensors" in after["message"]


# --- 4: a garbled metrics.jsonl ----------------------------------------------------------------------------------

def test_a_garbled_metrics_line_is_skipped_with_a_warning_naming_it(run):
    path = RunFolder(run).metrics_path
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:12] + b"\xff\xfe" + lines[2][14:]  # line 3: bytes that are not UTF-8
    lines[4] = lines[4][:20]  # line 5: torn
    record = json.loads(lines[5])
    lines[5] = json.dumps({**record, "loss": "garbled"}).encode()  # line 6: JSON, but not a metrics record
    path.write_bytes(b"\n".join(lines))
    for read in (lambda: RunFolder(run).read_metrics(), lambda: read_metric_events(path)):
        with pytest.warns(UserWarning) as caught:
            assert [r["step"] if isinstance(r, dict) else r.step for r in read()][:4] == [1, 2, 4, 7]
        assert [str(w.message).split(": ")[0] for w in caught] == [f"{path}, line {n}" for n in (3, 5, 6)]
    with pytest.warns(UserWarning) as caught:  # the resume drops the steps past its checkpoint, and these lines
        assert Trainer.resume(run).run() == "finished"
    assert [str(w.message).split(": ")[0] for w in caught] == [f"{path}, line {n}" for n in (3, 5, 6)]
    assert step_numbers(run) == [n for n in range(1, 31) if n not in (3, 5, 6)]


# --- 5: a full disk ----------------------------------------------------------------------------------------------

def test_a_full_disk_at_the_start_of_a_run_is_explained_and_leaves_no_folder(tmp_path, small_corpus, monkeypatch,
                                                                             capsys):
    config = config_file(tmp_path, small_corpus)
    monkeypatch.setattr(os, "fsync", disk_full)
    assert main(["train", str(config), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot set up the run folder ") and "No space left on device" in err
    assert "Free some space" in err and "Traceback" not in err
    assert not any((tmp_path / "runs").iterdir())


def test_a_full_cache_disk_costs_a_warning_and_leaves_no_temp_file(tmp_path, monkeypatch):
    text = "To be, or not to be, that is the question.\n" * 50
    tokenizer = train_tokenizer(TokenizerConfig(kind="char"), text)
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.warns(UserWarning, match="Cannot write the encoding cache .*No space left on device.*LMCORE_CACHE_DIR"):
        ids = encode_cached(tokenizer, text, "key", tmp_path / "cache")
    assert ids.tolist() == tokenizer.encode(text)
    assert list((tmp_path / "cache" / "encoded").iterdir()) == []
    monkeypatch.undo()
    cached = encode_cached(tokenizer, text, "key", tmp_path / "cache")  # with room again, the cache is written
    assert cached.tolist() == ids.tolist() and len(list((tmp_path / "cache" / "encoded").iterdir())) == 1


# --- 6: what kill -9 leaves behind --------------------------------------------------------------------------------

def test_resume_removes_the_temp_files_of_writes_cut_short(run):
    for stale in (run / "checkpoints" / ".last.safetensors.k2j4.tmp", run / ".status.json.x8q1.tmp",
                  run / "tokenizer" / ".tokenizer.json.p0z3.tmp"):
        stale.write_bytes(b"half a file")
    assert temp_files(run)
    assert Trainer.resume(run).run() == "finished"
    assert temp_files(run) == []


def test_a_summary_that_lags_its_checkpoint_is_not_read(run):
    folder = RunFolder(run)
    last, best = folder.checkpoint_path("last"), folder.checkpoint_path("best")
    assert ckpt.read_summary(last)["step"] == 15 and ckpt.read_summary(best)["step"] == 10
    # killed between writing last.safetensors (step 15) and its summary: the summary still says step 10
    shutil.copy(best.with_suffix(".json"), last.with_suffix(".json"))
    assert ckpt.read_summary(last) is None and ckpt.read_summary(best)["step"] == 10


def test_a_run_whose_process_died_with_a_stale_heartbeat_is_listed_as_interrupted(run, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    RunFolder(run).write_status("running", pid=dead.pid, host=socket.gethostname(),
                                heartbeat=time.time() - HEARTBEAT_STALE_S - 60)
    assert main(["runs", "--runs-dir", str(run.parent)]) == 0
    assert run.name in (out := capsys.readouterr().out) and out.rstrip().endswith("interrupted")


# --- 7, 13: a bad loss --------------------------------------------------------------------------------------------

def test_a_nan_before_the_first_checkpoint_says_there_is_none(tmp_path, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path / "runs", max_steps=40, eval_interval=10))
    trainer.subscribe(lambda e: next(trainer.model.parameters()).data.fill_(float("nan"))
                      if isinstance(e, ev.StepMetrics) and e.step == 3 else None)
    failed = failures(trainer)
    assert trainer.run() == "failed"
    message = failed[0].message
    assert "step 4" in message and "before its first checkpoint" in message and "nothing to resume" in message
    assert "(step 0)" not in message and not trainer.folder.checkpoint_path("last").exists()


def test_a_loss_that_diverges_to_a_finite_value_fails_the_run(tmp_path, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path / "runs", max_steps=40, eval_interval=10))

    def blow_up(event):
        if isinstance(event, ev.StepMetrics) and event.step == 14:
            with torch.no_grad():
                trainer.model.wte.weight.mul_(1e4)  # also the output layer (tied): huge logits, finite losses

    trainer.subscribe(blow_up)
    failed = failures(trainer)
    assert trainer.run() == "failed"
    message = failed[0].message
    assert "diverged" in message and "optim.lr" in message and "optim.grad_clip" in message
    assert "keeps its last good checkpoint (step 10)" in message
    status = trainer.folder.read_status()
    assert status["status"] == "failed" and "diverged" in status["message"]
    losses = [r["loss"] for r in trainer.folder.read_metrics() if r["kind"] == "step"]
    assert max(losses) > 100 and all(loss == loss and loss < float("inf") for loss in losses)  # finite throughout
    kept = load_checkpoint(trainer.folder.checkpoint_path("last"))
    assert kept.meta["step"] == 10 and all(torch.isfinite(t).all() for t in kept.model.values())


# --- 8, 9: the command line ---------------------------------------------------------------------------------------

def test_quiet_still_prints_a_failure(tmp_path, small_corpus, monkeypatch, capsys):
    def fail(trainer):
        raise TrainingError("The training loss became nan at step 3; lower optim.lr.")

    monkeypatch.setattr(Trainer, "_train", fail)
    config = config_file(tmp_path, small_corpus)
    assert main(["train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 1
    assert "failed at step 0: The training loss became nan at step 3; lower optim.lr." in capsys.readouterr().err


def test_set_on_resume_changes_what_may_change_and_refuses_the_rest(run, capsys):
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=20", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "train.max_steps = 20 (was 30)" in err and "cosine decay now ends at step 20" in err
    folder = RunFolder(run)
    assert folder.read_status()["status"] == "finished" and folder.read_status()["step"] == 20
    assert folder.load_config().train.max_steps == 20  # a later resume keeps it

    before = folder.config_path.read_bytes()
    assert main(["train", "--resume", str(run), "--set", "optim.lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set optim.lr cannot change when a run resumes")
    assert "train.max_steps, train.eval_interval, train.log_interval, train.eval_batches" in err
    assert folder.config_path.read_bytes() == before


# --- 12: corpus files ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encode", [
    lambda text: text.encode("utf-16"),  # a byte-order mark, then little-endian (Windows' "Unicode")
    lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    lambda text: text.encode("utf-32"),
    lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
], ids=["utf-16-le", "utf-16-be", "utf-32", "utf-8-bom"])
def test_a_text_file_with_a_byte_order_mark_is_read_in_its_encoding(tmp_path, encode):
    text = "Thou art more lovely and more temperate: æ, ß, 東京.\n" * 20
    path = tmp_path / "sonnet.txt"
    path.write_bytes(encode(text))
    assert read_corpus([str(path)])[0] == text
    assert inspect_corpus([str(path)]).problem is None


def test_an_unreadable_corpus_file_is_named_with_the_reason(tmp_path, monkeypatch):
    path = tmp_path / "secret.txt"
    path.write_text("text nobody may read\n" * 10)
    read_bytes = Path.read_bytes

    def refuse(self):
        if self == path:  # chmod 000 stops no one when the tests run as root
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(CorpusError, match="Permission denied") as info:
        load_corpus([str(path)])
    assert str(path) in str(info.value) and "permissions" in str(info.value)
    assert str(path) in inspect_corpus([str(path)]).problem


# --- fault injection: SIGKILL at random moments -------------------------------------------------------------------

KILLS = 20
MAX_STEPS = 200  # a cycle trains at most a few steps: the run is far from its end at the last kill


class Child:
    """`python -m lmcore train ... --events -`, its events parsed on a reader thread."""

    def __init__(self, folder: Path, *args: str):
        self.stderr_path = folder / "stderr.txt"
        with self.stderr_path.open("a") as stderr:
            self.process = subprocess.Popen([sys.executable, "-m", "lmcore", "train", *args, "--events", "-"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.endswith(b"\n"):  # a kill can cut the last line short
                self.events.put(ev.event_from_line(line.decode()))
        self.events.put(None)

    def until(self, kind, where=lambda e: True):
        """The next `kind` event for which where(event) holds; fails the test, with the child's stderr, if the
        stream ends first."""
        while (event := self.events.get(timeout=TIMEOUT)) is not None:
            if isinstance(event, kind) and where(event):
                return event
        pytest.fail(f"the child's events ended before a {kind.__name__}:\n{self.stderr_path.read_text()}")

    def kill(self) -> None:
        assert self.process.poll() is None, f"the child ended before it was killed: {self.stderr_path.read_text()}"
        self.process.kill()  # SIGKILL: no handler runs, no file is closed cleanly
        self.process.wait(timeout=TIMEOUT)
        self.process.stdin.close()


def resume_point(run_dir: Path) -> int:
    """The step a resume continues from; every checkpoint present must load."""
    steps = {path.stem: load_checkpoint(path).meta["step"] for path in (run_dir / "checkpoints").glob("*.safetensors")}
    return steps["last"] if "last" in steps else steps["best"]


def test_a_run_killed_at_random_moments_resumes_every_time_and_finishes(tmp_path, small_corpus):
    rng = random.Random(17)
    # A checkpoint at every step: most moments after a step's metrics fall in the middle of writing one.
    config = config_file(tmp_path, small_corpus, max_steps=MAX_STEPS, eval_interval=1, eval_batches=1)
    child = Child(tmp_path, str(config), "--runs-dir", str(tmp_path / "runs"))
    try:
        run_dir = child.until(ev.Launched).run_dir
        child.until(ev.CheckpointSaved, lambda e: e.which == "last")
        start, cut_short = None, 0
        for _ in range(KILLS):
            if start is not None and rng.random() < 0.2:
                time.sleep(rng.uniform(0.0, 1.0))  # while the child imports or prepares
            else:
                if start is not None:
                    assert child.until(ev.Started).start_step == start
                target = (start or 0) + 1 + rng.randrange(3)
                child.until(ev.StepMetrics, lambda e, target=target: e.step >= target)
                time.sleep(rng.uniform(0.0, 0.05))
            child.kill()
            cut_short += bool(temp_files(run_dir))
            start = resume_point(run_dir)
            child = Child(tmp_path, "--resume", str(run_dir))
        assert child.until(ev.Started).start_step == start < MAX_STEPS
        finished = child.until(ev.Finished)
        assert child.process.wait(timeout=TIMEOUT) == 0
    finally:
        if child.process.poll() is None:  # a failed check leaves no process behind
            child.process.kill()
    assert (finished.status, finished.step) == ("finished", MAX_STEPS)
    status = RunFolder(run_dir).read_status()
    assert (status["status"], status["step"]) == ("finished", MAX_STEPS)
    assert resume_point(run_dir) == MAX_STEPS and temp_files(run_dir) == []
    assert step_numbers(run_dir) == list(range(1, MAX_STEPS + 1))
    print(f"{KILLS} kills, {cut_short} of them in the middle of writing a file")
