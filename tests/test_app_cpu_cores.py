"""Only the training thread spreads PyTorch over several cores; the GUI and generation threads keep to one, so
OpenMP keeps training's fast path (see app/cpu_cores.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QThread, QTimer

from app import cpu_cores
from app.generate_worker import GenerationWorker
from app.worker import TrainingWorker


@pytest.fixture
def two_training_threads(monkeypatch):
    """As on a 2-core machine (the tests otherwise run PyTorch on one thread); restores this thread's count."""
    monkeypatch.setattr(cpu_cores, "TRAINING_THREADS", 2)
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def threads_seen_on(target) -> int:
    seen = []
    thread = threading.Thread(target=lambda: (target(), seen.append(torch.get_num_threads())))
    thread.start()
    thread.join()
    return seen[0]


def test_each_thread_keeps_its_own_count(two_training_threads):
    cpu_cores.use_one_core()  # the GUI thread
    assert threads_seen_on(cpu_cores.use_training_cores) == 2
    # PyTorch hands the last count set anywhere to a thread's first use: use_one_core must win over it
    assert threads_seen_on(cpu_cores.use_one_core) == 1
    assert torch.get_num_threads() == 1  # training set 2 on its own thread, not on this one


class CountingTrainer:
    """A stand-in trainer that notes how many threads PyTorch would use on the thread that runs it."""

    def __init__(self):
        self.folder = type("Folder", (), {"path": None})()
        self.threads = None

    def subscribe(self, _callback):
        pass

    def run(self):
        self.threads = torch.get_num_threads()
        return "finished"


def test_the_training_worker_trains_on_all_the_cores(qtbot, two_training_threads):
    cpu_cores.use_one_core()
    trainer = CountingTrainer()
    worker = TrainingWorker(trainer)
    with qtbot.waitSignal(worker.done, timeout=10_000):
        worker.start()
    assert trainer.threads == 2
    assert torch.get_num_threads() == 1


def test_the_generation_worker_keeps_to_one_core(qtbot, two_training_threads):
    torch.set_num_threads(2)  # what a new thread would otherwise start with
    thread, worker = QThread(), GenerationWorker()
    worker.moveToThread(thread)
    thread.started.connect(worker.on_thread_started)
    seen = []
    thread.start()
    try:
        QTimer.singleShot(0, worker, lambda: seen.append(torch.get_num_threads()))  # runs on the worker's thread
        qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    finally:
        thread.quit()
        thread.wait()
    assert seen == [1]


PAINT_THE_WINDOW = """
import os, sys
from PySide6.QtCore import QStandardPaths, QTimer
QStandardPaths.setTestModeEnabled(True)  # no settings written where the user's are
from app.main import open_window
app, window = open_window(["--runs-dir", sys.argv[1]])
window.grab()  # paints all of it
threads = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
print(threads.count("Thread (pooled)"))
QTimer.singleShot(0, app.quit)  # the app's own way out, which ends its worker threads
app.exec()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process's threads from /proc")
def test_qt_paints_the_window_on_the_gui_thread_alone(tmp_path):
    """Else Qt's raster engine wakes a thread per core for each large fill, beside training. In a process of its
    own: Qt reads the setting once, and this one's QApplication has painted already."""
    environment = {name: value for name, value in os.environ.items() if name != "QT_NO_GUI_THREADPOOL"}
    painted = subprocess.run([sys.executable, "-c", PAINT_THE_WINDOW, str(tmp_path / "runs")], env=environment,
                             capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert painted.returncode == 0, painted.stderr
    assert painted.stdout.split()[-1] == "0"  # Qt's image threads ("Thread (pooled)") never started
