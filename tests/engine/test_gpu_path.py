"""The GPU path's logic, checked on a CPU: the trainer is given CUDA's device features while it computes on the CPU."""
import math

import pytest
import torch
import torch.nn.functional as F

import lmcore.trainer
from engine_helpers import tiny_config, write_corpus
from lmcore import events as ev
from lmcore.checkpoint import load_checkpoint, read_summary, save_checkpoint
from lmcore.device import bf16_peak_flops, device_features, peak_flops
from lmcore.trainer import Trainer


def gpu_of_capability(monkeypatch, capability: tuple[int, int]):
    """The device features of a CUDA GPU of this compute capability (8.0 on: bf16 tensor cores)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    return device_features(torch.device("cuda"))


@pytest.fixture
def cuda_features(monkeypatch):
    return gpu_of_capability(monkeypatch, (9, 0))


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



def test_a_gpu_without_bf16_tensor_cores_gets_fp16_not_emulated_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # it counts emulation
    assert gpu_of_capability(monkeypatch, (7, 5)).autocast == torch.float16  # a T4
    assert gpu_of_capability(monkeypatch, (7, 0)).autocast == torch.float16  # a V100
    assert gpu_of_capability(monkeypatch, (8, 0)).autocast == torch.bfloat16  # an A100


def test_fp16_trains_with_a_gradient_scaler_that_a_resume_restores(tmp_path, monkeypatch):
    """The fp16 path's logic on a CPU: autocast in fp16 (the CPU has it), the loss scaled, the gradients unscaled
    before clipping at every step, and the scale kept in the checkpoint for a resume."""
    fp16_gpu = gpu_of_capability(monkeypatch, (7, 5))
    monkeypatch.setattr(lmcore.trainer, "device_features", lambda device: fp16_gpu)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: t)
    unscaled = []
    real_unscale = torch.amp.GradScaler.unscale_
    monkeypatch.setattr(torch.amp.GradScaler, "unscale_",
                        lambda scaler, optimizer: unscaled.append(real_unscale(scaler, optimizer)))
    trainer = Trainer.new(tiny_config(write_corpus(tmp_path, 20_000), tmp_path / "runs", max_steps=30,
                                      eval_interval=30))
    losses = []
    trainer.subscribe(lambda e: losses.append(e.loss) if isinstance(e, ev.StepMetrics) else None)
    assert trainer.run() == "finished"
    assert trainer.autocast == torch.float16 and trainer.scaler.is_enabled() and len(unscaled) == 30
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    path = trainer.folder.checkpoint_path("last")
    checkpoint = load_checkpoint(path)
    assert checkpoint.meta["grad_scaler"]["scale"] == trainer.scaler.get_scale() > 1
    checkpoint.meta["grad_scaler"]["scale"] = 1024.0  # a scale no fresh scaler starts from
    save_checkpoint(path, checkpoint, read_summary(path))
    resumed = Trainer.resume(trainer.folder.path, ["train.max_steps=31"])
    assert resumed.run() == "finished"
    assert resumed.scaler.get_scale() in (1024.0, 512.0)  # restored, then one step's update


def test_fp16_can_be_asked_for_by_name():
    from lmcore.config import RunConfig

    config = RunConfig()
    config.train.dtype = "fp16"
    assert lmcore.trainer.AUTOCAST[config.train.dtype] == torch.float16
