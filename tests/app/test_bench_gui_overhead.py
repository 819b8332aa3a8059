"""The GUI bench's own logic: two processes that take turns, a side stopped together with its descendants, and the
pauses taken out of its figures. Fake trainings (each step 20 ms of CPU work) stand in for real ones. Nothing here
depends on how fast the machine is."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import gui_overhead
from bench.gui_overhead import Pause

STEP_S, STEPS = 0.02, 60
FAKE_TRAINING = f"""
import json, pathlib, sys, time
run = pathlib.Path(sys.argv[1]) / "run"
run.mkdir(parents=True)
with open(run / "metrics.jsonl", "w") as metrics:
    for step in range(1, {STEPS + 1}):
        done = time.thread_time() + {STEP_S}  # work: a paused process does none
        while time.thread_time() < done:
            pass
        metrics.write(json.dumps({{"kind": "step", "step": step}}) + "\\n")
        metrics.flush()
"""
# A stand-in for the window: it starts a child in a session of its own, as the window starts its training
WINDOW_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_two_trainings_take_turns_until_both_end(tmp_path, monkeypatch):
    monkeypatch.setattr(gui_overhead, "SLICE_S", 0.25)
    runs_dirs = {side: tmp_path / side for side in ("first", "second")}
    processes = {side: subprocess.Popen([sys.executable, "-c", FAKE_TRAINING, str(folder)])
                 for side, folder in runs_dirs.items()}
    turns = gui_overhead.TakingTurns(processes, runs_dirs)
    turns.run()

    assert all(process.returncode == 0 for process in processes.values())
    for side, folder in runs_dirs.items():
        assert gui_overhead.steps_done(folder) == STEPS
        # Each needs 1.2 s of CPU, more than a slice of 0.25 s: the second waits first and after its first turn,
        # the first waits after each of its first two turns
        assert len(turns.pauses[side]) >= 2
    # One at a time: the pauses, in time order, alternate between the two
    by_start = sorted((p.start, side) for side, pauses in turns.pauses.items() for p in pauses)
    sides = [side for _, side in by_start]
    assert all(a != b for a, b in zip(sides, sides[1:], strict=False))


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def wait_for_state(pids: list[int], stopped: bool) -> list[str]:
    """The processes' states once all are stopped (or all are not), or after a generous while: signals are
    delivered asynchronously."""
    deadline = time.monotonic() + 10
    while True:
        states = [process_state(pid) for pid in pids]
        if all((state == "T") == stopped for state in states) or time.monotonic() > deadline:
            return states
        time.sleep(0.01)


def test_a_side_is_stopped_and_continued_with_its_descendants(tmp_path):
    window = subprocess.Popen([sys.executable, "-c", WINDOW_WITH_CHILD], stdout=subprocess.PIPE, text=True)
    child = int(window.stdout.readline())
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert gui_overhead.process_tree(window.pid) == [window.pid, child]
        turns = gui_overhead.TakingTurns({"window": window, "other": other},
                                         {"window": tmp_path / "window", "other": tmp_path / "other"})
        turns.pause("window")
        assert wait_for_state([window.pid, child], stopped=True) == ["T", "T"]
        assert process_state(other.pid) != "T"
        turns.resume("window")
        assert "T" not in wait_for_state([window.pid, child], stopped=False)
        assert len(turns.pauses["window"]) == 1
    finally:
        gui_overhead.send_signal([window.pid, child, other.pid], signal.SIGKILL)
        window.wait()
        other.wait()


def test_throughput_leaves_out_the_pauses_between_its_first_and_last_step(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # 100 tokens a second of training, but for a 10 s pause after step 3
    elapsed = [1.0, 2.0, 3.0, 14.0, 15.0]
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"kind": "step", "step": step, "tokens": 100 * step, "loss": 1.0, "lr": 1e-3, "grad_norm": 1.0,
                    "tokens_per_s": 100.0, "elapsed": seconds}) + "\n"
        for step, seconds in enumerate(elapsed, start=1)))
    pauses = [Pause(0.0, 5.0, 0),  # before the first step, which warms up: not in the measured span
              Pause(20.0, 30.0, 3), Pause(40.0, 47.0, 5)]  # the last, after the last step: not either
    assert gui_overhead.throughput(run, pauses) == pytest.approx(100.0)


def test_time_paused_within_a_span():
    pauses = [Pause(1.0, 3.0, 0), Pause(5.0, 7.0, 0)]
    assert gui_overhead.paused_between(pauses, 2.0, 6.0) == pytest.approx(2.0)
    assert gui_overhead.paused_between(pauses, 3.0, 5.0) == 0.0


def test_a_timer_tick_that_waited_out_a_pause_is_not_counted_late():
    pauses = [Pause(1.0, 3.0, 10), Pause(5.0, 7.0, 20)]
    ticks = [0.98, 0.99, 3.01, 3.02, 3.06, 7.2, 7.21]
    late = gui_overhead.lateness_ms(ticks, pauses)
    assert late == pytest.approx([0.0, 0.0, 30.0, 0.0])  # 0.98-0.99, 3.01-3.02, 3.02-3.06, 7.2-7.21: not across a pause
    assert gui_overhead.lateness_ms(ticks[:2], []) == pytest.approx([0.0])
