"""The training worker against scripted child processes: events cross in batches and in order, control lines reach
the child, and a child that dies, or is detached, is reported as such. (tests/test_app_training.py drives a real
`lmcore train` child.)"""
from __future__ import annotations

import fcntl
import json
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from lmcore import events as ev
from lmcore.runs import RunFolder

from app.train import worker as worker_module
from app.train.worker import PIPE_BYTES, RunFollower, TrainingWorker

# A child that writes the event lines of a file (argv[1]) on stdout, then does what argv[2] says.
CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    sys.stdout.write(open(sys.argv[1]).read())
    sys.stdout.flush()
    then = sys.argv[2]
    if then == "record-input":  # copy control lines to argv[3] until "stop"
        with open(sys.argv[3], "w") as out:
            for line in sys.stdin:
                out.write(line)
                out.flush()
                if line.strip() == "stop":
                    break
    elif then == "answer":  # as lmcore does: "pause" is answered by Paused, "stop" ends the run
        for line in sys.stdin:
            if line.strip() == "pause":
                print(json.dumps({"event": "Paused", "v": 1, "step": 2}), flush=True)
            elif line.strip() == "stop":
                break
    elif then == "die":
        print("CUDA error: an illegal memory access was encountered", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    elif then == "detach":  # as lmcore does on "detach": its output goes to a log, it trains on
        for line in sys.stdin:
            if line.strip() == "detach":
                break
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        time.sleep(float(sys.argv[3]))
""")


def scripted(tmp_path: Path, events: list, then: str = "exit", *args: str) -> TrainingWorker:
    script = tmp_path / "events.jsonl"
    script.write_text("".join(ev.event_to_line(e) + "\n" for e in events), encoding="utf-8")
    return TrainingWorker([sys.executable, "-c", CHILD, str(script), then, *args])


def step(i):
    return ev.StepMetrics(i, i * 10, 1.0, 1e-3, 1.0, 100.0, i * 0.01)


def test_a_flood_of_events_arrives_in_a_few_batches_in_order(qtbot, tmp_path):
    run = tmp_path / "run"
    script = [ev.Launched(run, 123, False), ev.Started(run, "CPU", 10, 5000, 0, 10, 1.0),
              *(step(i) for i in range(1, 2501)), ev.EvalMetrics(2500, 25000, 1.0, 2.0, 7.4, None, True),
              ev.AttentionSaved(2500, run / "attention" / "step-0002500.npy", "attention"),
              *(step(i) for i in range(2501, 5001)), ev.Finished(5000, "finished", 2.0, run)]
    worker = scripted(tmp_path, script)
    received, step_batches = [], []
    for signal in (worker.launched, worker.started, worker.attention_saved, worker.finished):
        signal.connect(received.append)
    worker.steps.connect(lambda batch: (step_batches.append(batch), received.extend(batch)))
    worker.evals.connect(received.extend)
    failures = []
    worker.failed.connect(failures.append)
    with qtbot.waitSignal(worker.done, timeout=30_000):
        worker.start()
    assert received == script and not failures  # every event, in the engine's order
    assert len(step_batches) < 200  # batched: far fewer signals than the 5000 steps
    assert worker.run_dir == run and worker.last_step == 5000


def test_control_lines_reach_the_child(qtbot, tmp_path):
    record = tmp_path / "input.txt"
    worker = scripted(tmp_path, [], "record-input", str(record))
    with qtbot.waitSignal(worker.done, timeout=30_000):
        worker.start()
        worker.pause()
        worker.resume()
        worker.set_probe("To be, or not", 20)
        worker.clear_probe()
        worker.stop()
    lines = record.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["pause", "resume"] and lines[3:] == ["probe off", "stop"]
    assert lines[2].startswith("probe ") and json.loads(lines[2][6:]) == {"text": "To be, or not", "every": 20}


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are set on Linux only")
def test_the_childs_output_pipe_holds_seconds_of_a_fast_models_events(qtbot, tmp_path):
    """The reader empties the pipe ten times a second: with Linux's default 64 KiB, a model of thousands of steps
    a second would wait for it."""
    worker = scripted(tmp_path, [], "record-input", str(tmp_path / "input.txt"))
    with qtbot.waitSignal(worker.done, timeout=30_000):
        worker.start()
        qtbot.waitUntil(lambda: fcntl.fcntl(worker.process.stdout.fileno(), fcntl.F_GETPIPE_SZ) >= PIPE_BYTES,
                        timeout=5000)
        worker.stop()


class RecordedWaits(threading.Event):
    """The reader's waits between batches, with how long each was to be at most."""

    def __init__(self):
        super().__init__()
        self.timeouts = []

    def wait(self, timeout=None):
        self.timeouts.append(timeout)
        return super().wait(timeout)


def test_the_reader_waits_between_batches_as_long_as_it_is_told_but_hurries_for_an_answer(qtbot, tmp_path,
                                                                                       monkeypatch):
    """deliver_every sets how long the reader waits after each batch (the plots' pace, app/train/plots.py); a
    control line ends the wait, and the child's answer goes on within BATCH_INTERVAL_S."""
    monkeypatch.setattr(worker_module, "PROMPT_S", 600.0)  # however slowly a busy machine lets the child answer
    worker = scripted(tmp_path, [step(1), step(2)], "answer")
    batches, paused = [], []
    worker.steps.connect(batches.append)
    worker.paused.connect(paused.append)
    with qtbot.waitSignal(worker.done, timeout=30_000):
        worker.start()
        worker.deliver_every(0.4)
        waits = worker._reader._hurried = RecordedWaits()  # before the child, still starting, has written
        qtbot.waitUntil(lambda: len(batches) == 1, timeout=10_000)
        qtbot.waitUntil(lambda: waits.timeouts == [0.4], timeout=10_000)  # the pace's wait, begun
        worker.pause()
        qtbot.waitUntil(lambda: bool(paused), timeout=10_000)
        worker.stop()
    assert len(batches[0]) == 2 and paused == [ev.Paused(2)]
    assert waits.timeouts[:2] == [0.4, worker_module.BATCH_INTERVAL_S]  # after the answer: a short wait


def test_a_child_killed_mid_run_is_reported_failed_with_its_last_output(qtbot, tmp_path):
    run = tmp_path / "run"
    RunFolder(run).path.mkdir()
    RunFolder(run).write_status("running", step=40)
    worker = scripted(tmp_path, [ev.Launched(run, 1, False), step(41), step(42)], "die")
    failures = []
    worker.failed.connect(failures.append)
    with qtbot.waitSignal(worker.done, timeout=30_000):
        worker.start()
    (failure,) = failures
    assert failure.step == 42 and failure.run_dir == run
    assert "killed by signal 9 (SIGKILL)" in failure.message
    assert "illegal memory access" in failure.message and "press Resume" in failure.message
    status = RunFolder(run).read_status()
    assert status["status"] == "failed" and "SIGKILL" in status["message"] and status["step"] == 40


def test_the_reader_keeps_up_while_the_gui_is_busy(qtbot, tmp_path):
    """With the GUI thread not running its event loop, the child still writes everything and exits: the reader
    thread drains its pipe, so a busy window never holds training up."""
    worker = scripted(tmp_path, [step(i) for i in range(1, 20_001)])
    worker.start()
    started = time.monotonic()
    while worker.process.poll() is None and time.monotonic() - started < 30:
        time.sleep(0.01)  # the GUI thread blocked: no events processed
    assert worker.process.poll() == 0
    batches = []
    worker.steps.connect(batches.append)
    qtbot.waitUntil(lambda: sum(map(len, batches)) == 20_000, timeout=30_000)
    qtbot.waitUntil(lambda: not worker.is_running(), timeout=30_000)


def test_a_detached_child_trains_on_and_the_worker_is_done_without_it(qtbot, tmp_path):
    worker = scripted(tmp_path, [ev.Launched(tmp_path, 1, False)], "detach", "30")
    failures = []
    worker.failed.connect(failures.append)
    worker.start()
    qtbot.waitUntil(lambda: worker.run_dir is not None, timeout=30_000)
    with qtbot.waitSignal(worker.done, timeout=30_000):
        worker.detach()
    assert worker.process.poll() is None and not failures  # still running, and nobody calls that a failure
    worker.process.kill()
    worker.process.wait()


def test_a_followed_run_takes_the_control_calls_of_a_worker_and_ignores_them(tmp_path):
    """The tabs talk to a followed run as to any worker (the Attention tab sets its probe); its process no longer
    reads control lines, so they do nothing, without an error."""
    follower = RunFollower(tmp_path, pid=1)
    follower.set_probe("To be, or not", 20)
    follower.clear_probe()
    follower.pause()
    follower.resume()
    assert not follower.can_pause and follower.process is None
