"""What the training plots show, without Qt: each run's metrics in growing numpy columns, its smoothed loss, and
which of its curves changed since they were drawn.

Runs reach the plots as StepMetrics and EvalMetrics events, live or read back from a run's metrics file
(lmcore.metrics). Adding events only copies them into columns; the plots draw, at their own pace, what is stale.
Reading a run back (load_series) is slow for a long run, so the plots call it on a thread of their own.

Runs with different tokenizers cannot be ranked by their loss per token (a word is worth several characters), so
the validation curve can show bits per character instead (VAL_AXES), where the run evaluated its whole validation
split.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from lmcore.errors import LMCoreError
from lmcore.events import ClassifyMetrics, EvalMetrics, StepMetrics
from lmcore.metrics import metric_event
from lmcore.runs import RunFolder

# text_loss and teacher_loss: the two parts of a distilled run's loss (lmcore.distill), NaN in any other run's steps
STEP_FIELDS = ("step", "tokens", "elapsed", "loss", "lr", "grad_norm", "tokens_per_s", "text_loss", "teacher_loss")
# NaN: no bits per character (part of the split evaluated, or a masked LM), no accuracy (a run that predicts text)
EVAL_FIELDS = ("step", "tokens", "elapsed", "val_loss", "val_bits_per_char", "val_accuracy")
X_AXES = {"step": "Step", "tokens": "Tokens seen", "elapsed": "Training time (s)"}  # the x columns, and their labels
# The validation curve's y choices (evaluation columns), and their axis labels
VAL_AXES = {"val_loss": "loss (nats/token)", "val_bits_per_char": "bits per character"}
DEFAULT_SMOOTHING = 0.6
# A distilled run's loss parts, each drawn smoothed as its loss is, and their legend labels
LOSS_PARTS = {"text_loss": "CE (labels)", "teacher_loss": "KL (teacher)"}
CURVES = ("raw_loss", "smoothed_loss", *LOSS_PARTS, "val_loss", "lr", "grad_norm", "tokens_per_s",
          "val_accuracy")  # each run's
DETAIL_CURVES = ("lr", "grad_norm", "tokens_per_s")  # the small plots'
STEP_CURVES = ("raw_loss", "smoothed_loss", *LOSS_PARTS, *DETAIL_CURVES)  # the curves new steps extend
EVAL_CURVES = ("val_loss", "val_accuracy")  # ... and new evaluations
READ_BATCH = 4096  # events read from a metrics file before they are copied into columns and let go


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
    """One run's metrics, as plotted: training steps, evaluations and the smoothed loss (and for a distilled run,
    its smoothed parts)."""

    def __init__(self, name: str, smoothing: float = DEFAULT_SMOOTHING):
        self.name = name
        self.tokenizer: str | None = None  # what its tokens are (tokenizer_of); None while unknown
        self.steps = Columns(STEP_FIELDS)
        self.evals = Columns(EVAL_FIELDS)
        self.smoothed = SmoothedLoss(smoothing)
        self.smoothed_parts = self._smoothed_parts(smoothing)
        self.classified: list[ClassifyMetrics] = []  # a classifier's evaluations (classify_plots.py draws them)
        self.classifier = False  # then classify_plots.py draws its accuracy, beside its F1, rather than the plots

    @classmethod
    def from_events(cls, name: str, events: Iterable, smoothing: float = DEFAULT_SMOOTHING) -> RunSeries:
        """From a run's StepMetrics and EvalMetrics, live or read back from its metrics file, copied into columns
        a batch at a time."""
        series = cls(name, smoothing)
        steps, evals = [], []
        for event in events:
            (steps if isinstance(event, StepMetrics) else evals).append(event)
            if len(steps) == READ_BATCH:
                series.add_steps(steps)
                steps.clear()
        series.add_steps(steps)
        series.add_evals([e for e in evals if isinstance(e, EvalMetrics)])
        series.classified = [e for e in evals if isinstance(e, ClassifyMetrics)]
        series.classifier = bool(series.classified)
        return series

    def add_steps(self, events: list[StepMetrics]) -> None:
        rows = [tuple(getattr(event, name) for name in STEP_FIELDS) for event in events]  # None: NaN in a column
        self.steps.extend(rows)
        self.smoothed.extend(row[3] for row in rows)
        if self.is_distilled():  # a run has the parts at every step or at none
            for name, smoothed in self.smoothed_parts.items():
                smoothed.extend(getattr(event, name) for event in events)

    def add_evals(self, events: list[EvalMetrics]) -> None:
        self.evals.extend([tuple(_number(getattr(event, name)) for name in EVAL_FIELDS) for event in events])

    def set_smoothing(self, weight: float) -> None:
        self.smoothed = SmoothedLoss(weight)
        self.smoothed.extend(self.steps["loss"])
        self.smoothed_parts = self._smoothed_parts(weight)

    def _smoothed_parts(self, weight: float) -> dict[str, SmoothedLoss]:
        """The loss parts of the steps so far, smoothed; none for a run without a teacher."""
        parts = {name: SmoothedLoss(weight) for name in LOSS_PARTS}
        if self.is_distilled():
            for name, smoothed in parts.items():
                smoothed.extend(self.steps[name])
        return parts

    def is_distilled(self) -> bool:
        """Whether the run's steps have the two parts of a distilled run's loss."""
        return bool(np.isfinite(self.steps.bounds("text_loss")[0]))

    def evals_without(self, field: str) -> int:
        """How many evaluations have no value in this column (bits per character of part of the split)."""
        return int(np.isnan(self.evals[field]).sum())

    def sources(self, val_field: str = "val_loss") -> dict[str, tuple[Columns, Columns, str]]:
        """Where each curve takes its x (any of X_AXES) and its y (the named column) from; the validation curve's
        y is `val_field` (one of VAL_AXES)."""
        steps = self.steps
        return {"raw_loss": (steps, steps, "loss"), "smoothed_loss": (steps, self.smoothed.values, "loss"),
                "val_loss": (self.evals, self.evals, val_field), "lr": (steps, steps, "lr"),
                "grad_norm": (steps, steps, "grad_norm"), "tokens_per_s": (steps, steps, "tokens_per_s"),
                "val_accuracy": (self.evals, self.evals, "val_accuracy"),
                **{name: (steps, smoothed.values, "loss") for name, smoothed in self.smoothed_parts.items()}}

    def has_accuracy(self) -> bool:
        """Whether any evaluation measured accuracy (a masked LM's masked tokens, a classifier's texts)."""
        return self.evals_without("val_accuracy") < self.evals.size


def _number(value: float | None) -> float:
    return np.nan if value is None else value


def tokenizer_of(run_dir: Path) -> str | None:
    """What a run's tokens are, from its config.toml: the tokenizer's kind, and for subwords also their model and
    number (another vocabulary cuts the text into other pieces). None when the config cannot be read."""
    try:
        config = RunFolder(run_dir).load_config().tokenizer
    except (LMCoreError, OSError):  # not (or no longer) a run folder: its tokens are unknown
        return None
    if config.kind == "sentencepiece":
        return f"{config.kind} {config.model_type} {config.vocab_size}"
    return config.kind


def metric_events(path: Path) -> Iterator[StepMetrics | EvalMetrics]:
    """A metrics file's records as events (lmcore.metrics.metric_event), one at a time, skipping those that cannot
    be read, as lmcore.metrics.read_metric_events does; but that one's list holds all of a long run's events at
    once, and each garbage collection on the GUI thread went through them while the run was read."""
    try:
        # At once: a read per line, each letting go of Python's lock and taking it straight back, kept the GUI
        # thread waiting for the lock (docs/performance.md, the tenth look)
        data = path.read_bytes()
    except FileNotFoundError:  # no steps yet
        return
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):  # the last, unended, is still being written
        if not line.strip():
            continue
        try:
            yield metric_event(json.loads(line))
        except ValueError:  # torn by a crash, or garbled: one line lost, not the run
            warnings.warn(f"{path}, line {number}: not a metrics record; skipped.", stacklevel=2)


def load_series(run_dir: Path, smoothing: float = DEFAULT_SMOOTHING, metrics: bool = True) -> RunSeries:
    """A run as its metrics file and config have it (`metrics` False: its tokenizer alone). Slow for a long run:
    call it off the GUI thread."""
    run_dir = Path(run_dir)
    events = metric_events(RunFolder(run_dir).metrics_path) if metrics else []
    series = RunSeries.from_events(run_dir.name, events, smoothing)
    series.tokenizer = tokenizer_of(run_dir)
    return series


class ShownRuns(Mapping):
    """The runs shown, in the order shown (a stable legend), as a mapping from run folder to RunSeries; and which
    of each run's curves need drawing, with whether they only grew since (then only their new points need it)."""

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING):
        self.smoothing = smoothing
        self.val_field = "val_loss"  # the validation curve's y (VAL_AXES)
        self._series: dict[Path, RunSeries] = {}
        self._stale: dict[Path, dict[str, bool]] = {}
        self.on_change: Callable[[], None] = lambda: None  # called when a run or a curve is to be drawn again

    def __getitem__(self, path: Path) -> RunSeries:
        return self._series[path]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._series)

    def __len__(self) -> int:
        return len(self._series)

    def show(self, path: Path, events: list) -> None:
        """Show the run with these metric events, in place of what was shown of it."""
        self.put(path, RunSeries.from_events(path.name, events, self.smoothing))

    def put(self, path: Path, series: RunSeries) -> None:
        """Show the run as `series` (load_series built it, maybe with other smoothing), in place of what was."""
        if series.smoothed.weight != self.smoothing:  # changed while it was read
            series.set_smoothing(self.smoothing)
        self._series[path] = series
        self.mark_stale(path)

    def load(self, path: Path) -> None:
        """Show the run as its metrics file has it, read here and now."""
        self.put(path, load_series(path, self.smoothing))

    def set_tokenizer(self, path: Path, tokenizer: str | None) -> None:
        if path in self._series:
            self._series[path].tokenizer = tokenizer
            self.on_change()  # the y axis may change with it

    def tokenizers_differ(self) -> bool:
        """Whether the shown runs' tokens differ, as far as they are known: then their losses per token cannot be
        compared."""
        return len({series.tokenizer for series in self._series.values() if series.tokenizer}) > 1

    def any_distilled(self) -> bool:
        """Whether a shown run is distilled: then the legend says what its loss parts' lines are."""
        return any(series.is_distilled() for series in self._series.values())

    def any_accuracy(self) -> bool:
        """Whether a shown run other than a classifier measures accuracy (a masked LM's): then the plots show it."""
        return any(series.has_accuracy() and not series.classifier for series in self._series.values())

    def set_val_field(self, field: str) -> None:
        self.val_field = field
        self.mark_all_stale(curves=("val_loss",))

    def remove(self, path: Path) -> None:
        self._series.pop(path, None)
        self._stale.pop(path, None)
        self.on_change()

    def add_steps(self, path: Path, events: list[StepMetrics]) -> None:
        self._series[path].add_steps(events)
        self.mark_stale(path, curves=STEP_CURVES, grown=True)

    def add_evals(self, path: Path, events: list[EvalMetrics]) -> None:
        self._series[path].add_evals(events)
        self.mark_stale(path, curves=EVAL_CURVES, grown=True)

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
        self.on_change()

    def mark_all_stale(self, curves: tuple[str, ...] = CURVES) -> None:
        """Every run's `curves` are to be drawn afresh (another axis, scale or zoom)."""
        self.mark_stale(*self._series, curves=curves)

    def has_stale(self) -> bool:
        return any(self._stale.values())

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
            sources = series.sources(self.val_field)
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
