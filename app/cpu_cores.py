"""Which of the app's threads may spread PyTorch operations over several cores: the training thread only.

PyTorch runs CPU operations on OpenMP teams (libgomp). libgomp keeps a team's workers spinning between
operations, ready for the next one, only while the process has no more OpenMP threads than cores. Once a second
thread of ours has run a multi-threaded operation (the GUI thread capturing attention, the generation worker),
its idle workers count too and every team's workers go to sleep after each operation; waking them costs more
than a small operation itself, and baby-gpt-char trained about 30% slower (2 cores). So every thread that uses
PyTorch says how many cores it takes, before its first operation.
"""
from __future__ import annotations

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
