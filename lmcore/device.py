"""Which device to train on, and what it can do."""
from __future__ import annotations

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(choice: str = "auto") -> torch.device:
    """'auto' takes CUDA, then Apple's MPS, then the CPU. An explicit choice must be available."""
    if choice not in DEVICE_CHOICES and not choice.startswith("cuda:"):
        raise ConfigError(f"train.device = {choice!r} is not a device; use one of {', '.join(DEVICE_CHOICES)}.")
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {choice!r} but no CUDA GPU is visible to PyTorch; use 'auto' or 'cpu'.")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device = 'mps' but Apple's MPS backend is not available; use 'auto' or 'cpu'.")
    return torch.device(choice)


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'CPU (2 threads)' or 'NVIDIA H100 80GB HBM3 (79.1 GiB)'."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.1f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPUs that support it; None (plain fp32) elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None
