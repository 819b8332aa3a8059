"""A run's metrics.jsonl read back as the events the trainer emitted: StepMetrics, EvalMetrics and a
classifier's ClassifyMetrics.

One way in for every reader: a live run's events, a resumed run's history and an overlaid run's curves all reach
a plot as the same records.

    history = read_metric_events(run_dir / "metrics.jsonl")
    tail = MetricsTail(run_dir / "metrics.jsonl")   # a file that is still growing
    new_events = tail.read_new()                     # what was appended since the last call
"""
from __future__ import annotations

import json
import warnings
from dataclasses import MISSING, asdict, fields
from pathlib import Path

from . import events as ev

MetricEvent = ev.StepMetrics | ev.EvalMetrics | ev.ClassifyMetrics
KINDS: dict[str, type[MetricEvent]] = {"step": ev.StepMetrics, "eval": ev.EvalMetrics,
                                       "classify": ev.ClassifyMetrics}
KIND_OF = {cls: kind for kind, cls in KINDS.items()}
# The JSON values each field annotation takes. A bool is not a number here (Python makes it an int).
ACCEPTS = {"int": (int,), "float": (int, float), "float | None": (int, float, type(None)), "bool": (bool,),
           "list[str]": (list,), "list[float]": (list,), "list[list[int]]": (list,)}


def metric_record(event: MetricEvent) -> dict:
    """The metrics.jsonl record of an event: {"kind": "step"|"eval", ...its fields}."""
    return {"kind": KIND_OF[type(event)], **asdict(event)}


def metric_event(record: dict) -> MetricEvent:
    """One metrics.jsonl record as its event; ValueError for anything else (a field missing or of the wrong type),
    so a garbled record never reaches a plot."""
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        raise ValueError("not a metrics record")
    cls = KINDS[record["kind"]]
    for f in fields(cls):
        if f.name not in record:
            if f.default is MISSING:
                raise ValueError(f"no {f.name}")
            continue
        value = record[f.name]
        if isinstance(value, bool) != (f.type == "bool") or not isinstance(value, ACCEPTS.get(str(f.type), object)):
            raise ValueError(f"{f.name} = {value!r}")
    return cls.from_json(record)


def read_metric_events(path: Path) -> list[MetricEvent]:
    """Every record of a metrics file (none if it does not exist)."""
    return MetricsTail(path).read_new()


class MetricsTail:
    """Follows a metrics file as the trainer appends to it. A line not yet ended is left for the next read; a line
    that cannot be read (a crash can leave one torn, a disk can garble bytes) is skipped with a warning naming it."""

    def __init__(self, path: Path):
        self.path, self.offset, self.line_number = Path(path), 0, 0

    def read_new(self) -> list[MetricEvent]:
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
        for line in whole.split(b"\n")[:-1]:
            self.line_number += 1
            if not line.strip():
                continue
            try:  # decoded line by line: one bad byte costs its line, not the file
                events.append(metric_event(json.loads(line.decode("utf-8"))))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                warnings.warn(f"{self.path}, line {self.line_number}: not a metrics record (cut short by a crash, "
                              "or garbled); skipped.", stacklevel=2)
        return events
