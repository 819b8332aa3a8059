"""The GPU path's logic, checked on a CPU: the trainer is given CUDA's device features while it computes on the CPU."""
import pytest
import torch
import torch.nn.functional as F

import lmcore.trainer
from engine_helpers import tiny_config, write_corpus
from lmcore import events as ev
from lmcore.device import bf16_peak_flops, device_features, peak_flops
from lmcore.trainer import Trainer


@pytest.fixture
def cuda_features(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    return device_features(torch.device("cuda"))


def test_cuda_gets_bf16_pinned_batches_and_batched_readback_and_the_cpu_does_not(cuda_features):
    assert cuda_features.autocast == torch.bfloat16 and cuda_features.pin_memory
    assert not cuda_features.cheap_readback
    cpu = device_features(torch.device("cpu"))
    assert cpu.autocast is None and not cpu.pin_memory and cpu.cheap_readback


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989), ("NVIDIA GH200 480GB", 989),
    ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L4", 121), ("NVIDIA L40S", 362), ("NVIDIA GeForce RTX 4090", 165),
])
def test_bf16_peaks_are_looked_up_by_device_name(name, tflops):
    assert bf16_peak_flops(name) == tflops * 1e12


def test_unknown_gpus_and_cpus_have_no_peak():
    assert bf16_peak_flops("Tesla V100-SXM2-16GB") is None  # no bf16 tensor cores
    assert peak_flops(torch.device("cpu")) is None


def test_on_the_gpu_path_the_trainer_reads_metrics_back_every_log_interval_and_uses_the_fast_kernels(
        tmp_path, monkeypatch, cuda_features):
    monkeypatch.setattr(lmcore.trainer, "device_features", lambda device: cuda_features)
    pinned, attention, optimizers, autocast_seen = [], [], [], set()
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: pinned.append(t.shape) or t)

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        attention.append((attn_mask is None, is_causal))
        autocast_seen.add((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return real_sdpa(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

    real_sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", sdpa)

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            optimizers.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    readbacks = []

    class CountingTrainer(Trainer):
        def _publish(self, pending, *args):
            if pending:
                readbacks.append(len(pending))
            return super()._publish(pending, *args)

    config = tiny_config(write_corpus(tmp_path, 20_000), tmp_path / "runs", max_steps=25, eval_interval=20,
                         log_interval=10)
    trainer = CountingTrainer.new(config)
    steps = []
    trainer.subscribe(lambda e: steps.append(e.step) if isinstance(e, ev.StepMetrics) else None)
    assert trainer.run() == "finished"

    assert readbacks == [10, 10, 5]  # one host sync per log_interval (and at the end), not one per step
    assert steps == list(range(1, 26))  # ... yet every step is still reported
    assert trainer.autocast == torch.bfloat16 and autocast_seen >= {(True, torch.bfloat16)}
    assert optimizers[0]["fused"] is True
    assert len(pinned) == 2 * 25  # inputs and targets of every step
    # Training attention goes through SDPA's causal form without a mask, the one flash attention accepts.
    assert len(attention) >= 25 and all(no_mask and causal for no_mask, causal in attention)
