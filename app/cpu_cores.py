"""Which of the app's threads may spread work over several cores: the training thread only.

PyTorch runs CPU operations on OpenMP teams (libgomp). libgomp keeps a team's workers spinning between
operations, ready for the next one, only while the process has no more OpenMP threads than cores. Once a second
thread of ours has run a multi-threaded operation (the GUI thread capturing attention, the generation worker),
its idle workers count too and every team's workers go to sleep after each operation; waking them costs more
than a small operation itself, and baby-gpt-char trained about 30% slower (2 cores). So every thread that uses
PyTorch says how many cores it takes, before its first operation.
"""
from __future__ import annotations

import os

import torch

TRAINING_THREADS = torch.get_num_threads()  # PyTorch's own choice (the cores, or OMP_NUM_THREADS), read first


def _use_threads(count: int) -> None:
    torch.get_num_threads()  # PyTorch sets a thread's count on its first use: let that happen before ours
    torch.set_num_threads(count)


def use_one_core() -> None:
    """For the GUI and generation threads: run this thread's PyTorch operations on the thread itself."""
    _use_threads(1)


def use_training_cores() -> None:
    """For the training thread, first thing: as many threads as PyTorch would use in a process of its own."""
    _use_threads(TRAINING_THREADS)


def keep_painting_on_the_gui_thread() -> None:
    """Before the QApplication paints: Qt's raster engine hands each fill or picture it draws over 96 rows or more
    to a pool of threads, one per core, and waits for them. Beside training, every repaint of a plot's strip
    then woke threads that took cores from training's OpenMP workers, and cost more than it saved: a refresh of
    the window took 1.08 ms of CPU with the pool, 0.73 ms without (`bench/gui_overhead.py --ticks`). Qt reads this
    once."""
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
