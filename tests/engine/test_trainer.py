import json
import math

import pytest
import torch

from engine_helpers import tiny_config, write_corpus
from lmcore import events as ev
from lmcore.checkpoint import load_checkpoint, load_trained_model
from lmcore.models import TransformerConfig
from lmcore.runs import RunFolder, list_runs
from lmcore.trainer import Trainer


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path, 20_000)


def collect(trainer):
    seen = []
    trainer.subscribe(seen.append)
    return seen


def step_losses(run_dir):
    return [r["loss"] for r in RunFolder(run_dir).read_metrics() if r["kind"] == "step"]


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_loss_falls_and_the_run_folder_holds_everything(tmp_path, corpus, family):
    trainer = Trainer.new(tiny_config(corpus, tmp_path / "runs", family, max_steps=60, eval_interval=20))
    seen = collect(trainer)
    assert trainer.run() == "finished"
    folder = trainer.folder
    evals = [e for e in seen if isinstance(e, ev.EvalMetrics)]
    steps = [e for e in seen if isinstance(e, ev.StepMetrics)]
    assert [e.step for e in evals] == [20, 40, 60] and [e.step for e in steps] == list(range(1, 61))
    assert evals[-1].val_loss < evals[0].val_loss < math.log(trainer.tokenizer.vocab_size)
    assert evals[-1].val_bits_per_char == pytest.approx(evals[-1].val_loss / math.log(2), rel=1e-6)
    assert isinstance(seen[-1], ev.Finished) and seen[-1].best_val_loss == min(e.val_loss for e in evals)
    assert (folder.path / "config.toml").is_file() and (folder.tokenizer_dir / "lmcore-tokenizer.json").is_file()
    assert folder.checkpoint_path("best").is_file() and folder.checkpoint_path("last").is_file()
    records = folder.read_metrics()
    assert [r["step"] for r in records if r["kind"] == "eval"] == [20, 40, 60]
    assert all(k in records[0] for k in ("step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed"))
    assert folder.read_status()["status"] == "finished"
    assert list_runs(tmp_path / "runs")[0].best_val_loss == pytest.approx(seen[-1].best_val_loss)


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_stop_and_resume_gives_the_same_loss_curve_as_an_uninterrupted_run(tmp_path, corpus, family):
    whole = tiny_config(corpus, tmp_path / "a", family, max_steps=30)
    whole.model.dropout = 0.1  # dropout makes the RNG state part of what resume must restore
    Trainer.new(whole).run()

    split = tiny_config(corpus, tmp_path / "b", family, max_steps=30)
    split.model.dropout = 0.1
    first = Trainer.new(split)
    first.subscribe(lambda e: first.request_stop() if isinstance(e, ev.StepMetrics) and e.step == 13 else None)
    assert first.run() == "stopped"
    assert load_checkpoint(first.folder.checkpoint_path("last")).meta["step"] == 13
    assert first.folder.read_status()["status"] == "stopped"
    second = Trainer.resume(first.folder.path)
    assert second.run() == "finished"

    uninterrupted = step_losses(list_runs(tmp_path / "a")[0].path)
    resumed = step_losses(first.folder.path)
    assert len(resumed) == 30
    assert resumed == pytest.approx(uninterrupted, abs=1e-6)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=40, eval_interval=10))

    def poison(event):
        if isinstance(event, ev.StepMetrics) and event.step == 14:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    trainer.subscribe(poison)
    seen = collect(trainer)
    assert trainer.run() == "failed"
    failure = seen[-1]
    assert isinstance(failure, ev.Failed) and "nan" in failure.message and "step 15" in failure.message
    assert "checkpoint (step 10)" in failure.message
    status = trainer.folder.read_status()
    assert status["status"] == "failed" and "nan" in status["message"]
    kept = load_checkpoint(trainer.folder.checkpoint_path("last"))
    assert kept.meta["step"] == 10 and all(torch.isfinite(t).all() for t in kept.model.values())
    assert max(r["step"] for r in trainer.folder.read_metrics()) == 14


def test_pause_holds_training_until_resumed_and_stop_works_while_paused(tmp_path, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=1000))
    seen = collect(trainer)

    def control(event):
        if isinstance(event, ev.StepMetrics) and event.step == 5:
            trainer.request_pause()
        if isinstance(event, ev.Paused):
            trainer.request_stop()

    trainer.subscribe(control)
    assert trainer.run() == "stopped"
    kinds = [type(e).__name__ for e in seen]
    assert "Paused" in kinds and kinds.index("Paused") > kinds.index("StepMetrics")
    assert seen[-1].step == 5 and trainer.folder.checkpoint_path("last").is_file()


def test_periodic_tasks_run_on_their_interval_and_emit_results(tmp_path, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=20))
    seen = collect(trainer)
    trainer.add_periodic(7, lambda t: ("probe", t.step))
    trainer.run()
    assert [e for e in seen if isinstance(e, tuple)] == [("probe", 7), ("probe", 14)]


def test_fine_tuning_starts_a_new_run_from_another_runs_weights(tmp_path, corpus):
    base = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=40))
    base.run()
    new_text = write_corpus(tmp_path, 8000, "new.txt")
    tune = tiny_config(new_text, tmp_path / "runs", max_steps=10)
    tune.init_from = str(base.folder.path)
    tune.model = TransformerConfig(n_layer=3)  # ignored: the source run's model is used
    tuned = Trainer.new(tune)
    start_weights = {}
    tuned.subscribe(lambda e: start_weights.update(
        {k: v.clone() for k, v in tuned.model.state_dict().items()}) if isinstance(e, ev.Started) else None)
    assert tuned.run() == "finished"
    source, _, _ = load_trained_model(base.folder.path, "best")
    assert tuned.model.config == source.config
    assert all(torch.equal(start_weights[k], v) for k, v in source.state_dict().items())
    assert tuned.folder.path != base.folder.path and tuned.step == 10
    assert tuned.tokenizer.fingerprint() == base.tokenizer.fingerprint()


def test_fine_tuning_on_text_the_tokenizer_cannot_represent_warns(tmp_path, corpus):
    base = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=2))
    base.run()
    chinese = tmp_path / "chinese.txt"
    chinese.write_text("今天天气很好，我们一起去公园散步吧。\n" * 300, encoding="utf-8")
    tune = tiny_config(chinese, tmp_path / "runs", max_steps=1)
    tune.init_from = str(base.folder.path)
    with pytest.warns(UserWarning, match=r"9\d\.\d% of the new text is unknown to the model's tokenizer"):
        assert Trainer.new(tune).run() == "finished"


def test_metrics_past_the_checkpoint_are_dropped_on_resume(tmp_path, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=20))
    trainer.run()
    folder = trainer.folder
    with folder.metrics_path.open("a") as f:  # as if a crash had logged steps after the last checkpoint
        f.write(json.dumps({"kind": "step", "step": 21, "loss": 1.0}) + "\n" + '{"kind": "st')
    resumed = Trainer.resume(folder.path)
    resumed.config.train.max_steps = 20
    resumed.run()
    assert max(r["step"] for r in folder.read_metrics()) == 20


def interrupt_at(step: int):
    """A subscriber that raises KeyboardInterrupt as a notebook's interrupted kernel would, at `step`."""
    def callback(event):
        if isinstance(event, ev.StepMetrics) and event.step == step:
            raise KeyboardInterrupt
    return callback


def test_an_interrupted_notebook_run_is_saved_and_stopped_and_resumes(tmp_path, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=30, eval_interval=100))
    trainer.subscribe(interrupt_at(12))
    assert trainer.run() == "stopped"
    assert trainer.folder.read_status()["status"] == "stopped"
    assert load_checkpoint(trainer.folder.checkpoint_path("last")).meta["step"] == 12
    assert list_runs(tmp_path / "runs")[0].status == "stopped"  # not "running" while the kernel lives on
    assert Trainer.resume(trainer.folder.path).run() == "finished"


def test_an_interrupt_before_training_began_fails_the_run_with_what_to_do(tmp_path, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path / "runs", max_steps=30))

    def interrupt_while_preparing(event):
        if isinstance(event, ev.Preparing):
            raise KeyboardInterrupt
    trainer.subscribe(interrupt_while_preparing)
    assert trainer.run() == "failed"
    status = trainer.folder.read_status()
    assert status["status"] == "failed" and "Interrupted before training began" in status["message"]
