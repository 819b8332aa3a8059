"""Which device to train on, and what it can do."""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def check_device_choice(choice: str) -> None:
    """A device name this build knows, available here or not (a config may be written for another machine)."""
    if choice not in DEVICE_CHOICES and not (choice.startswith("cuda:") and choice[5:].isdigit()):
        raise ConfigError(f"train.device = {choice!r} is not a device; use one of {', '.join(DEVICE_CHOICES)} "
                          "(or cuda:N for one GPU).", field="train.device")


def pick_device(choice: str = "auto") -> torch.device:
    """'auto' takes CUDA, then Apple's MPS, then the CPU. An explicit choice must be available."""
    check_device_choice(choice)
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {choice!r} but no CUDA GPU is visible to PyTorch; use 'auto' or 'cpu'.",
                          field="train.device")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device = 'mps' but Apple's MPS backend is not available; use 'auto' or 'cpu'.",
                          field="train.device")
    return torch.device(choice)


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'CPU (2 threads)' or 'NVIDIA H100 80GB HBM3 (79.1 GiB)'."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.1f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def host_threads(device: torch.device, processes: int = 1) -> int:
    """Threads of the machine's CPU that training keeps busy: PyTorch's intra-op threads when it trains on the CPU
    (all the cores, by default), one a process when each drives a GPU. A window drawing beside it takes from it
    what it takes from these (app/train/plots.py, Pace)."""
    return processes * (torch.get_num_threads() if device.type == "cpu" else 1)


def memory_bytes(device: torch.device) -> int | None:
    """The most memory a run on `device` can have: the GPU's own on CUDA, else the machine's (MPS shares it);
    None where the system does not tell."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name on this system
        return None


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """What autocast computes in on a GPU: bf16 where its tensor cores have it (compute capability 8.0 on: Ampere
    and later), else fp16, which needs a gradient scaler; None (plain fp32) elsewhere. Not
    torch.cuda.is_bf16_supported(): it also counts emulated bf16, which is slow on a T4 or V100."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


@dataclass(frozen=True)
class DeviceFeatures:
    """How the training loop treats a device. On CUDA that is the GPU path; elsewhere plain fp32.
    One value rather than scattered `device.type == "cuda"` checks, so tests can run the GPU path's logic on a CPU."""
    autocast: torch.dtype | None  # what train.dtype = "auto" means: bf16 autocast where the GPU supports it
    pin_memory: bool  # page-locked host batches, copied to the GPU without blocking the host
    cheap_readback: bool  # CPU: reading a metric back costs nothing; a GPU must first drain its queue of work


def device_features(device: torch.device) -> DeviceFeatures:
    cuda = device.type == "cuda"
    return DeviceFeatures(autocast_dtype(device), pin_memory=cuda, cheap_readback=device.type == "cpu")


# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, in TFLOP/s: the denominator of MFU.
# Matched as substrings of torch.cuda.get_device_name(); the first match wins, so variants come before families.
BF16_PEAK_TFLOPS = (
    ("GH200", 989.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
    ("RTX 4090", 165.0), ("RTX 3090", 71.0),
)


def bf16_peak_flops(device_name: str) -> float | None:
    """The bf16 peak FLOP/s of a GPU by its name, or None for a GPU not in the table."""
    for key, tflops in BF16_PEAK_TFLOPS:
        if key in device_name:
            return tflops * 1e12
    return None


def peak_flops(device: torch.device) -> float | None:
    """The bf16 peak of a CUDA device (None elsewhere, or for an unknown GPU)."""
    return bf16_peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def matmul_peak_flops(device: torch.device, size: int = 2048, repeats: int = 10, warmup: int = 3) -> float:
    """Achievable fp32 matmul FLOP/s on this device: `repeats` products of two size x size matrices, timed after
    `warmup` untimed ones. Its inputs come from a generator of its own: the global RNG (a run's dropout masks, a
    resumed run's restored state) is left as it was."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(size, size, generator=generator).to(device) for _ in range(2))
    for _ in range(warmup):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously), so a timing measures the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# The quick measurement a run makes when no data sheet knows its device: about 0.15 s on a 2-core CPU (1024 x 1024,
# 2 GFLOP a product), a few milliseconds on a GPU (4096 x 4096).
QUICK_MATMUL_SIZE = {"cpu": 1024, "mps": 4096, "cuda": 4096}


@functools.cache
def _measured_peak_flops(device: str) -> float:
    name = torch.device(device)
    return matmul_peak_flops(name, QUICK_MATMUL_SIZE.get(name.type, 1024), repeats=2, warmup=1)


def run_peak_flops(device: torch.device, processes: int = 1) -> float | None:
    """MFU's denominator for a run on `processes` devices like `device`: a GPU's bf16 peak from its data sheet
    (BF16_PEAK_TFLOPS); elsewhere (a CPU, Apple's GPU, a GPU not in the table) the fp32 matmul rate measured here
    on a small problem, once per process and device. That flatters MFU a little (a large matmul runs faster) but
    is the best ceiling such a machine has. None when the device cannot be measured."""
    peak = peak_flops(device)
    if peak is None:
        try:
            peak = _measured_peak_flops(str(device))
        except RuntimeError:  # a backend without fp32 matmul, or out of memory: no MFU rather than no run
            return None
    return peak * processes
