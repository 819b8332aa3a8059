"""What the window costs training: the baby-gpt-char preset trained by `lmcore train` (headless, in a process of
its own, as a user would run it from a terminal) and inside the window (offscreen, Start pressed as a user would).

    python bench/gui_overhead.py [--steps 300] [--repeats 3] [--corpus FILE]
    python bench/gui_overhead.py --ab gui|plots|busy [--steps 1000]
    python bench/gui_overhead.py --gui-asleep [--steps 300] [--repeats 3]
    python bench/gui_overhead.py --replay [--steps 600] [--repeats 3]
    python bench/gui_overhead.py --ticks [--repeats 3] [--qt-thread-pool]

Prints the tokens/s of each (the first step excluded: it warms up; evaluations are excluded by the trainer),
their ratio (target >= 0.95), and how late a 10 ms QTimer fires on the GUI thread while the window trains (max and
p99; target p99 < 50 ms). The two trainings run at the same time, each in a process of its own, taking turns: one
trains alone for SLICE_S seconds while the other is stopped (SIGSTOP), then the other way round, and the time a
process was stopped is taken out of its training time. So the machine's drift (10% over minutes on a shared
machine) falls on both alike; two runs one after the other differed by that much. (POSIX only, for SIGSTOP.)

--ab trains once in the window, switching the GUI thread (put to sleep) or the plots (hidden) off every few seconds,
and prints the speed with and without: a cost read within one run, free of the machine's drift between runs.
`--ab busy` instead adds BUSY_MS of Python on the GUI thread every 100 ms, every other few seconds: what a share
of a core of GUI work costs training.

--gui-asleep runs the comparison with the window's GUI thread asleep for 98% of each second while it trains
(nothing painted): what the window's process and training thread cost, apart from the GUI's work.

--replay trains once headless, then shows that run in the window again and again, its step events replayed at the
pace they came by a stand-in that trains nothing, and prints how busy the GUI thread was: the window's own work,
measured without the training beside it, so a fraction of the throughput ratio's noise (a millisecond of GUI work
costs training about two, see docs/performance.md).

--ticks times the live plots' refresh in the shown window alone: REFRESH_TICKS refreshes, each after STEPS_PER_TICK
new steps of a made-up run and painted at once, and prints the CPU a tick takes on the GUI thread and in all of the
process's threads. No training, no timers and no start-up: the steadiest figure to compare code by (within a few
percent between runs). --qt-thread-pool lets Qt paint with its pool of threads, as the app did before
keep_painting_on_the_gui_thread (for --ticks and --replay).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.cpu_cores import keep_painting_on_the_gui_thread, use_one_core  # noqa: E402
from app.main import collect_garbage_on_the_gui_thread  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.plots import DETAILS_EVERY_TICKS  # noqa: E402
from app.resources import PRESETS_DIR, SAMPLE_CORPUS  # noqa: E402
from app.style import apply_theme  # noqa: E402
from lmcore import events as ev  # noqa: E402
from lmcore.config import RunConfig, config_to_dict, load_config  # noqa: E402
from lmcore.runs import RunFolder  # noqa: E402

PRESET = PRESETS_DIR / "baby-gpt-char.toml"
TIMER_MS = 10


def headless_command(overrides: list[str], runs_dir: Path) -> list[str]:
    """`lmcore train`, as from a terminal."""
    command = [sys.executable, "-m", "lmcore.cli", "train", str(PRESET), "--quiet", "--runs-dir", str(runs_dir)]
    for override in overrides:
        command += ["--set", override]
    return command


def headless(overrides: list[str], runs_dir: Path) -> Path:
    """`lmcore train` in a fresh process, to its end; the run's folder."""
    subprocess.run(headless_command(overrides, runs_dir), check=True)
    (run_dir,) = runs_dir.iterdir()
    return run_dir


@dataclass
class WindowRun:
    run_dir: Path
    ticks: list[float]  # perf_counter at each tick of the 10 ms timer while training
    gui_cpu_s: float  # CPU seconds the GUI thread used while training
    arrivals: list[tuple[float, int]]  # (perf_counter, step) as each batch of steps reached the GUI


@contextmanager
def shown_window(runs_dir: Path, corpus: Path, work: Path):
    """The main window at 1280x800, with its settings and presets in `work`; deleted afterwards, else each repeat
    leaves a window behind, with its timers and objects (slower GC)."""
    window = MainWindow(runs_dir, corpus=corpus, settings=QSettings(str(work / "bench.ini"), QSettings.IniFormat),
                        user_presets_dir=work / "presets")
    window.resize(1280, 800)
    window.show()
    try:
        yield window
    finally:
        window.close()
        window.deleteLater()
        QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def in_window(config, corpus: Path, runs_dir: Path, work: Path, on_training=None) -> WindowRun:
    """Set the form as a user would, press Start, and time a 10 ms timer until the run ends. `on_training` is
    called with the window when training starts."""
    with shown_window(runs_dir, corpus, work) as window:
        return _trained_in(window, config, on_training)


def _trained_in(window, config, on_training) -> WindowRun:
    form, tab = window.train_tab.form, window.train_tab
    form.preset.setCurrentIndex(form.preset.findText(PRESET.stem))
    form.editors["train.max_steps"].setValue(config.train.max_steps)
    form.editors["train.eval_interval"].setValue(config.train.eval_interval)
    window_config = form.config()
    assert window_config is not None, form.errors
    window_config.runs_dir = config.runs_dir  # where runs go is the window's business
    assert config_to_dict(window_config) == config_to_dict(config), "the window would train something else"

    ticks: list[float] = []
    gui_cpu: list[float] = []  # the GUI thread's CPU seconds when training starts and ends
    timer = QTimer(timerType=Qt.PreciseTimer, interval=TIMER_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def on_started(_) -> None:
        gui_cpu.append(time.thread_time())
        timer.start()
        if on_training:
            on_training(window)

    def on_finished(_) -> None:
        gui_cpu.append(time.thread_time())
        timer.stop()

    arrivals: list[tuple[float, int]] = []
    tab.training_started.connect(lambda worker: (
        worker.started.connect(on_started), worker.finished.connect(on_finished),
        worker.steps.connect(lambda events: arrivals.append((time.perf_counter(), events[-1].step)))))
    loop = QEventLoop()
    ended: list[Path] = []
    tab.training_ended.connect(lambda run_dir: (ended.append(run_dir), loop.quit()))
    tab.start_button.click()
    loop.exec()
    return WindowRun(ended[0], ticks, gui_cpu[1] - gui_cpu[0], arrivals)


def run_settings(steps: int, corpus: Path, work: Path) -> tuple[list[str], RunConfig]:
    """The preset, `steps` long on `corpus`: as `--set` overrides for `lmcore train`, and as the RunConfig the
    window's form must produce. Tokenizers and encoded corpora are cached in `work`, for every run alike."""
    os.environ.setdefault("LMCORE_CACHE_DIR", str(work / "cache"))
    overrides = [f"train.max_steps={steps}", f"train.eval_interval={steps}",
                 f"data.train=[{json.dumps(str(corpus.resolve()))}]"]
    config = load_config(PRESET, overrides)
    config.runs_dir = str(work / "runs")
    return overrides, config


def put_gui_to_sleep(window) -> None:
    """From now on the GUI thread sleeps for all but 20 ms of each second (Python's lock free, nothing painted)."""
    sleeper = QTimer(window, interval=1000)
    sleeper.timeout.connect(lambda: time.sleep(0.98))
    sleeper.start()


SLICE_S = 2.0  # in a comparison, each process trains alone this long, then waits as long while the other trains


@dataclass
class Pause:
    start: float  # perf_counter
    end: float
    steps_done: int  # steps in the run's metrics file while it was paused


def steps_done(runs_dir: Path) -> int:
    files = list(runs_dir.glob("*/metrics.jsonl"))
    return sum('"kind": "step"' in line for line in files[0].open()) if files else 0


class TakingTurns:
    """Two processes that run one at a time, SLICE_S each in turn (the other stopped by SIGSTOP), until both have
    ended. Each one's pauses are kept, with how far its training had got, to be taken out of its training time."""

    def __init__(self, processes: dict[str, subprocess.Popen], runs_dirs: dict[str, Path]):
        self.processes, self.runs_dirs = processes, runs_dirs
        self.pauses: dict[str, list[Pause]] = {side: [] for side in processes}
        self._paused_since: dict[str, float] = {}

    def run(self) -> None:
        running, waiting = self.processes  # the first named runs first
        self._pause(waiting)
        try:
            while True:
                try:
                    self.processes[running].wait(timeout=SLICE_S)
                except subprocess.TimeoutExpired:
                    pass
                if waiting in self._paused_since:  # it has work left: its turn
                    if self.processes[running].poll() is None:
                        self._pause(running)
                    self._resume(waiting)
                    running, waiting = waiting, running
                elif self.processes[running].poll() is not None:
                    return
        except BaseException:  # e.g. Ctrl-C: no training goes on without the bench
            for process in self.processes.values():
                process.kill()
            raise
        finally:
            for side in list(self._paused_since):  # never leave a stopped process behind
                self._resume(side)

    def _pause(self, side: str) -> None:
        self.processes[side].send_signal(signal.SIGSTOP)
        self._paused_since[side] = time.perf_counter()

    def _resume(self, side: str) -> None:
        steps = steps_done(self.runs_dirs[side])  # read while it is surely stopped
        self.processes[side].send_signal(signal.SIGCONT)
        self.pauses[side].append(Pause(self._paused_since.pop(side), time.perf_counter(), steps))


def throughput(run_dir: Path, pauses: list[Pause]) -> float:
    """Tokens per second of training time, from the run's metrics file: from the first step (which warms up) to
    the last, less the time its process was paused in between."""
    steps = [r for r in RunFolder(run_dir).read_metrics() if r["kind"] == "step"]
    first, last = steps[0], steps[-1]
    paused = sum(p.end - p.start for p in pauses if 1 <= p.steps_done < len(steps))
    return (last["tokens"] - first["tokens"]) / (last["elapsed"] - first["elapsed"] - paused)


def lateness_ms(ticks: list[float], pauses: list[Pause]) -> list[float]:
    """How late each tick of the 10 ms timer came, but for the ticks that waited out a pause of the process."""
    ticks = np.array(ticks)
    late = np.maximum(np.diff(ticks) * 1000 - TIMER_MS, 0.0)
    if not pauses:
        return list(late)
    starts, ends = np.array([p.start for p in pauses]), np.array([p.end for p in pauses])
    # Pauses are sorted and apart: the gap before a tick overlaps one if the last pause to start before the tick
    # ends after the tick before it.
    last = np.searchsorted(starts, ticks[1:]) - 1
    spans_pause = (last >= 0) & (ends[np.maximum(last, 0)] > ticks[:-1])
    return list(late[~spans_pause])


def paused_between(pauses: list[Pause], start: float, end: float) -> float:
    return sum(max(0.0, min(p.end, end) - max(p.start, start)) for p in pauses)


@dataclass
class Comparison:
    headless: float  # tokens/s
    window: float
    late_ms: list[float]  # how late each tick of the 10 ms timer came
    gui_busy: float  # share of one core


def compare(steps: int, corpus: Path, work: Path, repeat: int, gui_asleep: bool = False) -> Comparison:
    """Train `steps` steps with `lmcore train` and in the window, each in a process of its own, taking turns every
    SLICE_S seconds: the machine's drift (often 10% over minutes here) falls on both alike. Every other repeat,
    the window takes the first turn."""
    overrides, _ = run_settings(steps, corpus, work)
    pair = work / f"pair-{repeat}"
    runs_dirs = {"headless": pair / "headless", "window": pair / "window"}
    commands = {
        "headless": headless_command(overrides, runs_dirs["headless"]),
        "window": [sys.executable, str(Path(__file__).resolve()), "--window-run", str(pair), "--steps", str(steps),
                   "--corpus", str(corpus)] + (["--gui-asleep"] if gui_asleep else []),
    }
    order = ["window", "headless"] if repeat % 2 else ["headless", "window"]
    processes = {side: subprocess.Popen(commands[side]) for side in order}
    turns = TakingTurns(processes, runs_dirs)
    turns.run()
    for side, process in processes.items():
        if process.returncode:
            raise RuntimeError(f"the {side} training failed (exit status {process.returncode}); see its output above")
    (headless_run,) = runs_dirs["headless"].iterdir()
    window = WindowRun(**json.loads((pair / "window.json").read_text()))
    pauses = turns.pauses["window"]
    trained_s = window.ticks[-1] - window.ticks[0] - paused_between(pauses, window.ticks[0], window.ticks[-1])
    return Comparison(throughput(headless_run, turns.pauses["headless"]), throughput(Path(window.run_dir), pauses),
                      lateness_ms(window.ticks, pauses), window.gui_cpu_s / trained_s)


def train_in_window(steps: int, corpus: Path, work: Path, gui_asleep: bool) -> None:
    """A comparison's window side (in a process of its own): train, then write the WindowRun to work/window.json."""
    _, config = run_settings(steps, corpus, work)
    run = in_window(config, corpus.resolve(), work / "window", work, put_gui_to_sleep if gui_asleep else None)
    (work / "window.json").write_text(json.dumps(asdict(run), default=str))


class ReplayTrainer:
    """Stands in for a Trainer: emits a finished run's step events at the pace they came, and trains nothing."""

    def __init__(self, source_run: Path, run_dir: Path):
        records = RunFolder(source_run).read_metrics()
        fields = list(ev.StepMetrics.__dataclass_fields__)
        self.steps = [ev.StepMetrics(**{f: r[f] for f in fields}) for r in records if r["kind"] == "step"]
        self.tokens_per_step = self.steps[1].tokens - self.steps[0].tokens
        self.folder = RunFolder(run_dir)
        self._subscribers = []

    def subscribe(self, callback) -> None:
        self._subscribers.append(callback)

    def request_stop(self) -> None:
        pass

    request_pause = request_resume = request_stop

    def _emit(self, event) -> None:
        for callback in self._subscribers:
            callback(event)

    def run(self) -> str:
        self._emit(ev.Started(self.folder.path, "cpu", 0, len(self.steps), 0, self.tokens_per_step, 0.0))
        start = time.perf_counter() - self.steps[0].elapsed
        for step in self.steps:
            time.sleep(max(0.0, start + step.elapsed - time.perf_counter()))
            self._emit(step)
        self._emit(ev.Finished(len(self.steps), "finished", None, self.folder.path))
        return "finished"


def replayed_in_window(source_run: Path, work: Path, repeat: int) -> tuple[float, float]:
    """Show `source_run` training again in a window, replayed; the shares of one core that the GUI thread, and the
    whole process (Qt's helper threads too; the stand-in trainer sleeps), used."""
    runs_dir = work / f"replay-{repeat}"
    (runs_dir / source_run.name).mkdir(parents=True)
    times = []  # (thread_time, process_time, perf_counter) when the run starts and ends
    with shown_window(runs_dir, SAMPLE_CORPUS, work) as window:
        tab = window.train_tab
        mark = lambda _: times.append((time.thread_time(), time.process_time(), time.perf_counter()))  # noqa: E731
        tab.training_started.connect(lambda worker: (worker.started.connect(mark), worker.finished.connect(mark)))
        loop = QEventLoop()
        tab.training_ended.connect(lambda _: loop.quit())
        tab.train(ReplayTrainer(source_run, runs_dir / source_run.name))
        loop.exec()
    (thread0, process0, wall0), (thread1, process1, wall1) = times
    return (thread1 - thread0) / (wall1 - wall0), (process1 - process0) / (wall1 - wall0)


REFRESH_TICKS = 600
STEPS_PER_TICK = 3  # baby-gpt-char's pace on a 2-core machine (about 30 steps a second), at the plots' 10 Hz


def refresh_cost(work: Path, repeat: int) -> tuple[float, float]:
    """The CPU milliseconds one refresh of the live plots takes in the shown window, painting included: on the GUI
    thread, and in all of the process's threads (Qt's own included)."""
    rng = np.random.default_rng(repeat)
    steps = [ev.StepMetrics(step, 768 * step, 1.2 + 2.5 / (1 + step / 300) + 0.15 * rng.standard_normal(),
                            1e-3 * min(1.0, step / 100), 0.5 + 0.2 * rng.random(), 24_000 + 800 * rng.standard_normal(),
                            0.03 * step) for step in range(1, REFRESH_TICKS * STEPS_PER_TICK + 1)]
    runs_dir = work / f"ticks-{repeat}"
    with shown_window(runs_dir, SAMPLE_CORPUS, work) as window:
        _wait(0.3)  # laid out and painted
        plots = window.train_tab.plots
        plots.begin_live_run(runs_dir / "live", max_steps=2000, tokens_per_step=768)
        thread0, process0 = time.thread_time(), time.process_time()
        for tick in range(REFRESH_TICKS):
            plots.add_steps(steps[tick * STEPS_PER_TICK:(tick + 1) * STEPS_PER_TICK])
            plots.refresh(details=tick % DETAILS_EVERY_TICKS == 0)
            QApplication.processEvents()  # paints what the refresh changed
        thread1, process1 = time.thread_time(), time.process_time()
    return 1000 * (thread1 - thread0) / REFRESH_TICKS, 1000 * (process1 - process0) / REFRESH_TICKS


def _wait(seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def _busy_gui(window, busy: bool) -> None:
    """Every 100 ms, BUSY_MS of Python on the GUI thread (holding Python's lock, as painting does), or not."""
    load = window.findChild(QTimer, "bench-busy")
    if load is None:
        load = QTimer(window, objectName="bench-busy", interval=100)
        load.timeout.connect(lambda: _spin(BUSY_MS / 1000))
    load.start() if busy else load.stop()


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


# What --ab switches off (off=True) and on again, every AB_PERIOD_S seconds of one window run.
AB_PERIOD_S = 4.0
BUSY_MS = 3.0
AB_SWITCHES = {
    # the GUI thread sleeps (Python's lock free, nothing painted): what the window's activity costs in all
    "gui": lambda window, off: off and QTimer.singleShot(0, lambda: time.sleep(AB_PERIOD_S - 0.05)),
    # the plots hidden (they stop refreshing, as behind another tab): what the live plots cost
    "plots": lambda window, off: window.train_tab.plots.setVisible(not off),
    # the reverse: extra GUI work switched on (3% of a core), with the plots hidden so that they add nothing
    "busy": lambda window, off: (window.train_tab.plots.hide(), _busy_gui(window, off)),
}


def switched_in_window(switch: str, steps: int, corpus: Path, work: Path) -> tuple[float, float]:
    """One window run with `switch` off and on in turns; the tokens/s of the steps trained with it on, and off.
    Free of the machine's drift, which a comparison of separate runs is not. Needs the QApplication."""
    _, config = run_settings(steps, corpus, work)
    flips: list[tuple[float, bool]] = []  # (perf_counter, switched off)

    def on_training(window) -> None:
        flipper = QTimer(window, interval=int(AB_PERIOD_S * 1000))
        flipper.timeout.connect(lambda: (flips.append((time.perf_counter(), not flips[-1][1])),
                                         AB_SWITCHES[switch](window, flips[-1][1])))
        flips.append((time.perf_counter(), False))
        AB_SWITCHES[switch](window, False)
        flipper.start()

    run = in_window(config, corpus.resolve(), work / "window", work, on_training)
    records = [r for r in RunFolder(run.run_dir).read_metrics() if r["kind"] == "step"]
    # The trainer's clock against perf_counter: a step reaches the GUI after it ends, at the soonest right away.
    elapsed = {r["step"]: r["elapsed"] for r in records}
    start = min(t - elapsed[step] for t, step in run.arrivals)
    flip_times = np.array([t for t, _ in flips])
    totals = {False: [0.0, 0.0], True: [0.0, 0.0]}  # tokens, seconds
    for previous, record in zip(records, records[1:]):
        when = start + record["elapsed"]
        k = np.searchsorted(flip_times, when) - 1
        if k < 0 or when - flip_times[k] < 0.5:  # the half second after a switch belongs to neither
            continue
        totals[flips[k][1]][0] += record["tokens"] - previous["tokens"]
        totals[flips[k][1]][1] += record["elapsed"] - previous["elapsed"]
    return totals[False][0] / totals[False][1], totals[True][0] / totals[True][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS)
    parser.add_argument("--json", action="store_true", help="print each pair's figures as a line of JSON only")
    parser.add_argument("--ab", choices=list(AB_SWITCHES),
                        help="instead: one window run with the GUI thread (gui) or the plots (plots) switched off "
                             f"every {AB_PERIOD_S:.0f} s, or {BUSY_MS:.0f} ms of GUI work every 100 ms switched on "
                             "(busy), and the training speed with and without")
    parser.add_argument("--gui-asleep", action="store_true",
                        help="diagnostic: the window's GUI thread sleeps 98%% of each second while it trains")
    parser.add_argument("--replay", action="store_true",
                        help="instead: how busy the GUI thread is while the window shows a headless run replayed")
    parser.add_argument("--ticks", action="store_true",
                        help="instead: the CPU one refresh of the live plots takes in the window, painting included")
    parser.add_argument("--qt-thread-pool", action="store_true",
                        help="diagnostic, with --ticks or --replay: Qt paints with its pool of threads")
    parser.add_argument("--window-run", type=Path, help=argparse.SUPPRESS)  # a comparison's window side, in FOLDER
    args = parser.parse_args()

    work = args.window_run or Path(tempfile.mkdtemp(prefix="gui-overhead-"))
    if not (args.window_run or args.ab or args.replay or args.ticks):
        compare_and_print(args, work)
        return
    use_one_core()  # as lm-workbench does on its GUI thread
    if not args.qt_thread_pool:
        keep_painting_on_the_gui_thread()
    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    _collector = collect_garbage_on_the_gui_thread()  # as lm-workbench does
    if args.window_run:
        train_in_window(args.steps, args.corpus, work, args.gui_asleep)
    elif args.ab:
        live, switched_off = switched_in_window(args.ab, args.steps, args.corpus, work)
        if args.ab == "busy":
            print(f"baby-gpt-char, {args.steps} steps in one window (plots hidden), {BUSY_MS:.0f} ms of Python on "
                  f"the GUI thread every 100 ms, every other {AB_PERIOD_S:.0f} s: {live:,.0f} tokens/s without it, "
                  f"{switched_off:,.0f} with it ({switched_off / live - 1:+.1%})")
        else:
            print(f"baby-gpt-char, {args.steps} steps in one window, {args.ab} off every other {AB_PERIOD_S:.0f} s: "
                  f"{live:,.0f} tokens/s with it, {switched_off:,.0f} without ({switched_off / live - 1:+.1%})")
    elif args.ticks:
        costs = [refresh_cost(work, repeat) for repeat in range(args.repeats)]
        pool = "with Qt's thread pool" if args.qt_thread_pool else "painting on the GUI thread"
        for name, column in (("GUI thread", 0), ("all threads", 1)):
            print(f"{REFRESH_TICKS} refreshes of the live plots, {STEPS_PER_TICK} new steps each, {pool}: {name} "
                  f"{statistics.median(c[column] for c in costs):.3f} ms of CPU a refresh (median; "
                  f"{', '.join(f'{c[column]:.3f}' for c in costs)})")
    else:
        overrides, _ = run_settings(args.steps, args.corpus, work)
        source_run = headless(overrides, work / "source")
        shares = [replayed_in_window(source_run, work, repeat) for repeat in range(args.repeats)]
        for name, column in (("GUI thread", 0), ("whole process", 1)):
            print(f"baby-gpt-char, {args.steps} steps trained headless, replayed in the window {len(shares)} times: "
                  f"{name} busy {statistics.median(s[column] for s in shares):.2%} of one core (median; "
                  f"{', '.join(f'{s[column]:.2%}' for s in shares)})")


def compare_and_print(args, work: Path) -> None:
    results = []
    for repeat in range(args.repeats):
        results.append(compare(args.steps, args.corpus, work, repeat, args.gui_asleep))
        c = results[-1]
        print(json.dumps(asdict(c)) if args.json else
              f"headless {c.headless:,.0f} tokens/s, in the window {c.window:,.0f} tokens/s "
              f"(ratio {c.window / c.headless:.3f})", flush=True)
    if args.json:
        return
    ratios = sorted(c.window / c.headless for c in results)
    late_ms = [ms for c in results for ms in c.late_ms]
    diagnostic = " (diagnostic: the window's GUI thread asleep 98% of the time)" if args.gui_asleep else ""
    print(f"\nbaby-gpt-char, {args.steps} steps, {len(results)} pairs, each pair's two processes taking turns every "
          f"{SLICE_S:.0f} s{diagnostic}")
    print(f"headless (lmcore train): {statistics.median(c.headless for c in results):,.0f} tokens/s (median)")
    print(f"in the window:           {statistics.median(c.window for c in results):,.0f} tokens/s (median)")
    print(f"ratio:                   {statistics.median(ratios):.3f}   (target >= 0.95; the median pair; pairs "
          f"{ratios[0]:.3f}-{ratios[-1]:.3f})")
    print(f"10 ms timer lateness while training: max {max(late_ms):.1f} ms, "
          f"p99 {np.percentile(late_ms, 99):.1f} ms   (target p99 < 50 ms; {len(late_ms):,} ticks)")
    print(f"GUI thread busy while training: {statistics.median(c.gui_busy for c in results):.1%} of one core")


if __name__ == "__main__":
    main()
