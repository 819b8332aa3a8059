"""Training under torchrun: data sharding, and two CPU processes (gloo) matching one process with the same batch."""
import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine_helpers import tiny_config, write_corpus
from lmcore.checkpoint import load_checkpoint
from lmcore.config import save_config
from lmcore.batches import ContiguousStreams, RandomWindows, rank_windows
from lmcore.distributed import Distributed, launch_environment
from lmcore.errors import ConfigError, CorpusError
from lmcore.runs import RunFolder
from lmcore.trainer import Trainer

STEPS = 8


# --- the pieces, in one process -------------------------------------------------------------------------------

def test_launch_environment_reads_torchrun_and_refuses_half_of_it():
    assert launch_environment({}) == (0, 0, 1)
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert launch_environment(env) == (3, 1, 4)
    with pytest.raises(ConfigError, match="RANK.*torchrun"):
        launch_environment({"WORLD_SIZE": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"})
    with pytest.raises(ConfigError, match="outside"):
        launch_environment({**env, "RANK": "4"})


def test_one_process_needs_no_process_group():
    one = Distributed()
    assert one.is_main and one.on_main(lambda: 42) == 42 and one.any(True) and not one.any(False)
    t = torch.tensor([1.0, 2.0])
    assert one.mean(t) is t and one.sum([1.0, 2.0]) == [1.0, 2.0] and one.all_gather_object("x") == ["x"]


def test_ranks_share_out_exactly_the_single_process_batch():
    data = np.arange(10_000)
    whole = RandomWindows(data, batch_size=6, context=8, seed=3)
    ranks = [RandomWindows(data, batch_size=2, context=8, seed=3, rank=r, world_size=3) for r in range(3)]
    for _ in range(4):  # successive batches, not just the first
        x, y = whole.next_batch()
        parts = [w.next_batch() for w in ranks]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    assert all(torch.equal(w.generator.get_state(), whole.generator.get_state()) for w in ranks)

    streams = ContiguousStreams(data, batch_size=4, bptt=5)
    halves = [ContiguousStreams(data, batch_size=2, bptt=5, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        x, _ = streams.next_batch()
        assert torch.equal(torch.cat([h.next_batch()[0] for h in halves]), x)


def test_evaluation_windows_are_split_between_ranks_once_each():
    data = np.arange(1 + 10 * 7)  # ten windows of 7 tokens
    parts = [rank_windows(data, 7, r, 3) for r in range(3)]
    assert [(len(p) - 1) // 7 for p in parts] == [3, 3, 4]
    assert np.array_equal(np.concatenate([p[:-1] for p in parts] + [data[-1:]]), data)
    assert (len(rank_windows(data, 7, 1, 2, max_windows=4)) - 1) // 7 == 2
    with pytest.raises(CorpusError, match="fewer than the 11 processes"):
        rank_windows(data, 7, 0, 11)


# --- two processes under torchrun -------------------------------------------------------------------------------

WORKER = """
import json
from lmcore.cli import main
from lmcore.config import load_config
from lmcore.trainer import Trainer

for family in ("transformer", "mlp", "conv"):  # `lmcore train CONFIG`, as torchrun would run it
    assert main(["train", f"{family}.toml", "--quiet"]) == 0

first = Trainer.new(load_config("rnn.toml"))
# Only rank 1 is asked to stop: the ranks must agree, and both stop after step 4.
first.add_periodic(1, lambda t: t.request_stop() if t.dist.rank == 1 and t.step == 4 else None)
stopped = first.run(), first.step
second = Trainer.resume(first.folder.path)
resumed = second.run(), second.step
with open(f"rank{first.dist.rank}.json", "w") as f:
    json.dump({"stopped": stopped, "resumed": resumed}, f)
"""
SETTINGS = {"transformer": dict(max_steps=STEPS, eval_interval=4), "rnn": dict(max_steps=STEPS, eval_interval=STEPS),
            "mlp": dict(max_steps=STEPS, eval_interval=4), "conv": dict(max_steps=STEPS, eval_interval=4)}


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One torchrun launch of two gloo processes (starting them costs most of the time): a Transformer, an MLP and a
    CNN trained with `lmcore train`, then an RNN stopped by one rank and resumed. Each rank has train.batch_size = 4."""
    folder = tmp_path_factory.mktemp("torchrun")
    corpus = write_corpus(folder, 20_000)
    for family, settings in SETTINGS.items():
        save_config(tiny_config(corpus, folder / family, family, batch_size=4, **settings), folder / f"{family}.toml")
    (folder / "worker.py").write_text(WORKER)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={port}", "worker.py"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder, corpus


def only_run(runs_dir):
    (run,) = runs_dir.iterdir()  # rank 0 alone made a run folder
    return run


def single_process_run(corpus, runs_dir, family):
    """The reference: one process with the global batch (2 x 4) and the same seed."""
    trainer = Trainer.new(tiny_config(corpus, runs_dir, family, batch_size=8, **SETTINGS[family]))
    assert trainer.run() == "finished"
    return trainer.folder.path


def records(run_dir, kind):
    return [r for r in RunFolder(run_dir).read_metrics() if r["kind"] == kind]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["transformer", "mlp", "conv"])  # the families that train on random windows
def test_lmcore_train_under_torchrun_matches_one_process_with_the_same_global_batch(launched, tmp_path, family):
    folder, corpus = launched
    run = only_run(folder / family)
    reference = single_process_run(corpus, tmp_path, family)
    steps = records(run, "step")
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))  # logged once, not once per rank
    assert steps[-1]["tokens"] == STEPS * 2 * 4 * 16  # tokens count both ranks
    assert [r["loss"] for r in steps] == pytest.approx([r["loss"] for r in records(reference, "step")], abs=1e-5)
    evals = [r["val_loss"] for r in records(run, "eval")]
    assert len(evals) == 2 and evals == pytest.approx([r["val_loss"] for r in records(reference, "eval")], abs=1e-5)
    checkpoint = load_checkpoint(RunFolder(run).checkpoint_path("last"))
    assert checkpoint.meta["world_size"] == 2 and "rank1.rng.torch" in checkpoint.extra
    # the unwrapped model's names: no "module." (DDP) or "_orig_mod." (compile) prefix
    assert set(checkpoint.model) == set(load_checkpoint(RunFolder(reference).checkpoint_path("last")).model)


@pytest.mark.slow
def test_an_rnn_stopped_by_one_rank_and_resumed_under_torchrun_follows_the_one_process_curve(launched, tmp_path):
    folder, corpus = launched
    for rank in (0, 1):
        outcome = json.loads((folder / f"rank{rank}.json").read_text())
        assert outcome == {"stopped": ["stopped", 4], "resumed": ["finished", STEPS]}
    run = only_run(folder / "rnn")
    reference = single_process_run(corpus, tmp_path, "rnn")
    # The resumed run carries each rank's slice of the hidden state over the stop, as one process carries all.
    assert [r["loss"] for r in records(run, "step")] == pytest.approx(
        [r["loss"] for r in records(reference, "step")], abs=1e-5)
    assert records(run, "eval")[0]["val_loss"] == pytest.approx(records(reference, "eval")[0]["val_loss"], abs=1e-5)
    hidden = load_checkpoint(RunFolder(run).checkpoint_path("last")).extra["hidden.0"]
    assert hidden.shape == (1, 8, 32)  # [layers, both ranks' streams, hidden]
