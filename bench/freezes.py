"""How long the window freezes for three actions that read or compute much: the longest gap between ticks of a 10 ms
QTimer on the GUI thread while each runs, against a target of 100 ms (issue 23).

    python bench/freezes.py [--repeats 3] [--json]

(a) ticking 10 runs of 20,000 steps (an evaluation every 250) in the runs browser at once, until the plots show them;
(b) ticking one run of 100,000 steps, until the plots show it;
(c) an attention capture: select a tiny trained Transformer run with the Attention tab shown, type a text and press
    Show attention, until the heatmap shows it.

The runs of (a) and (b) are made-up metrics files as the trainer writes them, half of them with a character
tokenizer and half with a word tokenizer; (c)'s run is trained here for a few steps. Each action is repeated, and
(0) measures doing nothing for 3 s: what the machine itself costs the timer (another process's load). The longest
garbage collection on the GUI thread during each is printed too: the app collects there, now and then, and a full
collection in a process that imported PyTorch is long, whatever the action (docs/performance.md, the tenth look).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402

from app.main import start_application  # noqa: E402
from app.main_window import ATTENTION_TAB_INDEX  # noqa: E402
from bench.gui_overhead import shown_window  # noqa: E402
from lmcore.config import config_from_dict, config_to_dict  # noqa: E402
from lmcore.runs import RunFolder  # noqa: E402

TIMER_MS = 10
TARGET_MS = 100
SETTLE_S = 0.5  # measured on after an action is done: what its data's drawing and painting take
EVAL_EVERY = 250


def make_run(runs_dir: Path, name: str, steps: int, tokenizer: str, seed: int) -> Path:
    """A finished run folder as the trainer leaves it: config, status and a metrics file of `steps` steps."""
    config = config_from_dict({**config_to_dict(config_from_dict({})), "name": name,
                               "tokenizer": {"kind": tokenizer}})
    folder = RunFolder.create(runs_dir, name)
    folder.save_config(config)
    rng = np.random.default_rng(seed)
    start = 4.2 if tokenizer == "char" else 9.5
    floor = 1.4 if tokenizer == "char" else 5.2
    lines = []
    for step in range(1, steps + 1):
        loss = floor + (start - floor) / (1 + step / 400) + 0.08 * rng.standard_normal()
        lines.append({"kind": "step", "step": step, "tokens": 4096 * step, "loss": loss,
                      "lr": 1e-3 * min(1.0, step / 100), "grad_norm": 0.4 + 0.1 * rng.random(),
                      "tokens_per_s": 30_000 + 900 * rng.standard_normal(), "elapsed": 0.12 * step})
        if step % EVAL_EVERY == 0:
            val = loss + 0.05
            chars_per_token = 1.0 if tokenizer == "char" else 4.6
            lines.append({"kind": "eval", "step": step, "tokens": 4096 * step, "elapsed": 0.12 * step,
                          "val_loss": val, "val_perplexity": float(np.exp(val)),
                          "val_bits_per_char": val / np.log(2) / chars_per_token, "best": True})
    folder.metrics_path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    folder.write_status("finished", best_val_loss=lines[-1]["val_loss"])
    return folder.path


def train_tiny_transformer(runs_dir: Path, work: Path) -> Path:
    """A few steps of a one-layer Transformer on the sample corpus's first 20,000 characters."""
    from app.common.resources import SAMPLE_CORPUS
    from lmcore.trainer import Trainer

    corpus = work / "tiny.txt"
    corpus.write_text(SAMPLE_CORPUS.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    config = config_from_dict({
        "name": "tiny-gpt", "runs_dir": str(runs_dir), "data": {"train": [str(corpus)], "val_fraction": 0.1},
        "tokenizer": {"kind": "char"},
        "model": {"family": "transformer", "n_layer": 1, "n_head": 2, "n_embd": 32, "context_length": 64},
        "train": {"batch_size": 8, "context": 64, "max_steps": 20, "eval_interval": 20, "device": "cpu"}})
    trainer = Trainer.new(config)
    trainer.run()
    return trainer.folder.path


@dataclass
class Freeze:
    longest_ms: float  # the longest gap between the timer's ticks
    collection_ms: float  # the longest garbage collection on the GUI thread meanwhile (the app's 1 s timer runs them)


class FreezeMeter:
    """A 10 ms timer on the GUI thread, the time of each of its ticks, and how long each garbage collection on the
    GUI thread took."""

    def __init__(self):
        self.ticks: list[float] = []
        self.collections: list[float] = []
        self.timer = QTimer(timerType=Qt.TimerType.PreciseTimer, interval=TIMER_MS)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._collecting_since = 0.0
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, _info: dict) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            self._collecting_since = time.perf_counter()
        else:
            self.collections.append(1000 * (time.perf_counter() - self._collecting_since))

    def measure(self, action: Callable[[], None], done: Callable[[], bool], timeout_s: float = 120.0) -> Freeze:
        """Start `action` from the event loop, wait until `done()`, go on SETTLE_S longer; the longest gap between
        ticks in between. The check for done is itself a tick's work: one comparison."""
        self.ticks, self.collections = [time.perf_counter()], []
        loop = QEventLoop()
        began = time.perf_counter()
        finished: list[float] = []

        def check() -> None:
            now = time.perf_counter()
            if not finished and done():
                finished.append(now)
            if (finished and now - finished[0] >= SETTLE_S) or now - began > timeout_s:
                loop.quit()

        self.timer.timeout.connect(check)
        self.timer.start()
        QTimer.singleShot(0, action)
        loop.exec()
        self.timer.stop()
        self.timer.timeout.disconnect(check)
        if not finished:
            raise RuntimeError(f"not done after {timeout_s:.0f} s")
        return Freeze(1000 * float(np.max(np.diff(self.ticks))), max(self.collections, default=0.0))


def shown_points(plots, run: Path) -> int:
    curves = plots.curves.get(run)
    return len(curves.raw_loss.data()[0]) if curves is not None else 0


def set_ticks(browser, runs: list[Path], ticked: bool) -> None:
    """As the user clicks each run's tick box in the list, one after the other without the event loop between."""
    for run in runs:
        browser.set_checked(run, ticked)


IDLE, TICK_10, TICK_LONG, ATTENTION = ("(0) nothing, 3 s: the machine", "(a) tick 10 runs",
                                       "(b) tick the 100k-step run", "(c) attention capture")


def measure_ticking(window, runs: list[Path], long_run: Path, steps: int, long_steps: int,
                    meter: FreezeMeter) -> dict[str, Freeze]:
    browser, plots = window.runs_browser, window.train_tab.plots
    began = time.perf_counter()
    freezes = {IDLE: meter.measure(lambda: None, lambda: time.perf_counter() - began > 3)}
    freezes[TICK_10] = meter.measure(lambda: set_ticks(browser, runs, True),
                                     lambda: all(shown_points(plots, run) == steps for run in runs))
    meter.measure(lambda: set_ticks(browser, runs, False), lambda: not plots.curves)
    freezes[TICK_LONG] = meter.measure(lambda: set_ticks(browser, [long_run], True),
                                       lambda: shown_points(plots, long_run) == long_steps)
    meter.measure(lambda: set_ticks(browser, [long_run], False), lambda: not plots.curves)
    return freezes


def capture_attention(window, tiny: Path, other: Path, meter: FreezeMeter) -> Freeze:
    """Select the tiny run with the Attention tab shown, type a text, press Show attention; until it is shown.
    Another run is selected first (it has no checkpoint: the tab says so at once), so that each repeat selects."""
    attention, browser = window.attention_tab, window.runs_browser
    window.tabs.setCurrentIndex(ATTENTION_TAB_INDEX)
    meter.measure(lambda: browser.select_run(other), lambda: not attention.is_busy())

    def action() -> None:
        browser.select_run(tiny)
        attention.editor.setPlainText("ROMEO: But soft, what light through yonder window breaks?")
        attention.show_button.click()

    freeze = meter.measure(action, lambda: not attention.is_busy())
    window.tabs.setCurrentIndex(0)
    return freeze


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="steps of each of (a)'s 10 runs")
    parser.add_argument("--long-steps", type=int, default=100_000, help="steps of (b)'s run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print only each action's worst freeze (ms), as JSON")
    args = parser.parse_args()
    _app = start_application()  # as lm-workbench starts; kept while it runs
    work = Path(tempfile.mkdtemp(prefix="freezes-"))
    runs_dir = work / "runs"
    say = (lambda *_, **__: None) if args.json else print
    say(f"making the run folders in {work} …", flush=True)
    runs = [make_run(runs_dir, f"run-{i}", args.steps, "char" if i % 2 else "word", seed=i) for i in range(10)]
    long_run = make_run(runs_dir, "long", args.long_steps, "char", seed=10)
    tiny = train_tiny_transformer(runs_dir, work)

    results: dict[str, list[Freeze]] = {}
    meter = FreezeMeter()
    with shown_window(runs_dir, None, work) as window:
        meter.measure(lambda: None, lambda: True)  # laid out and painted
        for repeat in range(args.repeats):
            say(f"repeat {repeat + 1} …", flush=True)
            for action, freeze in measure_ticking(window, runs, long_run, args.steps, args.long_steps,
                                                  meter).items():
                results.setdefault(action, []).append(freeze)
            results.setdefault(ATTENTION, []).append(capture_attention(window, tiny, long_run, meter))

    if args.json:
        print(json.dumps({"target_ms": TARGET_MS,
                          "worst_ms": {action: max(f.longest_ms for f in freezes) for action, freezes in results.items()}}))
        return
    print(f"\nThe longest gap between ticks of a {TIMER_MS} ms timer on the GUI thread (target < {TARGET_MS} ms): "
          f"the worst of {args.repeats} repeats, then each repeat's, and the longest garbage collection on the GUI "
          "thread in each")
    for action, freezes in results.items():
        worst = max(f.longest_ms for f in freezes)
        each = ", ".join(f"{f.longest_ms:.0f}" for f in freezes)
        collections = ", ".join(f"{f.collection_ms:.0f}" for f in freezes)
        verdict = "" if action == IDLE else "ok" if worst < TARGET_MS else "OVER"
        print(f"  {action:<30} {worst:6.0f} ms {verdict:<4}  (repeats: {each} ms; collections: {collections} ms)")


if __name__ == "__main__":
    main()
