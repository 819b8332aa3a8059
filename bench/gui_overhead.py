"""What the window costs training: the baby-gpt-char preset trained by `lmcore train` (headless, as a user would run
it from a terminal) and from the window (offscreen, Start pressed as a user would; the window starts `lmcore train`
as a child process of its own and shows its events).

    python bench/gui_overhead.py [--steps 300] [--repeats 3] [--corpus FILE] [--json]
    python bench/gui_overhead.py --ticks [--repeats 3] [--qt-thread-pool]

Prints, for each pair of runs and over all pairs: the tokens/s of each (the first step excluded: it warms up;
evaluations are excluded by the trainer) and their ratio (target >= 0.98, the median pair); the window process's CPU
time over the training time (all of its threads, not its training child's); and the seconds from Start pressed to
the first step reaching the window (target <= 3 s), with whether the tokenizer and encoded corpus were cached by
then. Then, from one more pair whose window runs a 10 ms QTimer on its GUI thread: how late it fires while the window
trains (p99, target < 20 ms; and max), and that pair's ratio. The timer is kept out of the other pairs: its 100
wake-ups a second are the bench's, not the window's, and each takes a core from training (docs/performance.md, the
twelfth look).

The two trainings run at the same time, taking turns: one trains alone for SLICE_S seconds while the other is
stopped (SIGSTOP), then the other way round, and the time a side was stopped is taken out of its figures. So the
machine's drift (10% over minutes on a shared machine) falls on both alike; two runs one after the other differed
by that much. The window's side is stopped as a whole: the window's process and its training child, which has a
session of its own. (Linux only: SIGSTOP, and the processes' parents read from /proc.)

--ticks times the live plots' refresh in the shown window alone: REFRESH_TICKS refreshes, each after STEPS_PER_TICK
new steps of a made-up run and painted at once, and prints the CPU a tick takes on the GUI thread and in all of the
process's threads. No training, no timers and no start-up: the steadiest figure to compare code by (within a few
percent between runs). --qt-thread-pool lets Qt paint with its pool of threads, as the app did before
keep_painting_on_the_gui_thread.
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

from app.main import leave_startup_objects_out_of_collections, start_application  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.train.plots import LIVELY  # noqa: E402
from app.common.resources import PRESETS_DIR, SAMPLE_CORPUS  # noqa: E402
from lmcore import events as ev  # noqa: E402
from lmcore.config import RunConfig, config_to_dict, load_config  # noqa: E402
from lmcore.corpus import default_cache_dir  # noqa: E402
from lmcore.runs import RunFolder  # noqa: E402

PRESET = PRESETS_DIR / "baby-gpt-char.toml"
TIMER_MS = 10
SLICE_S = 2.0  # in a comparison, each side trains alone this long, then waits as long while the other trains


def headless_command(overrides: list[str], runs_dir: Path) -> list[str]:
    """`lmcore train`, as from a terminal."""
    command = [sys.executable, "-m", "lmcore", "train", str(PRESET), "--quiet", "--runs-dir", str(runs_dir)]
    for override in overrides:
        command += ["--set", override]
    return command


def run_settings(steps: int, corpus: Path, work: Path) -> tuple[list[str], RunConfig]:
    """The preset, `steps` long on `corpus`: as `--set` overrides for `lmcore train`, and as the RunConfig the
    window's form must produce. Tokenizers and encoded corpora are cached in `work`, for every run alike."""
    os.environ.setdefault("LMCORE_CACHE_DIR", str(work / "cache"))
    overrides = [f"train.max_steps={steps}", f"train.eval_interval={steps}",
                 f"data.train=[{json.dumps(str(corpus.resolve()))}]"]
    config = load_config(PRESET, overrides)
    config.runs_dir = str(work / "runs")
    return overrides, config


def cache_is_warm() -> bool:
    """Whether a tokenizer or an encoded corpus is cached already: a run in an empty cache prepares them first."""
    return any(path.is_file() for path in default_cache_dir().rglob("*"))


# ---- the window's side, in a process of its own -------------------------------------------------------
@dataclass
class WindowRun:
    run_dir: Path
    clicked: float  # perf_counter when Start was pressed
    first_step: float  # perf_counter when the first steps reached the window
    cache_warm: bool  # when Start was pressed
    started: float  # perf_counter when training started (the Started event reached the window)...
    ended: float  # ...and when it finished
    ticks: list[float]  # perf_counter at each tick of the 10 ms timer while training (--probe only)
    cpu_s: float  # CPU seconds the window's process used while training (its training child's not included)


@contextmanager
def shown_window(runs_dir: Path, corpus: Path, work: Path):
    """The main window at 1280x800, with its settings and presets in `work`; deleted afterwards, else each repeat
    leaves a window behind, with its timers and objects (slower GC)."""
    window = MainWindow(runs_dir, corpus=corpus, settings=QSettings(str(work / "bench.ini"), QSettings.IniFormat),
                        user_presets_dir=work / "presets")
    window.resize(1280, 800)
    window.show()
    leave_startup_objects_out_of_collections()  # as lm-workbench does
    try:
        yield window
    finally:
        window.close()
        window.deleteLater()
        QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


def train_in_window(steps: int, corpus: Path, work: Path, probe: bool) -> None:
    """A comparison's window side: set the form as a user would, press Start, wait until the run ends (`probe`: with
    a 10 ms timer's ticks timed), then write the WindowRun to work/window.json."""
    _, config = run_settings(steps, corpus, work)
    with shown_window(work / "window", corpus.resolve(), work) as window:
        form, tab = window.train_tab.form, window.train_tab
        form.preset.setCurrentIndex(form.preset.findText(PRESET.stem))
        form.editors["train.max_steps"].setValue(config.train.max_steps)
        form.editors["train.eval_interval"].setValue(config.train.eval_interval)
        window_config = form.config()
        assert window_config is not None, form.errors
        window_config.runs_dir = config.runs_dir  # where runs go is the window's business
        assert config_to_dict(window_config) == config_to_dict(config), "the window would train something else"

        ticks: list[float] = []
        cpu: list[float] = []  # the process's CPU seconds when training starts and ends
        stamps: list[float] = []  # perf_counter when training starts and ends
        first_steps: list[float] = []
        timer = QTimer(timerType=Qt.PreciseTimer, interval=TIMER_MS)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

        def on_started(_) -> None:
            cpu.append(time.process_time())
            stamps.append(time.perf_counter())
            if probe:
                timer.start()

        def on_finished(_) -> None:
            cpu.append(time.process_time())
            stamps.append(time.perf_counter())
            timer.stop()

        def on_steps(_) -> None:
            if not first_steps:
                first_steps.append(time.perf_counter())

        def on_training_started(worker) -> None:
            worker.started.connect(on_started)
            worker.steps.connect(on_steps)
            worker.finished.connect(on_finished)

        tab.training_started.connect(on_training_started)
        loop = QEventLoop()
        ended: list[Path] = []
        tab.training_ended.connect(lambda run_dir: (ended.append(run_dir), loop.quit()))
        cache_warm, clicked = cache_is_warm(), time.perf_counter()
        tab.start_button.click()
        loop.exec()
    run = WindowRun(ended[0], clicked, first_steps[0], cache_warm, stamps[0], stamps[1], ticks, cpu[1] - cpu[0])
    (work / "window.json").write_text(json.dumps(asdict(run), default=str))


# ---- taking turns -----------------------------------------------------------------------------------------
@dataclass
class Pause:
    start: float  # perf_counter: the system's monotonic clock, the same in every process
    end: float
    steps_done: int  # steps in the run's metrics file while it was paused


def steps_done(runs_dir: Path) -> int:
    files = list(runs_dir.glob("*/metrics.jsonl"))
    return sum('"kind": "step"' in line for line in files[0].open()) if files else 0


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first, whatever their session (signalling a process group would miss
    the window's training child). Parents are read from each process's /proc/PID/stat: /proc/PID/task/TID/children
    needs a kernel option that this machine's kernel lacks."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # after the name, which may hold anything
        except OSError:  # it has just ended
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree = [pid]
    for parent in tree:  # breadth first: the loop goes on into what it appends
        tree += children.get(parent, [])
    return tree


def send_signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:  # it has ended
            pass


class TakingTurns:
    """Two processes that run one at a time, SLICE_S each in turn (the other stopped by SIGSTOP, descendants
    included), until both have ended. Each one's pauses are kept, with how far its training had got, to be taken
    out of its training time."""

    def __init__(self, processes: dict[str, subprocess.Popen], runs_dirs: dict[str, Path]):
        self.processes, self.runs_dirs = processes, runs_dirs
        self.pauses: dict[str, list[Pause]] = {side: [] for side in processes}
        self._paused: dict[str, tuple[float, list[int]]] = {}  # side: (since, the pids stopped)

    def run(self) -> None:
        running, waiting = self.processes  # the first named runs first
        self.pause(waiting)
        try:
            while True:
                try:
                    self.processes[running].wait(timeout=SLICE_S)
                except subprocess.TimeoutExpired:
                    pass
                if waiting in self._paused:  # it has work left: its turn
                    if self.processes[running].poll() is None:
                        self.pause(running)
                    self.resume(waiting)
                    running, waiting = waiting, running
                elif self.processes[running].poll() is not None:
                    return
        except BaseException:  # e.g. Ctrl-C: no training goes on without the bench
            for process in self.processes.values():
                send_signal(process_tree(process.pid), signal.SIGKILL)
            raise
        finally:
            for side in list(self._paused):  # never leave a stopped process behind
                self.resume(side)

    def pause(self, side: str) -> None:
        pids = process_tree(self.processes[side].pid)
        send_signal(pids, signal.SIGSTOP)
        self._paused[side] = (time.perf_counter(), pids)

    def resume(self, side: str) -> None:
        steps = steps_done(self.runs_dirs[side])  # read while it is surely stopped
        since, pids = self._paused.pop(side)
        send_signal(pids, signal.SIGCONT)
        self.pauses[side].append(Pause(since, time.perf_counter(), steps))


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
    window_cpu: float  # the window's process's CPU time over the training time
    first_step_s: float  # from Start pressed to the first step in the window
    cache_warm: bool  # when Start was pressed
    late_ms: list[float]  # how late each tick of the 10 ms timer came (`probe` only)


def compare(steps: int, corpus: Path, work: Path, repeat: int, probe: bool = False) -> Comparison:
    """Train `steps` steps with `lmcore train` and from the window (`probe`: with the 10 ms timer), taking turns every
    SLICE_S seconds: the machine's drift (often 10% over minutes here) falls on both alike. Every other repeat, the
    window takes the first turn."""
    overrides, _ = run_settings(steps, corpus, work)
    pair = work / f"pair-{repeat}"
    runs_dirs = {"headless": pair / "headless", "window": pair / "window"}
    commands = {
        "headless": headless_command(overrides, runs_dirs["headless"]),
        "window": [sys.executable, str(Path(__file__).resolve()), "--window-run", str(pair), "--steps", str(steps),
                   "--corpus", str(corpus), *(["--probe"] if probe else [])],
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
    trained_s = window.ended - window.started - paused_between(pauses, window.started, window.ended)
    first_step_s = window.first_step - window.clicked - paused_between(pauses, window.clicked, window.first_step)
    return Comparison(throughput(headless_run, turns.pauses["headless"]), throughput(Path(window.run_dir), pauses),
                      window.cpu_s / trained_s, first_step_s, window.cache_warm, lateness_ms(window.ticks, pauses))


# ---- --ticks ----------------------------------------------------------------------------------------------
REFRESH_TICKS = 600
STEPS_PER_TICK = 3  # baby-gpt-char's pace on a 2-core machine (about 30 steps a second), at the plots' liveliest


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
            plots.refresh(details=tick % round(LIVELY.details_s / LIVELY.refresh_s) == 0)
            QApplication.processEvents()  # paints what the refresh changed
        thread1, process1 = time.thread_time(), time.process_time()
    return 1000 * (thread1 - thread0) / REFRESH_TICKS, 1000 * (process1 - process0) / REFRESH_TICKS


def _wait(seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


# ---- command line -----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS)
    parser.add_argument("--json", action="store_true", help="print each pair's figures as a line of JSON only")
    parser.add_argument("--ticks", action="store_true",
                        help="instead: the CPU one refresh of the live plots takes in the window, painting included")
    parser.add_argument("--qt-thread-pool", action="store_true",
                        help="diagnostic, with --ticks: Qt paints with its pool of threads")
    parser.add_argument("--window-run", type=Path, help=argparse.SUPPRESS)  # a comparison's window side, in FOLDER
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)  # ...with the 10 ms timer
    args = parser.parse_args()

    work = args.window_run or Path(tempfile.mkdtemp(prefix="gui-overhead-"))
    if not (args.window_run or args.ticks):
        compare_and_print(args, work)
        return
    _app = start_application(qt_thread_pool=args.qt_thread_pool)  # as lm-workbench starts; kept while it runs
    if args.window_run:
        train_in_window(args.steps, args.corpus, work, args.probe)
        return
    costs = [refresh_cost(work, repeat) for repeat in range(args.repeats)]
    pool = "with Qt's thread pool" if args.qt_thread_pool else "painting on the GUI thread"
    for name, column in (("GUI thread", 0), ("all threads", 1)):
        print(f"{REFRESH_TICKS} refreshes of the live plots, {STEPS_PER_TICK} new steps each, {pool}: {name} "
              f"{statistics.median(c[column] for c in costs):.3f} ms of CPU a refresh (median; "
              f"{', '.join(f'{c[column]:.3f}' for c in costs)})")


def compare_and_print(args, work: Path) -> None:
    results = []
    for repeat in range(args.repeats + 1):  # the last with the timer
        results.append(compare(args.steps, args.corpus, work, repeat, probe=repeat == args.repeats))
        c = results[-1]
        timer = (f"; timer late p99 {np.percentile(c.late_ms, 99):.1f} ms, max {max(c.late_ms):.1f} ms"
                 if c.late_ms else "")
        print(json.dumps(asdict(c)) if args.json else
              f"pair {repeat + 1}{' (the timer ticking)' if c.late_ms else ''}: headless {c.headless:,.0f} tokens/s, "
              f"in the window {c.window:,.0f} tokens/s (ratio {c.window / c.headless:.3f}){timer}; window process "
              f"CPU {c.window_cpu:.1%}; Start to first step {c.first_step_s:.2f} s "
              f"(cache {'warm' if c.cache_warm else 'cold'})", flush=True)
    if args.json:
        return
    *results, probed = results
    ratios = sorted(c.window / c.headless for c in results)
    firsts = sorted(c.first_step_s for c in results)
    cold = [str(n + 1) for n, c in enumerate(results) if not c.cache_warm]
    print(f"\nbaby-gpt-char, {args.steps} steps, {len(results)} pairs, each pair's two sides taking turns every "
          f"{SLICE_S:.0f} s")
    print(f"headless (lmcore train): {statistics.median(c.headless for c in results):,.0f} tokens/s (median)")
    print(f"in the window:           {statistics.median(c.window for c in results):,.0f} tokens/s (median)")
    print(f"ratio:                   {statistics.median(ratios):.3f}   (target >= 0.98; the median pair; pairs "
          f"{ratios[0]:.3f}-{ratios[-1]:.3f})")
    print(f"window process CPU while training: {statistics.median(c.window_cpu for c in results):.1%} of one core "
          "(median; the GUI's process alone, all its threads)")
    print(f"Start pressed -> first step in the window: {statistics.median(firsts):.2f} s   (target <= 3 s; the "
          f"median pair; pairs {firsts[0]:.2f}-{firsts[-1]:.2f}; cache cold at Start in pairs: "
          f"{', '.join(cold) or 'none'})")
    late = probed.late_ms
    print(f"10 ms timer lateness while training (pair {len(results) + 1}): p99 {np.percentile(late, 99):.1f} ms, "
          f"max {max(late):.1f} ms   (target p99 < 20 ms; {len(late):,} ticks); that pair's ratio, the timer's "
          f"wake-ups included: {probed.window / probed.headless:.3f}")


if __name__ == "__main__":
    main()
