"""Only the training thread spreads PyTorch over several cores; the GUI and generation threads keep to one, so
OpenMP keeps training's fast path (see app/cpu_cores.py)."""
from __future__ import annotations

import threading

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
