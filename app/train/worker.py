"""The GUI's handle on a training run that trains in a process of its own.

A TrainingWorker starts `lmcore train ... --events -` (or torchrun around it), reads the child's event stream on
a background thread (app/common/background.py) and forwards the events to the GUI thread as queued signals, batched so
that thousands of steps a second cannot flood the event loop. Pause, resume, stop and the attention probe go to
the child as control lines on its standard input (docs/event-protocol.md). The window never trains: whatever
kills training (an out-of-memory abort, a crash in a kernel, kill -9) ends the child, not the window, and the
run keeps its last checkpoint and its metrics.

A run that keeps training after its window closed is followed again by a later window through a RunFollower,
which reads the run's metrics.jsonl and status.json and emits the same signals.
"""
from __future__ import annotations

import collections
import fcntl
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from itertools import groupby
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from lmcore import events as ev
from lmcore.config import RunConfig, save_config
from lmcore.metrics import MetricsTail
from lmcore.runs import LIVE_STATUSES, RunFolder, is_alive

from ..common.background import start_in_background, stop_background

BATCH_INTERVAL_S = 0.1  # events reach the GUI at most 10 times a second (until deliver_every says otherwise)
PROMPT_S = 2.0  # after a control line, how long batches go every BATCH_INTERVAL_S, for its answer (StreamReader.hurry)
PIPE_BYTES = 1 << 20  # about a second of events at 4,500 steps a second (a step's line is ~230 bytes)
STDERR_LINES = 12  # the last lines of the child's error output shown when it dies
FOLLOW_INTERVAL_S = 0.5  # how often a followed run's files are read again


def train_command(args: list[str], processes: int = 1) -> list[str]:
    """`lmcore train ARGS --events -` with this Python, or under torchrun with one process per GPU."""
    lmcore = ["-m", "lmcore", "train", *args, "--events", "-"]
    if processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                *lmcore]
    return [sys.executable, *lmcore]


class TrainingWorker(QObject):
    """One training run, from start to the child's exit. Lives on the GUI thread; its signals arrive there, in the
    order the engine emitted the events."""

    launched = Signal(object)  # lmcore.events.Launched: the run folder is known
    preparing = Signal(object)  # the latest Preparing of a batch
    started = Signal(object)  # Started
    steps = Signal(list)  # [StepMetrics, ...]
    evals = Signal(list)  # [EvalMetrics, ...]
    classified = Signal(list)  # [ClassifyMetrics, ...]: a classifier's evaluations, each after its EvalMetrics
    checkpoint_saved = Signal(object)  # CheckpointSaved
    paused = Signal(object)  # Paused
    resumed = Signal(object)  # Resumed
    finished = Signal(object)  # Finished (status "finished" or "stopped")
    failed = Signal(object)  # Failed, also made up here when the child dies without saying why
    attention_saved = Signal(object)  # AttentionSaved
    done = Signal()  # the child has exited (or was detached) and every event has been delivered
    can_pause = True

    def __init__(self, command: list[str], parent: QObject | None = None, cleanup: Path | None = None):
        super().__init__(parent)
        self.command, self._cleanup = command, cleanup
        self.run_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.last_step = 0
        self._ended = False  # a Finished or Failed event arrived
        self._detached = False
        self._unsent: list[str] = []  # control lines given before the child started
        self._thread: QThread | None = None
        self._reader: StreamReader | None = None
        self._batched = {ev.StepMetrics: self.steps, ev.EvalMetrics: self.evals, ev.ClassifyMetrics: self.classified}
        self._single = {ev.Launched: self._on_launched, ev.Started: self.started.emit,
                        ev.CheckpointSaved: self.checkpoint_saved.emit, ev.Paused: self.paused.emit,
                        ev.Resumed: self.resumed.emit, ev.Finished: self._on_ended, ev.Failed: self._on_ended,
                        ev.AttentionSaved: self.attention_saved.emit}

    @classmethod
    def for_new_run(cls, config: RunConfig, runs_dir: Path, processes: int = 1,
                parent: QObject | None = None) -> TrainingWorker:
        """Train `config` from scratch (or fine-tune) in a new run folder under `runs_dir`."""
        handle, name = tempfile.mkstemp(prefix="lm-workbench-", suffix=".toml")
        os.close(handle)
        save_config(config, Path(name))  # the child reads it once, and writes its own copy into the run folder
        return cls(train_command([name, "--runs-dir", str(runs_dir)], processes), parent, cleanup=Path(name))

    @classmethod
    def for_resumed_run(cls, run_dir: Path, processes: int = 1, parent: QObject | None = None) -> TrainingWorker:
        worker = cls(train_command(["--resume", str(run_dir)], processes), parent)
        worker.run_dir = Path(run_dir)
        return worker

    def start(self) -> None:
        # A session of its own: Ctrl-C in the terminal that started the app does not reach the run, which saves and
        # stops when the window goes (end of its standard input) unless it was asked to keep training.
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
        for line in self._unsent:  # e.g. the attention tab's probe, set as the run was being started
            self._send(line)
        self._read(StreamReader(self.process), "training-events")

    def _read(self, reader: StreamReader | FollowReader, thread_name: str) -> None:
        """Start `reader` on a thread of its own; its batches and its end come back as queued signals."""
        self._reader = reader
        reader.batch.connect(self._deliver)
        reader.exited.connect(self._on_exited)
        self._thread = start_in_background(reader, thread_name)
        reader.start_reading.connect(reader.read_until_exit)
        reader.start_reading.emit()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    # ---- control lines, answered by the child within one step ----------------------------------
    def pause(self) -> None:
        self._ask("pause")

    def resume(self) -> None:
        self._ask("resume")

    def stop(self) -> None:
        self._ask("stop")

    def set_probe(self, text: str, every: int) -> None:
        self._send("probe " + json.dumps({"text": text, "every": every}))

    def clear_probe(self) -> None:
        self._send("probe off")

    def deliver_every(self, seconds: float) -> None:
        """Send the child's events on at most every `seconds`: the plots' pace, as they draw each batch as it comes.
        A followed run's files are read at a pace of their own (FOLLOW_INTERVAL_S)."""
        if isinstance(self._reader, StreamReader):
            self._reader.interval_s = seconds

    def detach(self) -> None:
        """Let the run train on after the window has gone: the child stops listening and writes to its train.log."""
        self._send("detach")
        self._close_input()
        self._detached = True
        if self._reader is not None:
            self._reader.detached = True

    def _ask(self, line: str) -> None:
        """A control line whose answer the user waits to see (Paused, Resumed, a stop's checkpoint): the reader
        sends it on within BATCH_INTERVAL_S, whatever the pace."""
        self._send(line)
        if isinstance(self._reader, StreamReader):
            self._reader.hurry()

    def _send(self, line: str) -> None:
        if self.process is None:
            self._unsent.append(line)
            return
        if self.process.stdin.closed:
            return
        try:
            self.process.stdin.write((line + "\n").encode("utf-8"))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):  # the child has gone; its exit is reported by the reader
            pass

    def _close_input(self) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass

    # ---- events from the child ----------------------------------------------------------------
    @Slot(list)
    def _deliver(self, events: list) -> None:
        """Runs of metrics as one list each, other events one by one, in the engine's order."""
        for kind, group in groupby(events, key=type):
            batch = list(group)
            if kind is ev.Preparing:
                self.preparing.emit(batch[-1])  # progress messages supersede each other
            elif kind in self._batched:
                self.last_step = batch[-1].step
                self._batched[kind].emit(batch)
            elif kind in self._single:
                for event in batch:
                    self._single[kind](event)

    def _on_launched(self, event) -> None:
        self.run_dir = Path(event.run_dir)
        if self._cleanup is not None:  # the run folder has its own config.toml now
            self._cleanup.unlink(missing_ok=True)
            self._cleanup = None
        self.launched.emit(event)

    def _on_ended(self, event) -> None:
        self._ended = True
        (self.finished if isinstance(event, ev.Finished) else self.failed).emit(event)

    @Slot(int, list)
    def _on_exited(self, code: int, stderr_tail: list) -> None:
        if not self._ended and not self._detached:
            self._report_death(code, stderr_tail)
        self._close_input()
        if self._cleanup is not None:
            self._cleanup.unlink(missing_ok=True)
        stop_background(self._thread)
        self.done.emit()

    def _report_death(self, code: int, stderr_tail: list[str]) -> None:
        """The child ended without a Finished or Failed event: killed, crashed, or out of memory in a kernel."""
        how = (f"was killed by signal {-code} ({signal.Signals(-code).name})" if -code in signal.valid_signals()
               else f"exited with code {code}")
        tail = "\n".join(stderr_tail)
        message = (f"The training process {how}." + (f" Its last output:\n{tail}\n" if tail else " It printed nothing. ")
                   + "Select the run in the runs list and press Resume to continue from its last checkpoint.")
        if self.run_dir is not None:
            folder = RunFolder(self.run_dir)
            status = folder.read_status()
            if status.get("status", "running") in LIVE_STATUSES:  # the child had no time to write its end
                folder.write_status("failed", message, step=status.get("step", 0))
        self.failed.emit(ev.Failed(self.last_step, message, self.run_dir))


def _make_roomy(fd: int) -> None:
    """Give the pipe room for PIPE_BYTES: the child blocks when it is full, and this reader empties it only ten times
    a second, or twice (deliver_every). Linux's default of 64 KiB fills in 0.1 s at 2,800 steps a second. Elsewhere it
    is left as it is."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size
        pass


class StreamReader(QObject):
    """On its own thread: reads the child's events (stdout) and error output (stderr) until both close, sends the
    events on in batches, then waits for the child's exit code."""

    start_reading = Signal()
    batch = Signal(list)
    exited = Signal(int, list)  # exit code (negative: killed by that signal), the last lines of stderr

    def __init__(self, process: subprocess.Popen):
        super().__init__()
        self.process = process
        self.detached = False  # set from the GUI thread: the child trains on, nobody waits for its exit
        self.interval_s = BATCH_INTERVAL_S  # the least time between batches, set from the GUI thread (deliver_every)
        self._hurried = threading.Event()  # set from the GUI thread: a control line went to the child (hurry)
        self._prompt_until = 0.0  # time.monotonic() until which batches go every BATCH_INTERVAL_S
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)

    @Slot()
    def read_until_exit(self) -> None:
        selector = selectors.DefaultSelector()
        for stream in (self.process.stdout, self.process.stderr):
            _make_roomy(stream.fileno())
            selector.register(stream, selectors.EVENT_READ, data=[b""])  # data: the line begun but not ended
        while selector.get_map():
            # What came since the last batch, or else the next line to come: after a quiet spell (starting,
            # evaluating, paused) an event goes on at once, and while steps stream in, this thread wakes (and
            # takes a core from training) once a batch, ten times a second or fewer, not once a step.
            events = self._read(selector, selector.select(0) or selector.select())
            if events:
                self.batch.emit(events)
                self._wait()
        while (code := self.process.poll()) is None and not self.detached:
            time.sleep(0.02)  # its streams have closed: it is about to exit
        self.exited.emit(0 if code is None else code, list(self.stderr_tail))

    def hurry(self) -> None:
        """A control line went to the child: end the wait for the next batch, and for PROMPT_S wait no longer than
        BATCH_INTERVAL_S, so that the child's answer shows within that however sparing the pace."""
        self._prompt_until = time.monotonic() + PROMPT_S
        self._hurried.set()

    def _wait(self) -> None:
        prompt = time.monotonic() < self._prompt_until
        self._hurried.wait(min(self.interval_s, BATCH_INTERVAL_S) if prompt else self.interval_s)
        self._hurried.clear()

    def _read(self, selector: selectors.BaseSelector, ready: list) -> list:
        """The events among the lines now readable (all that the pipe holds); error output goes to the tail kept for
        a failure report."""
        events = []
        for key, _ in ready:
            chunk = os.read(key.fd, PIPE_BYTES)
            if not chunk:
                selector.unregister(key.fileobj)
                chunk = b"\n"  # end of stream: what is left is a whole line
            *lines, key.data[0] = (key.data[0] + chunk).split(b"\n")
            if key.fileobj is self.process.stdout:
                events += self._events(lines)
            else:
                self.stderr_tail.extend(line.decode("utf-8", "replace") for line in lines if line.strip())
        return events

    def _events(self, lines: list[bytes]) -> list:
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                events.append(ev.event_from_line(line.decode("utf-8")))
            except ValueError:  # not an event (a library printing to stdout): keep it with the error output
                self.stderr_tail.append(line.decode("utf-8", "replace"))
        return events


class RunFollower(TrainingWorker):
    """A run that trains in a process this window did not start (it kept training after an earlier window closed):
    its metrics.jsonl and status.json are read as they grow, and reach the GUI as the same signals. Stop sends the
    process an interrupt, which saves a checkpoint and stops, as Ctrl-C does to `lmcore train`."""

    def __init__(self, run_dir: Path, pid: int, parent: QObject | None = None):
        super().__init__([], parent)
        self.run_dir, self.pid = Path(run_dir), pid

    def start(self) -> None:
        self._read(FollowReader(self.run_dir), "followed-run")

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGINT)
        except OSError:  # gone already: the reader reports how the run ended
            pass

    def _not_listening(self, *_args) -> None:
        """Pause, resume, probe and detach: a detached process no longer reads control lines."""

    pause = resume = set_probe = clear_probe = detach = _not_listening
    can_pause = False


class FollowReader(QObject):
    """On its own thread: the run's new metrics every FOLLOW_INTERVAL_S, until its status says it has ended or its
    process has gone."""

    start_reading = Signal()
    batch = Signal(list)
    exited = Signal(int, list)

    def __init__(self, run_dir: Path):
        super().__init__()
        self.folder = RunFolder(run_dir)

    @Slot()
    def read_until_exit(self) -> None:
        status = self.folder.read_status()
        self.batch.emit([ev.Launched(self.folder.path, int(status.get("pid", 0)), True), self._started(status)])
        tail = MetricsTail(self.folder.metrics_path)
        while True:
            events = tail.read_new()
            status = self.folder.read_status()
            ending = self._ending(status)
            if events or ending:
                self.batch.emit(events + ([ending] if ending else []))
            if ending:
                break
            time.sleep(FOLLOW_INTERVAL_S)
        self.exited.emit(0, [])

    def _started(self, status: dict) -> ev.Started:
        return ev.Started(self.folder.path, status.get("device", "?"), int(status.get("parameters", 0)),
                          int(status.get("max_steps", 0)), 0, int(status.get("tokens_per_step", 0)), 0.0)

    def _ending(self, status: dict):
        step, best = int(status.get("step", 0)), status.get("best_val_loss")
        state = status.get("status")
        if state in ("finished", "stopped"):
            return ev.Finished(step, state, best, self.folder.path)
        if state == "failed":
            return ev.Failed(step, status.get("message", ""), self.folder.path)
        if not is_alive(status):
            return ev.Failed(step, "The training process has gone without saving its end (it was killed, or its "
                                   "machine restarted). The run keeps its last checkpoint and its metrics: select "
                                   "it in the runs list and press Resume to continue.", self.folder.path)
        return None
