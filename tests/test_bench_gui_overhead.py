"""The GUI bench's comparison: two processes that take turns, and their pauses taken out of their training time.
Fake trainings (each step 20 ms of CPU work, timed as the trainer times them, pauses included) stand in for real
ones."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench import gui_overhead

STEP_S, TOKENS_PER_STEP, STEPS = 0.02, 100, 60
FAKE_TRAINING = f"""
import json, pathlib, sys, time
run = pathlib.Path(sys.argv[1]) / "run"
run.mkdir(parents=True)
start = time.perf_counter()
with open(run / "metrics.jsonl", "w") as metrics:
    for step in range(1, {STEPS + 1}):
        done = time.thread_time() + {STEP_S}  # work: a paused process does none
        while time.thread_time() < done:
            pass
        record = {{"kind": "step", "step": step, "tokens": step * {TOKENS_PER_STEP},
                   "elapsed": time.perf_counter() - start}}
        metrics.write(json.dumps(record) + "\\n")
        metrics.flush()
"""


def test_two_trainings_take_turns_and_their_pauses_are_not_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(gui_overhead, "SLICE_S", 0.25)
    runs_dirs = {side: tmp_path / side for side in ("first", "second")}
    processes = {side: subprocess.Popen([sys.executable, "-c", FAKE_TRAINING, str(folder)])
                 for side, folder in runs_dirs.items()}
    turns = gui_overhead.TakingTurns(processes, runs_dirs)
    began = time.perf_counter()
    turns.run()
    took = time.perf_counter() - began

    assert all(process.returncode == 0 for process in processes.values())
    # One at a time: together they took about as long as both trainings end to end
    assert took > 1.6 * STEPS * STEP_S
    for side, folder in runs_dirs.items():
        pauses = turns.pauses[side]
        assert len(pauses) >= 2, "each was paused while the other trained"
        assert all(p.end - p.start < 1.0 for p in pauses) and sum(p.end - p.start for p in pauses) > 0.4
        records = gui_overhead.RunFolder(folder / "run").read_metrics()
        with_pauses = (records[-1]["tokens"] - records[0]["tokens"]) / (records[-1]["elapsed"] - records[0]["elapsed"])
        rate = gui_overhead.throughput(folder / "run", pauses)
        # The rate while it ran (a step per 20 ms of work), not the rate with its pauses
        assert 0.8 * TOKENS_PER_STEP / STEP_S < rate < 1.05 * TOKENS_PER_STEP / STEP_S
        assert with_pauses < 0.75 * rate


def test_a_timer_tick_that_waited_out_a_pause_is_not_counted_late():
    pauses = [gui_overhead.Pause(1.0, 3.0, 10), gui_overhead.Pause(5.0, 7.0, 20)]
    ticks = [0.98, 0.99, 3.01, 3.02, 3.06, 7.2, 7.21]
    late = gui_overhead.lateness_ms(ticks, pauses)
    assert late == pytest.approx([0.0, 0.0, 30.0, 0.0])  # 0.98-0.99, 3.01-3.02, 3.02-3.06, 7.2-7.21: not across a pause
    assert gui_overhead.lateness_ms(ticks[:2], []) == pytest.approx([0.0])
