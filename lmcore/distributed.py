"""Several processes training one model: joining torchrun's process group, and the few collectives the trainer uses.

    torchrun --nproc_per_node=4 -m lmcore.cli train config.toml        # one machine, four GPUs (or CPU processes)

torchrun starts one process per rank and tells each who it is through the environment (RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Outside torchrun WORLD_SIZE is unset, `setup` returns a one-process
`Distributed`, and every method below is a no-op, so the trainer has one code path.
"""
from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar, cast
from collections.abc import Callable

import torch
import torch.distributed as dist

from .device import pick_device
from .errors import ConfigError, LMCoreError

T = TypeVar("T")

# Rank 0 may train a tokenizer or encode a large corpus while the other ranks wait in a collective; the default
# timeout (10 minutes under NCCL) would kill a run whose preparation takes longer.
PREPARE_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0  # which GPU of this machine
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives' tensors live

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder and emits events."""
        return self.rank == 0

    def place(self, device: torch.device) -> torch.device:
        """The device this rank trains on: its own GPU (by LOCAL_RANK) in a multi-GPU run."""
        if self.world_size > 1 and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def on_main(self, fn: Callable[[], T]) -> T:
        """fn() run by rank 0 alone and its result handed to every rank. A user error raised there is raised on
        every rank, so none of them is left waiting for a result that will not come."""
        if self.world_size == 1:
            return fn()
        box: list[object] = [None]
        if self.is_main:
            try:
                box[0] = fn()
            except LMCoreError as exc:
                box[0] = exc
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        if isinstance(box[0], LMCoreError):
            raise box[0]
        return cast(T, box[0])  # rank 0's fn() result

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block first (filling an on-disk cache), then the others (reading it)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of `t` over ranks (gloo has no AVG, so a sum divided)."""
        if self.world_size == 1:
            return t
        t = t.clone()
        dist.all_reduce(t)
        return t / self.world_size

    def sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on any: how the ranks agree to stop at the same step."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def all_gather_object(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order (for small things: per-rank RNG and RNN states)."""
        if self.world_size == 1:
            return [obj]
        gathered: list[object] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return cast("list[T]", gathered)  # every rank's obj

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None


def launch_environment(environ=os.environ) -> tuple[int, int, int]:
    """(rank, local_rank, world_size) as torchrun sets them; (0, 0, 1) outside torchrun."""
    world_size = int(environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 0, 1
    missing = [name for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if name not in environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE = {world_size} but {', '.join(missing)} is not set: start multi-process "
                          "training with torchrun (see docs/multi-node.md), or unset WORLD_SIZE.")
    rank, local_rank = int(environ["RANK"]), int(environ["LOCAL_RANK"])
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK = {rank} is outside 0..WORLD_SIZE-1 = {world_size - 1}.")
    return rank, local_rank, world_size


def setup(device_choice: str) -> Distributed:
    """This process's place in the run. Under torchrun, joins the process group once (NCCL between GPUs, gloo
    between CPU processes) and pins the process to its GPU; it is left at interpreter exit."""
    rank, local_rank, world_size = launch_environment()
    if world_size == 1:
        return Distributed()
    place = Distributed(rank, local_rank, world_size)
    device = place.place(pick_device(device_choice))
    if device.type == "mps":
        raise ConfigError("Multi-process training runs on CUDA GPUs or on CPUs, not Apple's MPS; "
                          "set train.device = 'cpu' or train in one process.")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=PREPARE_TIMEOUT)
        atexit.register(dist.destroy_process_group)
    return Distributed(rank, local_rank, world_size, device)
