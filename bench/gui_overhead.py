"""What the window costs training: the baby-gpt-char preset trained by `lmcore train` (headless, in a process of
its own, as a user would run it from a terminal) and inside the window (offscreen, Start pressed as a user would).

    python bench/gui_overhead.py [--steps 300] [--repeats 3] [--corpus FILE]

Prints the tokens/s of each (the first step excluded: it warms up; evaluations are excluded by the trainer),
their ratio (target >= 0.95), and how late a 10 ms QTimer fires on the GUI thread while the window trains (max and
p99; target p99 < 50 ms). The two runs alternate, so a busy machine hurts both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.cpu_cores import use_one_core  # noqa: E402
from app.main import collect_garbage_on_the_gui_thread  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.resources import PRESETS_DIR, SAMPLE_CORPUS  # noqa: E402
from app.style import apply_theme  # noqa: E402
from lmcore.config import config_to_dict, load_config  # noqa: E402
from lmcore.runs import RunFolder  # noqa: E402

PRESET = PRESETS_DIR / "baby-gpt-char.toml"
TIMER_MS = 10


def throughput(run_dir: Path) -> float:
    """Tokens per second of training time, from the run's metrics file: from the first step to the last."""
    steps = [r for r in RunFolder(run_dir).read_metrics() if r["kind"] == "step"]
    first, last = steps[0], steps[-1]
    return (last["tokens"] - first["tokens"]) / (last["elapsed"] - first["elapsed"])


def headless(overrides: list[str], runs_dir: Path) -> float:
    """`lmcore train` in a fresh process, as from a terminal."""
    command = [sys.executable, "-m", "lmcore.cli", "train", str(PRESET), "--quiet", "--runs-dir", str(runs_dir)]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, check=True)
    (run_dir,) = runs_dir.iterdir()
    return throughput(run_dir)


def in_window(config, corpus: Path, runs_dir: Path, work: Path) -> tuple[float, list[float], float]:
    """Set the form as a user would, press Start, and time a 10 ms timer until the run ends. Returns tokens/s,
    the timer's lateness in ms, and the share of one core the GUI thread used while training."""
    window = MainWindow(runs_dir, corpus=corpus, settings=QSettings(str(work / "bench.ini"), QSettings.IniFormat),
                        user_presets_dir=work / "presets")
    window.resize(1280, 800)
    window.show()
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

    def on_finished(_) -> None:
        gui_cpu.append(time.thread_time())
        timer.stop()

    tab.training_started.connect(lambda worker: (worker.started.connect(on_started),
                                                 worker.finished.connect(on_finished)))
    loop = QEventLoop()
    ended: list[Path] = []
    tab.training_ended.connect(lambda run_dir: (ended.append(run_dir), loop.quit()))
    tab.start_button.click()
    loop.exec()
    window.close()
    window.deleteLater()  # else each repeat leaves a window behind, with its timers and objects (slower GC)
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    late_ms = list(np.maximum(np.diff(ticks) * 1000 - TIMER_MS, 0.0))
    busy = (gui_cpu[1] - gui_cpu[0]) / (ticks[-1] - ticks[0])
    return throughput(ended[0]), late_ms, busy


@dataclass
class Comparison:
    headless: float  # tokens/s
    window: float
    late_ms: list[float]  # how late each tick of the 10 ms timer came
    gui_busy: float  # share of one core


def compare(steps: int, corpus: Path, work: Path, repeats: int = 1, report=None) -> list[Comparison]:
    """Train `steps` steps headless and then in the window, `repeats` times, alternating; `report` gets each
    Comparison as it is measured. Needs the QApplication."""
    os.environ.setdefault("LMCORE_CACHE_DIR", str(work / "cache"))  # shared with the headless runs
    overrides = [f"train.max_steps={steps}", f"train.eval_interval={steps}",
                 f"data.train=[{json.dumps(str(corpus.resolve()))}]"]
    config = load_config(PRESET, overrides)
    config.runs_dir = str(work / "runs")
    comparisons = []
    for repeat in range(repeats):
        alone = headless(overrides, work / f"headless-{repeat}")
        comparisons.append(Comparison(alone, *in_window(config, corpus.resolve(), work / f"window-{repeat}", work)))
        if report:
            report(comparisons[-1])
    return comparisons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS)
    parser.add_argument("--json", action="store_true", help="print each pair's figures as a line of JSON only")
    args = parser.parse_args()

    use_one_core()  # as lm-workbench does on its GUI thread
    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    _collector = collect_garbage_on_the_gui_thread()  # as lm-workbench does
    work = Path(tempfile.mkdtemp(prefix="gui-overhead-"))
    if args.json:
        compare(args.steps, args.corpus, work, args.repeats, lambda c: print(json.dumps(asdict(c)), flush=True))
        return
    results = compare(args.steps, args.corpus, work, args.repeats,
                      lambda c: print(f"headless {c.headless:,.0f} tokens/s, in the window {c.window:,.0f} tokens/s "
                                      f"(ratio {c.window / c.headless:.3f})", flush=True))
    head = statistics.median(c.headless for c in results)
    win = statistics.median(c.window for c in results)
    late_ms = [ms for c in results for ms in c.late_ms]
    print(f"\nbaby-gpt-char, {args.steps} steps, {len(results)} alternating pairs")
    print(f"headless (lmcore train): {head:,.0f} tokens/s (median)")
    print(f"in the window:           {win:,.0f} tokens/s (median)")
    print(f"ratio:                   {win / head:.3f}   (target >= 0.95; median of the pairs' ratios "
          f"{statistics.median(c.window / c.headless for c in results):.3f})")
    print(f"10 ms timer lateness while training: max {max(late_ms):.1f} ms, "
          f"p99 {np.percentile(late_ms, 99):.1f} ms   (target p99 < 50 ms; {len(late_ms):,} ticks)")
    print(f"GUI thread busy while training: {statistics.median(c.gui_busy for c in results):.1%} of one core")


if __name__ == "__main__":
    main()
