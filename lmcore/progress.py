"""A run's progress as people read it: how long it has left (from its own pace), its model FLOPs utilisation, and
the one-line live progress bar of `lmcore train` and of `lmcore.train(...)` in a notebook without tqdm."""
from __future__ import annotations

import sys
import time
from collections import deque

from . import events as ev

PACE_WINDOW_S = 30.0  # the step pace is the mean over this much recent wall-clock time


class RemainingTime:
    """Seconds left: the steps left at the recent pace, plus the evaluations left at their measured length.

    The last step's speed alone jumps with every step and leaves evaluations out (a run with 175 s left said
    "44 s left"). Feed it the wall-clock time of each batch of steps and of each evaluation, and say when the run
    pauses: a wait is not its pace."""

    def __init__(self, max_steps: int, eval_interval: int, window_s: float = PACE_WINDOW_S):
        self.max_steps, self.eval_interval, self.window_s = max_steps, eval_interval, window_s
        self.marks: deque[tuple[float, int]] = deque()  # (time, step) since the last pause or evaluation
        self.pace: tuple[float, int] = (0.0, 0)  # seconds and steps measured before the current marks
        self.eval_seconds: list[float] = []

    def steps(self, now: float, step: int) -> None:
        self.marks.append((now, step))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.window_s:
            self.marks.popleft()

    def evaluated(self, now: float, step: int) -> None:
        """An evaluation ended at `now`: it took the time since the last step."""
        if self.marks:
            self.eval_seconds.append(max(now - self.marks[-1][0], 0.0))
        self._restart(now, step)

    def paused(self) -> None:
        self._restart(None, None)

    def _restart(self, now: float | None, step: int | None) -> None:
        """Keep the pace measured so far and start measuring afresh (from (now, step) when given)."""
        if len(self.marks) >= 2:
            (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
            self.pace = (t1 - t0, s1 - s0)
        self.marks.clear()
        if now is not None and step is not None:
            self.marks.append((now, step))

    def seconds_per_step(self) -> float | None:
        if len(self.marks) >= 2 and self.marks[-1][1] > self.marks[0][1]:
            (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
            return (t1 - t0) / (s1 - s0)
        seconds, steps = self.pace
        return seconds / steps if steps else None

    def evaluations_left(self, step: int) -> int:
        """The trainer evaluates every eval_interval steps and at the last step."""
        if step >= self.max_steps:
            return 0
        every = self.eval_interval
        return self.max_steps // every - step // every + (1 if self.max_steps % every else 0)

    def seconds_left(self, step: int) -> float | None:
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        per_eval = sum(self.eval_seconds) / len(self.eval_seconds) if self.eval_seconds else 0.0
        return per_step * (self.max_steps - step) + per_eval * self.evaluations_left(step)


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation: the share of the devices' peak (Started.peak_flops) that training's FLOPs use;
    None where the peak or the model's FLOPs are unknown."""
    if not peak_flops or flops_per_token <= 0:
        return None
    return tokens_per_s * flops_per_token / peak_flops


def duration_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def step_readout(event: ev.StepMetrics, flops_per_token: float, peak_flops: float | None) -> str:
    """Loss, tokens/s and MFU (where known) of a step: "loss 2.4213 31,502 tok/s MFU 12.5%"."""
    used = mfu(event.tokens_per_s, flops_per_token, peak_flops)
    return (f"loss {event.loss:.4f} {event.tokens_per_s:,.0f} tok/s"
            + (f" MFU {used:.1%}" if used is not None else ""))


def started_text(event: ev.Started) -> str:
    return (f"run {event.run_dir}\n  {event.parameters:,} parameters on {event.device}, "
            f"{event.tokens_per_step:,} tokens/step, steps {event.start_step}..{event.max_steps}")


def eval_text(event: ev.EvalMetrics) -> str:
    bpc = f" bpc {event.val_bits_per_char:.3f}" if event.val_bits_per_char is not None else ""
    accuracy = f" accuracy {event.val_accuracy:.1%}" if event.val_accuracy is not None else ""  # a masked LM's
    return (f"step {event.step}: val loss {event.val_loss:.4f} ppl {event.val_perplexity:.2f}{bpc}{accuracy}"
            + (" (best)" if event.best else ""))


def ending_text(event: ev.Finished | ev.Failed) -> str:
    if isinstance(event, ev.Failed):
        return f"failed at step {event.step}: {event.message}"
    best = f"{event.best_val_loss:.4f}" if event.best_val_loss is not None else "n/a"
    return f"{event.status} at step {event.step}; best val loss {best}; run folder {event.run_dir}"


class ProgressBar:
    """A one-line live progress bar on stderr: step, loss, tokens/s, MFU, ETA. Evaluations get their own line.
    `quiet` shows a failure alone: that is never hidden. The line is redrawn in place on a terminal, or where
    `overwrite` says so (a notebook's output, which understands a carriage return); elsewhere (a log file) each
    redraw is a line of its own, at most ten a second."""

    def __init__(self, stream=None, quiet: bool = False, overwrite: bool | None = None):
        self.stream, self.max_steps, self.start_step, self.last_draw = stream or sys.stderr, 1, 0, 0.0
        self.quiet, self.overwrite, self.width = quiet, overwrite, 0
        self.flops_per_token = 0.0
        self.peak_flops: float | None = None  # Started's, for MFU

    def __call__(self, event) -> None:
        if self.quiet and not isinstance(event, ev.Failed):
            return
        if isinstance(event, ev.Preparing):
            fraction = f" {event.fraction:4.0%}" if event.fraction is not None else ""
            self._line(f"{event.message}{fraction}")
        elif isinstance(event, ev.Started):
            self.max_steps, self.start_step = event.max_steps, event.start_step
            self.flops_per_token, self.peak_flops = event.flops_per_token, event.peak_flops
            self._print(started_text(event))
        elif isinstance(event, ev.StepMetrics):
            now = time.monotonic()
            if now - self.last_draw < 0.1 and event.step != self.max_steps:
                return
            self.last_draw = now
            self._line(self.step_text(event))
        elif isinstance(event, ev.EvalMetrics):
            self._print(eval_text(event))
        elif isinstance(event, (ev.Finished, ev.Failed)):
            self._print(ending_text(event))

    def step_text(self, event: ev.StepMetrics) -> str:
        done = event.step / self.max_steps
        bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
        step_time = self.step_time(event)
        eta = duration_text((self.max_steps - event.step) * step_time) if step_time else "?"
        return (f"[{bar}] {event.step}/{self.max_steps} "
                f"{step_readout(event, self.flops_per_token, self.peak_flops)} ETA {eta}")

    def step_time(self, event: ev.StepMetrics) -> float:
        done = event.step - self.start_step
        return event.elapsed / done if done > 0 else 0.0

    def _in_place(self) -> bool:
        return self.stream.isatty() if self.overwrite is None else self.overwrite

    def _line(self, text: str) -> None:
        if self._in_place():  # padded rather than erased with an escape code, which a notebook would show
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _print(self, text: str) -> None:
        self.stream.write(("\r" + " " * self.width + "\r" if self._in_place() and self.width else "") + text + "\n")
        self.width = 0
        self.stream.flush()
