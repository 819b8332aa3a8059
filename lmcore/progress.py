"""How long a run has left, from its own pace: for the CLI's progress line and the window's."""
from __future__ import annotations

from collections import deque

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
