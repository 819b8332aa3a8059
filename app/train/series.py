"""What the training plots show, without Qt: each run's metrics in growing numpy columns, its smoothed loss, and
which of its curves changed since they were drawn.

Runs reach the plots as StepMetrics and EvalMetrics events, live or read back from a run's metrics file
(lmcore.metrics). Adding events only copies them into columns; the plots draw, at their own pace, what is stale.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from lmcore.events import EvalMetrics, StepMetrics
from lmcore.metrics import read_metric_events
from lmcore.runs import RunFolder

STEP_FIELDS = ("step", "tokens", "elapsed", "loss", "lr", "grad_norm", "tokens_per_s")
EVAL_FIELDS = ("step", "tokens", "elapsed", "val_loss")
X_AXES = {"step": "Step", "tokens": "Tokens seen", "elapsed": "Training time (s)"}  # the x columns, and their labels
DEFAULT_SMOOTHING = 0.6
CURVES = ("raw_loss", "smoothed_loss", "val_loss", "lr", "grad_norm", "tokens_per_s")  # each run's
DETAIL_CURVES = ("lr", "grad_norm", "tokens_per_s")  # the small plots'
STEP_CURVES = ("raw_loss", "smoothed_loss", *DETAIL_CURVES)  # the curves new steps extend


class Columns:
    """Named float columns that grow by doubling, so appending a batch is cheap and reading is a view. Each
    column's bounds are kept up to date as rows arrive, so that following the data costs the same at any length."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self._data = np.empty((len(names), 1024))
        self.size = 0
        self._low, self._high, self._low_positive = (np.full(len(names), np.inf), np.full(len(names), -np.inf),
                                                     np.full(len(names), np.inf))

    def extend(self, rows: list[tuple]) -> None:
        if not rows:
            return
        needed = self.size + len(rows)
        if needed > self._data.shape[1]:
            grown = np.empty((len(self.names), max(needed, 2 * self._data.shape[1])))
            grown[:, :self.size] = self._data[:, :self.size]
            self._data = grown
        block = np.asarray(rows, dtype=float).T
        self._data[:, self.size:needed] = block
        self.size = needed
        # fmin and fmax skip NaN (a missing value)
        self._low = np.fmin(self._low, np.fmin.reduce(block, axis=1))
        self._high = np.fmax(self._high, np.fmax.reduce(block, axis=1))
        self._low_positive = np.fmin(self._low_positive, np.fmin.reduce(np.where(block > 0, block, np.inf), axis=1))

    def bounds(self, name: str, positive: bool = False) -> tuple[float, float]:
        """The column's lowest and highest value (`positive`: of its values above 0); inf, -inf if none."""
        i = self.names.index(name)
        return (self._low_positive[i] if positive else self._low[i]), self._high[i]

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[self.names.index(name), :self.size]


class SmoothedLoss:
    """TensorBoard's debiased exponential moving average, extended incrementally as points arrive."""

    def __init__(self, weight: float):
        self.weight = weight
        self.values = Columns(("loss",))
        self._average, self._count = 0.0, 0

    def extend(self, losses) -> None:
        w, average, count, out = self.weight, self._average, self._count, []
        for loss in losses:
            average = average * w + (1.0 - w) * loss
            count += 1
            out.append((average / (1.0 - w ** count),))
        self._average, self._count = average, count
        self.values.extend(out)


class RunSeries:
    """One run's metrics, as plotted: training steps, evaluations and the smoothed loss."""

    def __init__(self, name: str, smoothing: float = DEFAULT_SMOOTHING):
        self.name = name
        self.steps = Columns(STEP_FIELDS)
        self.evals = Columns(EVAL_FIELDS)
        self.smoothed = SmoothedLoss(smoothing)

    @classmethod
    def from_events(cls, name: str, events: list, smoothing: float = DEFAULT_SMOOTHING) -> RunSeries:
        """From a run's StepMetrics and EvalMetrics, live or read back from its metrics file (lmcore.metrics)."""
        series = cls(name, smoothing)
        series.add_steps([e for e in events if isinstance(e, StepMetrics)])
        series.add_evals([e for e in events if isinstance(e, EvalMetrics)])
        return series

    def add_steps(self, events: list[StepMetrics]) -> None:
        rows = [tuple(getattr(event, name) for name in STEP_FIELDS) for event in events]
        self.steps.extend(rows)
        self.smoothed.extend(row[3] for row in rows)

    def add_evals(self, events: list[EvalMetrics]) -> None:
        self.evals.extend([tuple(getattr(event, name) for name in EVAL_FIELDS) for event in events])

    def set_smoothing(self, weight: float) -> None:
        self.smoothed = SmoothedLoss(weight)
        self.smoothed.extend(self.steps["loss"])

    def sources(self) -> dict[str, tuple[Columns, Columns, str]]:
        """Where each curve takes its x (any of X_AXES) and its y (the named column) from."""
        steps = self.steps
        return {"raw_loss": (steps, steps, "loss"), "smoothed_loss": (steps, self.smoothed.values, "loss"),
                "val_loss": (self.evals, self.evals, "val_loss"), "lr": (steps, steps, "lr"),
                "grad_norm": (steps, steps, "grad_norm"), "tokens_per_s": (steps, steps, "tokens_per_s")}


class ShownRuns(Mapping):
    """The runs shown, in the order shown (a stable legend), as a mapping from run folder to RunSeries; and which
    of each run's curves need drawing, with whether they only grew since (then only their new points need it)."""

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING):
        self.smoothing = smoothing
        self._series: dict[Path, RunSeries] = {}
        self._stale: dict[Path, dict[str, bool]] = {}

    def __getitem__(self, path: Path) -> RunSeries:
        return self._series[path]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._series)

    def __len__(self) -> int:
        return len(self._series)

    def show(self, path: Path, events: list) -> None:
        """Show the run with these metric events, in place of what was shown of it."""
        self._series[path] = RunSeries.from_events(path.name, events, self.smoothing)
        self.mark_stale(path)

    def load(self, path: Path) -> None:
        """Show the run as its metrics file has it."""
        self.show(path, read_metric_events(RunFolder(path).metrics_path))

    def remove(self, path: Path) -> None:
        self._series.pop(path, None)
        self._stale.pop(path, None)

    def add_steps(self, path: Path, events: list[StepMetrics]) -> None:
        self._series[path].add_steps(events)
        self.mark_stale(path, curves=STEP_CURVES, grown=True)

    def add_evals(self, path: Path, events: list[EvalMetrics]) -> None:
        self._series[path].add_evals(events)
        self.mark_stale(path, curves=("val_loss",), grown=True)

    def set_smoothing(self, weight: float) -> None:
        self.smoothing = weight
        for series in self._series.values():
            series.set_smoothing(weight)
        self.mark_stale(*self._series)

    def mark_stale(self, *paths: Path, curves: tuple[str, ...] = CURVES, grown: bool = False) -> None:
        """`grown`: the curves only gained points at their end (else they are drawn afresh)."""
        for path in paths:
            stale = self._stale.setdefault(path, {})
            for name in curves:
                stale[name] = grown and stale.get(name, True)

    def mark_all_stale(self, curves: tuple[str, ...] = CURVES) -> None:
        """Every run's `curves` are to be drawn afresh (another axis, scale or zoom)."""
        self.mark_stale(*self._series, curves=curves)

    def take_stale(self, due: frozenset[str]) -> Iterator[tuple[Path, RunSeries, list[tuple[str, bool]]]]:
        """Each run with curves among `due` to draw, and those curves with whether they only grew; taken, they
        count as drawn. A run at a time, in the order shown, so that the caller draws each before the next."""
        for path in [p for p in self._series if p in self._stale]:
            stale = self._stale[path]
            names = [name for name in stale if name in due]
            if names:
                yield path, self._series[path], [(name, stale.pop(name)) for name in names]

    def bounds(self, curves: tuple[str, ...], x_key: str,
               log_y: bool = False) -> tuple[float, float, float, float] | None:
        """x0, x1, y0, y1 of these curves' points in every run, y as log10 on a log axis (of the values above 0);
        None when there are none. From the columns' running bounds, the same cost at any length."""
        xs, ys = [], []
        for series in self._series.values():
            sources = series.sources()
            for name in curves:
                x_columns, y_columns, field = sources[name]
                low, high = y_columns.bounds(field, positive=log_y)
                if not low <= high:  # no points (or, on a log axis, none > 0)
                    continue
                x = x_columns[x_key]
                xs += [x[0], x[-1]]
                ys += list(np.log10([low, high])) if log_y else [low, high]
        if not xs or not np.isfinite(ys).all():
            return None
        return min(xs), max(xs), min(ys), max(ys)
