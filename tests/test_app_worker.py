"""The training worker: events cross from the training thread in batches, in order, without the trainer ever
waiting for the GUI."""
from __future__ import annotations

import gc
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lmcore import events as ev

from app.worker import LOCK_SWITCH_INTERVAL_S, TrainingWorker


@dataclass
class ProbeResult:  # an event type the worker does not know, like an attention probe's snapshot
    step: int


class ScriptedTrainer:
    """Emits a scripted list of events from run(), on whatever thread runs it, as fast as it can."""

    def __init__(self, script, hold: threading.Event | None = None):
        self.script, self.hold = script, hold
        self.subscribers, self.requests = [], []
        self.returned = threading.Event()
        self.folder = type("Folder", (), {"path": Path("run")})()

    def subscribe(self, callback):
        self.subscribers.append(callback)

    def run(self):
        for event in self.script:
            for callback in self.subscribers:
                callback(event)
        if self.hold is not None:
            self.hold.wait(10)
        self.returned.set()
        return "finished"

    def request_pause(self):
        self.requests.append("pause")

    def request_resume(self):
        self.requests.append("resume")

    def request_stop(self):
        self.requests.append("stop")


def step(i):
    return ev.StepMetrics(i, i * 10, 1.0, 1e-3, 1.0, 100.0, i * 0.01)


def test_a_flood_of_events_arrives_in_a_few_batches_in_order(qtbot):
    script = [ev.Started(Path("run"), "CPU", 10, 5000, 0, 10, 1.0), *(step(i) for i in range(1, 2501)),
              ev.EvalMetrics(2500, 25000, 1.0, 2.0, 7.4, None, True), ProbeResult(2500),
              *(step(i) for i in range(2501, 5001)), ev.Finished(5000, "finished", 2.0, Path("run"))]
    worker = TrainingWorker(ScriptedTrainer(script))
    received, step_batches = [], []
    worker.started.connect(lambda e: received.append(e))
    worker.steps.connect(lambda batch: (step_batches.append(batch), received.extend(batch)))
    worker.evals.connect(received.extend)
    worker.other_events.connect(received.extend)
    worker.finished.connect(lambda e: received.append(e))
    with qtbot.waitSignal(worker.done, timeout=10_000):
        worker.start()
    assert received == script  # every event, in the engine's order, unknown ones included
    assert len(step_batches) < 100  # batched: far fewer signals than the 5000 steps


def test_training_beside_the_gui_hands_pythons_lock_over_quickly(qtbot):
    """Training sets a shorter switch interval than Python's 5 ms for its process, so that the training thread
    waits less for the lock the GUI thread holds while it paints (a percent at most, docs/performance.md)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        worker = TrainingWorker(ScriptedTrainer([ev.Finished(0, "finished", None, Path("run"))]))
        with qtbot.waitSignal(worker.done, timeout=10_000):
            worker.start()
        assert sys.getswitchinterval() == LOCK_SWITCH_INTERVAL_S < 0.005
    finally:
        sys.setswitchinterval(previous)


def test_what_lives_when_training_starts_is_left_out_of_garbage_collection_until_it_ends(qtbot):
    """A full collection walks every object the process holds (0.1-0.25 s with Python's lock held, which stops
    training); the app's modules and window, made before the run, are kept out of it while the run trains."""
    gc.unfreeze()
    made_before = {"a window": []}
    collected = lambda: any(o is made_before for o in gc.get_objects())  # noqa: E731 - the generations GC walks
    assert collected()
    try:
        worker = TrainingWorker(ScriptedTrainer([ev.Finished(0, "finished", None, Path("run"))]))
        with qtbot.waitSignal(worker.done, timeout=10_000):
            worker.start()
            assert not collected() and gc.get_freeze_count() > 0  # the run's end reaches the GUI thread later
        assert collected() and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_unknown_events_go_out_batched_through_other_events(qtbot):
    worker = TrainingWorker(ScriptedTrainer([ProbeResult(1), ProbeResult(2), step(3), ProbeResult(4)]))
    batches = []
    worker.other_events.connect(batches.append)
    with qtbot.waitSignal(worker.done, timeout=10_000):
        worker.start()
    assert batches == [[ProbeResult(1), ProbeResult(2)], [ProbeResult(4)]]


def test_the_trainer_never_waits_for_the_gui(qtbot):
    """With the GUI thread busy (not running its event loop), the trainer still emits everything and returns."""
    trainer = ScriptedTrainer([step(i) for i in range(1, 20_001)])
    worker = TrainingWorker(trainer)
    worker.start()
    started = time.perf_counter()
    while not trainer.returned.is_set() and time.perf_counter() - started < 10:
        time.sleep(0.01)  # the GUI thread blocked: no events processed
    assert trainer.returned.is_set()
    batches = []
    worker.steps.connect(batches.append)
    qtbot.waitUntil(lambda: sum(map(len, batches)) == 20_000, timeout=10_000)
    qtbot.waitUntil(lambda: not worker.is_running(), timeout=10_000)


def test_pause_resume_and_stop_are_forwarded_to_the_trainer(qtbot):
    hold = threading.Event()
    trainer = ScriptedTrainer([], hold)
    worker = TrainingWorker(trainer)
    worker.start()
    worker.pause()
    worker.resume()
    worker.stop()
    assert trainer.requests == ["pause", "resume", "stop"]
    assert worker.is_running()
    with qtbot.waitSignal(worker.done, timeout=10_000):
        hold.set()
    assert not worker.is_running()
