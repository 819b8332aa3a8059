"""MFU live: the Started event carries the devices' peak FLOP/s, and the CLI's progress line shows tokens/s and MFU."""
import io
import json
from pathlib import Path

import pytest
import torch

from lmcore import device as device_module
from lmcore import events as ev
from lmcore.device import host_threads, matmul_peak_flops, run_peak_flops
from lmcore.progress import ProgressBar, eval_text, mfu
from lmcore.trainer import Trainer
from engine_helpers import tiny_config

STARTED = ev.Started(Path("/runs/r"), "CPU (1 thread)", 1000, 100, 0, 1024, 3e6, 2e11)


def test_mfu_is_the_share_of_the_peak_that_training_uses():
    assert mfu(20_000, 3e6, 2e11) == pytest.approx(0.3)
    assert mfu(20_000, 3e6, None) is None and mfu(20_000, 0.0, 2e11) is None  # a followed run knows neither


def test_the_progress_line_shows_tokens_per_second_and_mfu():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar(STARTED)
    bar(ev.StepMetrics(50, 51_200, 2.5, 1e-3, 0.4, 20_000.0, 2.5))
    line = stream.getvalue().splitlines()[-1]
    assert "50/100 loss 2.5000 20,000 tok/s MFU 30.0% ETA 0:00:02" in line
    bar = ProgressBar(stream := io.StringIO())
    bar(ev.Started("/runs/r", "?", 1000, 100, 0, 1024, 3e6))  # no peak: no MFU
    bar(ev.StepMetrics(50, 51_200, 2.5, 1e-3, 0.4, 20_000.0, 2.5))
    assert "tok/s ETA" in stream.getvalue()


def test_a_redrawn_line_is_padded_over_the_last_not_erased_with_escape_codes():
    stream = io.StringIO()
    bar = ProgressBar(stream, overwrite=True)
    bar(ev.Preparing("Encoding training split", 0.5))
    bar(ev.Preparing("Done", None))
    bar(ev.EvalMetrics(10, 100, 1.0, 2.0, 7.39, None, True))
    text = stream.getvalue()
    assert "\033" not in text
    assert text == ("\rEncoding training split  50%" + "\rDone".ljust(len("Encoding training split  50%") + 1)
                    + "\r    \r" + "step 10: val loss 2.0000 ppl 7.39 (best)\n")


def test_started_carries_the_peak_and_host_threads_and_reads_lines_without_them():
    assert ev.event_from_line(ev.event_to_line(STARTED)) == STARTED
    old = json.loads(ev.event_to_line(STARTED))
    del old["peak_flops"], old["host_threads"]  # a writer from before the fields
    assert ev.event_from_line(json.dumps(old)).peak_flops is None
    assert ev.event_from_line(json.dumps(old)).host_threads == 0  # not said


def test_the_peak_is_measured_once_without_touching_the_global_rng(monkeypatch):
    monkeypatch.setattr(device_module, "peak_flops", lambda device: None)  # as a GPU no data sheet knows
    device_module._measured_peak_flops.cache_clear()
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    peak = run_peak_flops(torch.device("cpu"))
    assert torch.equal(torch.rand(4), expected)  # a run's dropout masks and a resumed run's state are its own
    assert 1e8 < peak < 1e15
    assert run_peak_flops(torch.device("cpu"), processes=2) == 2 * peak  # measured once, then remembered
    assert matmul_peak_flops(torch.device("cpu"), size=64, repeats=2, warmup=1) > 0


def test_a_run_reports_its_peak_and_the_cpu_threads_it_keeps_busy_in_started(tmp_path, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path, max_steps=2, eval_interval=2))
    started = []
    trainer.subscribe(lambda e: started.append(e) if isinstance(e, ev.Started) else None)
    assert trainer.run() == "finished"
    assert started[0].peak_flops == run_peak_flops(torch.device("cpu")) > 0
    assert started[0].host_threads == torch.get_num_threads()  # on the CPU: PyTorch's intra-op threads


def test_a_run_on_gpus_keeps_a_cpu_thread_busy_per_process():
    assert host_threads(torch.device("cuda"), processes=4) == 4
    assert host_threads(torch.device("cpu"), processes=2) == 2 * torch.get_num_threads()


def test_an_evaluation_line_shows_what_the_model_was_measured_by():
    assert eval_text(ev.EvalMetrics(10, 100, 1.0, 2.0, 7.39, 3.1, True)) == \
        "step 10: val loss 2.0000 ppl 7.39 bpc 3.100 (best)"
    masked = ev.EvalMetrics(10, 100, 1.0, 2.0, 7.39, None, False, val_accuracy=0.452)  # a masked LM's
    assert eval_text(masked) == "step 10: val loss 2.0000 ppl 7.39 accuracy 45.2%"
