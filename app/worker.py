"""Training on a QThread, with the engine's events handed to the GUI in batches.

The trainer calls its subscribers on the training thread, possibly thousands of times a second. Emitting a
queued signal per event would flood the GUI's event loop, so events go into a lock-protected buffer instead
(appending never waits on the GUI), and a timer on the GUI thread drains it ten times a second.
"""
from __future__ import annotations

import gc
import sys
import threading
from itertools import groupby

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from lmcore import events as ev

from .cpu_cores import use_training_cores

FLUSH_INTERVAL_MS = 100  # 10 Hz, in step with the plots' refresh: cheap for the event loop
# A thread waiting for Python's lock forces the holder to hand it over after this long (Python's default: 5 ms).
# The GUI thread takes and drops the lock dozens of times a repaint, and the training thread needs it between
# operations, so a shorter interval lets it start its next operation sooner. Measured with the bench's pairs taking
# turns: 0.920 and 0.931 of headless at 0.5 ms, 0.914 at 5 ms, 0.919 at 0.1 ms; a gain of a percent at most,
# within the noise (docs/performance.md).
LOCK_SWITCH_INTERVAL_S = 0.0005


class EventBuffer:
    """Events from the training thread, kept until the GUI takes them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._events: list[object] = []

    def append(self, event: object) -> None:
        with self._lock:
            self._events.append(event)

    def take(self) -> list[object]:
        with self._lock:
            events, self._events = self._events, []
        return events


class TrainerRunner(QObject):
    """The part that lives on the training thread: runs the trainer to its end, then says so."""

    returned = Signal(str)

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer

    @Slot()
    def run(self) -> None:
        use_training_cores()
        self.returned.emit(self.trainer.run())  # Trainer.run reports every error as a Failed event


class TrainingWorker(QObject):
    """The GUI's handle on one training run. Lives on the GUI thread; its signals arrive there, in the order the
    engine emitted the events. Other tabs may listen too (e.g. `other_events` for attention probes)."""

    preparing = Signal(object)  # the latest lmcore.events.Preparing of a batch
    started = Signal(object)  # Started
    steps = Signal(list)  # [StepMetrics, ...]
    evals = Signal(list)  # [EvalMetrics, ...]
    checkpoint_saved = Signal(object)  # CheckpointSaved
    paused = Signal(object)  # Paused
    resumed = Signal(object)  # Resumed
    finished = Signal(object)  # Finished (status "finished" or "stopped")
    failed = Signal(object)  # Failed
    other_events = Signal(list)  # events of types this worker does not know, batched
    done = Signal()  # the thread has ended and every event has been delivered

    def __init__(self, trainer, parent: QObject | None = None):
        super().__init__(parent)
        self.trainer = trainer
        self._buffer = EventBuffer()
        trainer.subscribe(self._buffer.append)
        self._batched = {ev.StepMetrics: self.steps, ev.EvalMetrics: self.evals}
        self._single = {ev.Started: self.started, ev.CheckpointSaved: self.checkpoint_saved,
                        ev.Paused: self.paused, ev.Resumed: self.resumed, ev.Finished: self.finished,
                        ev.Failed: self.failed}
        self._thread = QThread(self)
        self._runner = TrainerRunner(trainer)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        self._runner.returned.connect(self._thread.quit)
        self._thread.finished.connect(self._on_thread_finished)
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_INTERVAL_MS)
        self._flush_timer.timeout.connect(self.flush)

    @property
    def run_dir(self):
        return self.trainer.folder.path

    def start(self) -> None:
        sys.setswitchinterval(LOCK_SWITCH_INTERVAL_S)  # for the whole process, which now trains beside a GUI
        # While the run trains, what the app built before it (PyTorch's and Qt's modules, the window) is left out
        # of garbage collection. A full collection walks every object, 0.1-0.25 s with Python's lock held, which
        # stops training and the event loop; the GUI thread's collector (app.main) made two in a 55 s replayed run.
        # Unfrozen when the run ends, so that garbage among those objects is still collected then.
        gc.freeze()
        self._flush_timer.start()
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    # Thread-safe requests, honoured by the trainer within one step; the outcome arrives as an event.
    def pause(self) -> None:
        self.trainer.request_pause()

    def resume(self) -> None:
        self.trainer.request_resume()

    def stop(self) -> None:
        self.trainer.request_stop()

    def flush(self) -> None:
        """Deliver the buffered events: runs of metrics as one list each, control events one by one."""
        for kind, group in groupby(self._buffer.take(), key=self._route):
            events = list(group)
            if kind is ev.Preparing:
                self.preparing.emit(events[-1])  # progress messages supersede each other
            elif kind in self._batched:
                self._batched[kind].emit(events)
            elif kind in self._single:
                for event in events:
                    self._single[kind].emit(event)
            else:
                self.other_events.emit(events)

    def _route(self, event: object) -> type | None:
        kind = type(event)
        known = kind is ev.Preparing or kind in self._batched or kind in self._single
        return kind if known else None

    def _on_thread_finished(self) -> None:
        gc.unfreeze()
        self._flush_timer.stop()
        self.flush()
        self.done.emit()
