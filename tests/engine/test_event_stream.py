"""`lmcore train --events -`: the JSON-lines event schema, a real child process driven through its pipes, and the
liveness that status.json records."""
import dataclasses
import math
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine_helpers import tiny_config
from lmcore import events as ev
from lmcore.attention import KEEP_SNAPSHOTS, load_snapshot
from lmcore.cli import main
from lmcore.config import save_config
from lmcore.errors import LMCoreError
from lmcore.runs import HEARTBEAT_STALE_S, RunFolder, is_alive, list_runs

TIMEOUT = 60  # seconds for anything a child process does: generous, the machine may be busy

SAMPLES = [
    ev.Launched(Path("/runs/a b"), 1234, False),
    ev.Preparing("Encoding training split", 0.5),
    ev.Started(Path("runs/x"), "CPU", 14_784, 100, 0, 128, 1e5),
    ev.StepMetrics(3, 384, 2.5, 1e-3, 0.9, 5e4, 0.25),
    ev.EvalMetrics(10, 1280, 1.5, 2.4, 11.0, None, True),
    ev.ClassifyMetrics(10, 0.75, 0.7, ["neg", "pos"], [0.8, 0.7], [0.6, 0.9], [[3, 2], [1, 9]]),
    ev.CheckpointSaved(10, Path("runs/x/checkpoints/last.safetensors"), "last"),
    ev.AttentionSaved(12, Path("runs/x/attention/step-0000012.npy"), "saliency"),
    ev.Paused(7),
    ev.Resumed(7),
    ev.Finished(20, "stopped", None, Path("runs/x")),
    ev.Failed(0, "config.toml does not exist.\nGive another.", None),
]


# --- the schema ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_one_json_line(event):
    line = ev.event_to_line(event)
    assert "\n" not in line and line.startswith(f'{{"event": "{type(event).__name__}", "v": 1')
    assert ev.event_from_line(line) == event
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.step = 1


def test_the_samples_cover_every_event_and_nan_survives():
    assert {type(e) for e in SAMPLES} == set(ev.EVENTS.values())
    back = ev.event_from_line(ev.event_to_line(ev.StepMetrics(1, 2, math.nan, 0.1, math.inf, 3.0, 4.0)))
    assert math.isnan(back.loss) and back.grad_norm == math.inf


def test_readers_skip_unknown_fields_fill_defaults_and_refuse_what_they_cannot_read():
    assert ev.event_from_line('{"event": "Preparing", "v": 1, "message": "x", "later": 3}') == ev.Preparing("x")
    for line, message in [('{"event": "Exploded", "v": 1}', "unknown event"),
                          ('{"event": "Paused", "v": 2, "step": 1}', "newer"),
                          ('{"event": "Paused", "v": 1}', "bad Paused"),
                          ('{"event": "Paused", ', "not a JSON")]:
        with pytest.raises(ValueError, match=message):
            ev.event_from_line(line)


# --- a child process ----------------------------------------------------------------------------------------------

class Child:
    """`python -m lmcore train CONFIG --events -` with pipes; its events are parsed on a reader thread."""

    def __init__(self, folder: Path, config: Path, *settings: str):
        overrides = [arg for setting in settings for arg in ("--set", setting)]
        self.stderr_path = folder / "stderr.txt"
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lmcore", "train", str(config), "--events", "-",
                 "--runs-dir", str(folder / "runs"), *overrides],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.put(ev.event_from_line(line))
        self.events.put(None)  # the end of the stream

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def until(self, kind, where=lambda e: True) -> list:
        """The events up to and including the next `kind` one for which where(event) holds."""
        seen = []
        while True:
            event = self.events.get(timeout=TIMEOUT)
            assert event is not None, f"the stream ended before a {kind.__name__}: {self.stderr()}"
            seen.append(event)
            if isinstance(event, kind) and where(event):
                return seen

    def exit_code(self) -> int:
        return self.process.wait(timeout=TIMEOUT)

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@pytest.fixture
def launch(tmp_path, small_corpus):
    """Start a child on a tiny Transformer config (train.* settings as keyword arguments); kill leftovers."""
    children = []

    def start(**train) -> Child:
        config = tmp_path / "tiny.toml"
        save_config(tiny_config(small_corpus, tmp_path / "runs", **train), config)
        children.append(Child(tmp_path, config))
        return children[-1]

    yield start
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()


def test_a_supervisor_pauses_resumes_and_stops_the_child(launch):
    child = launch(max_steps=100_000, eval_interval=1000)
    opening = child.until(ev.StepMetrics, lambda e: e.step == 3)
    launched, *preparing, started = opening[:-3]
    assert isinstance(launched, ev.Launched) and launched.pid == child.process.pid and not launched.resumed
    assert preparing and all(isinstance(e, ev.Preparing) for e in preparing) and isinstance(started, ev.Started)
    assert [e.step for e in opening[-3:]] == [1, 2, 3] and started.run_dir == launched.run_dir
    folder = RunFolder(launched.run_dir)

    child.send("pause")
    paused = child.until(ev.Paused)[-1]
    status = folder.read_status()
    assert status["status"] == "paused" and status["pid"] == child.process.pid and is_alive(status)
    assert status["host"] == socket.gethostname() and time.time() - status["heartbeat"] < HEARTBEAT_STALE_S
    time.sleep(0.5)  # a paused run takes no steps
    child.send("bogus")
    child.send("resume")
    assert child.until(ev.Resumed) == [ev.Resumed(paused.step)]
    assert child.until(ev.StepMetrics)[-1].step == paused.step + 1

    child.send("stop")
    finished = child.until(ev.Finished)[-1]
    assert finished.status == "stopped" and child.exit_code() == 0
    assert folder.read_status()["status"] == "stopped" and folder.checkpoint_path("last").is_file()
    assert "warning: ignoring the control line 'bogus'" in child.stderr()


def test_the_end_of_stdin_stops_the_child_cleanly(launch):
    child = launch(max_steps=100_000, eval_interval=1000)
    run_dir = child.until(ev.StepMetrics)[0].run_dir
    child.process.stdin.close()  # the supervisor died
    assert child.until(ev.Finished)[-1].status == "stopped" and child.exit_code() == 0
    folder = RunFolder(run_dir)
    assert folder.read_status()["status"] == "stopped" and folder.checkpoint_path("last").is_file()


def test_a_probe_saves_the_newest_attention_snapshots(launch):
    child = launch(max_steps=100_000, eval_interval=1000)
    child.until(ev.StepMetrics)
    child.send('probe {"text": "To be, or not", "every": 2}')
    saved = [child.until(ev.AttentionSaved)[-1] for _ in range(KEEP_SNAPSHOTS + 3)]
    child.send("stop")
    assert child.exit_code() == 0
    assert all(e.step % 2 == 0 and e.kind == "attention" for e in saved)
    snapshot = load_snapshot(saved[-1].path)
    assert snapshot.tokens == list("To be, or not") and snapshot.step == saved[-1].step
    assert snapshot.weights.shape == (1, 2, 13, 13)  # [layers, heads, T, T]
    folder = saved[-1].path.parent
    assert len(list(folder.glob("*.npy"))) == len(list(folder.glob("*.json"))) == KEEP_SNAPSHOTS


def test_a_detached_child_trains_to_the_end(launch):
    child = launch(max_steps=1000, eval_interval=500)
    run_dir = child.until(ev.StepMetrics)[0].run_dir
    child.send("detach")
    child.process.stdin.close()  # the supervisor is gone; the run is not
    assert child.exit_code() == 0
    status = RunFolder(run_dir).read_status()
    assert status["status"] == "finished" and status["step"] == 1000 and (run_dir / "train.log").is_file()


def test_an_error_before_the_run_exists_is_a_failed_event(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.toml"), "--events", "-"]) == 2
    out, err = capsys.readouterr()
    failed = ev.event_from_line(out.strip())
    assert failed == ev.Failed(0, failed.message, None) and "does not exist" in failed.message
    assert err.startswith("error: ")


def test_python_dash_m_lmcore_works():
    result = subprocess.run([sys.executable, "-m", "lmcore", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout


# --- liveness -----------------------------------------------------------------------------------------------------

def test_a_run_whose_process_is_gone_is_interrupted(tmp_path, small_corpus, capsys):
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    now, here, me = time.time(), socket.gethostname(), os.getpid()
    assert is_alive({"status": "running", "pid": me, "host": here, "heartbeat": now})
    assert is_alive({"status": "paused", "pid": dead.pid, "host": "another-machine", "heartbeat": now})
    assert not is_alive({"status": "running", "pid": dead.pid, "host": here, "heartbeat": now})
    assert not is_alive({"status": "running", "pid": me, "host": here, "heartbeat": now - HEARTBEAT_STALE_S - 1})
    assert not is_alive({"status": "finished", "pid": me, "host": here, "heartbeat": now})
    assert not is_alive({"status": "running"})  # no heartbeat at all

    config = tiny_config(small_corpus, tmp_path / "runs")
    for name, pid in (("alive", me), ("dead", dead.pid)):
        folder = RunFolder.create(tmp_path / "runs", name)
        folder.save_config(config)
        folder.write_status("running", pid=pid, host=here, heartbeat=now)
    runs = {run.name.split("-")[0]: run for run in list_runs(tmp_path / "runs")}
    assert (runs["alive"].status, runs["alive"].pid) == ("running", me)
    assert (runs["dead"].status, runs["dead"].pid) == ("interrupted", None)
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "interrupted" in capsys.readouterr().out


def test_a_corrupt_snapshot_is_refused_naming_the_file(tmp_path):
    (tmp_path / "step-0000002.npy").write_bytes(b"not numpy")
    with pytest.raises(LMCoreError, match="step-0000002.npy"):
        load_snapshot(tmp_path / "step-0000002.npy")
