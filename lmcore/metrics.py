"""A run's metrics.jsonl read back as the events the trainer emitted: StepMetrics and EvalMetrics.

One way in for every reader: a live run's events, a resumed run's history and an overlaid run's curves all reach
a plot as the same records.

    history = read_metric_events(run_dir / "metrics.jsonl")
    tail = MetricsTail(run_dir / "metrics.jsonl")   # a file that is still growing
    new_events = tail.read_new()                     # what was appended since the last call
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from . import events as ev

KINDS = {"step": ev.StepMetrics, "eval": ev.EvalMetrics}


def metric_event(record: dict) -> ev.StepMetrics | ev.EvalMetrics:
    """One metrics.jsonl record ({"kind": "step"|"eval", ...fields}) as its event."""
    return KINDS[record["kind"]].from_json(record)


def read_metric_events(path: Path) -> list[ev.StepMetrics | ev.EvalMetrics]:
    """Every record of a metrics file (none if it does not exist)."""
    return MetricsTail(path).read_new()


class MetricsTail:
    """Follows a metrics file as the trainer appends to it. A line not yet ended is left for the next read; a line
    that cannot be read (a crash can leave one torn) is skipped with a warning that names it."""

    def __init__(self, path: Path):
        self.path, self.offset, self.line_number = Path(path), 0, 0

    def read_new(self) -> list[ev.StepMetrics | ev.EvalMetrics]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        if self.offset > 0 and len(data) == 0 and self.path.stat().st_size < self.offset:
            self.offset = self.line_number = 0  # rewritten shorter (a resume drops the steps it redoes)
            return self.read_new()
        whole = data[:data.rfind(b"\n") + 1]
        self.offset += len(whole)
        events = []
        for line in whole.splitlines():
            self.line_number += 1
            if not line.strip():
                continue
            try:
                events.append(metric_event(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                warnings.warn(f"{self.path}, line {self.line_number}: not a metrics record; skipped.", stacklevel=2)
        return events
