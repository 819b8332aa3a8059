"""`lmcore train ... --events -`: a training process that a supervisor (the GUI) drives through two pipes.

stdout carries every trainer event as one JSON line (lmcore.events.event_to_line); stdin carries control lines,
one command each (docs/event-protocol.md):

    pause | resume | stop                   the trainer's request_pause / request_resume / request_stop
    probe {"text": "...", "every": N}       save an attention snapshot every N steps (AttentionSaved events)
    probe off
    detach                                  the supervisor leaves, the run goes on: its output goes to train.log

The end of stdin, or a stdout that nobody reads any more, means the supervisor died: the run stops cleanly.
"""
from __future__ import annotations

import json
import os
import sys
import threading

from . import events as ev
from .attention import AttentionProbe


def report_failure(message: str) -> None:
    """A Failed event for an error before the run folder exists (a bad config, nothing to resume)."""
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes events
        print(ev.event_to_line(ev.Failed(0, message, None)), flush=True)


def stream_events(trainer, resumed: bool) -> None:
    """Write `trainer`'s events to stdout, starting with Launched, and obey control lines from stdin on a daemon
    thread. Rank 0 alone does: under torchrun the other ranks inherit the same stdin and must not read it."""
    if not trainer.dist.is_main:
        return
    stream = EventStream(trainer)
    trainer.subscribe(stream)
    stream(ev.Launched(trainer.folder.path, os.getpid(), resumed))
    # A reader of our own, not sys.stdin: a daemon thread blocked inside sys.stdin can hang interpreter shutdown.
    controls = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
    threading.Thread(target=stream.obey, args=(controls,), name="lmcore-controls", daemon=True).start()


class EventStream:
    """A trainer subscriber writing events to stdout, and the interpreter of the supervisor's control lines."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.attached = True  # a supervisor reads the events and writes the control lines
        self.probe: int | None = None  # the trainer's handle of the attention probe, while one is on

    def __call__(self, event: ev.Event) -> None:
        if not self.attached:
            return
        try:
            sys.stdout.write(ev.event_to_line(event) + "\n")
            sys.stdout.flush()  # the supervisor shows each event as it comes
        except OSError:  # BrokenPipeError: the supervisor died (as when stdin ends), unless it had detached
            if self.attached:
                self._output_to_log()
                self.trainer.request_stop()

    def obey(self, controls) -> None:
        """Follow the control lines until `detach`; at the end of input the supervisor died: stop the run."""
        for line in controls:
            if line.strip():
                self.control(line.strip())
            if not self.attached:
                return
        self.trainer.request_stop()

    def control(self, line: str) -> None:
        """Carry out one control line; warn on stderr about one that is not a command."""
        command, _, argument = line.partition(" ")
        # Under torchrun only rank 0 pauses; the other ranks wait for it at their next collective.
        actions = {"pause": self.trainer.request_pause, "resume": self.trainer.request_resume,
                   "stop": self.trainer.request_stop, "detach": self._output_to_log}
        try:
            if command == "probe":
                self._set_probe(argument.strip())
            elif command in actions and not argument:
                actions[command]()
            else:
                raise ValueError("not a command")
        except ValueError as exc:
            print(f"warning: ignoring the control line {line!r}: {exc}", file=sys.stderr, flush=True)

    def _set_probe(self, argument: str) -> None:
        """`off`, or JSON {"text": ..., "every": N}: replace the attention probe (running in this process)."""
        probe = None
        if argument != "off":
            try:
                settings = json.loads(argument)
                text, every = settings["text"], settings["every"]
            except (KeyError, TypeError):
                raise ValueError('expected probe {"text": "...", "every": N} or probe off') from None
            if not isinstance(text, str) or not isinstance(every, int):
                raise ValueError("the probe text must be a string and every an integer")
            probe = AttentionProbe(text, every, folder=self.trainer.folder.attention_dir)
        if self.probe is not None:
            self.trainer.remove_periodic(self.probe)
            self.probe = None
        if probe:
            self.probe = probe.attach(self.trainer)

    def _output_to_log(self) -> None:
        """Stop streaming, and send this process's stdout and stderr (file descriptors 1 and 2, so what C code
        writes too) to the run's train.log instead of pipes that nobody will read."""
        self.attached = False
        log = os.open(self.trainer.folder.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
