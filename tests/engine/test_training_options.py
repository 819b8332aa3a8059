"""Optimizers, schedules, accumulation and seeding: the trainer's options do what they say."""
import pytest

from engine_helpers import tiny_config, write_corpus
from lmcore import events as ev
from lmcore.config import ScheduleConfig
from lmcore.schedule import LRSchedule
from lmcore.trainer import Trainer


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path, 20_000)


def losses(config):
    trainer = Trainer.new(config)
    seen = []
    trainer.subscribe(lambda e: seen.append(e.loss) if isinstance(e, ev.StepMetrics) else None)
    assert trainer.run() == "finished", trainer.folder.read_status()
    return seen


def test_warmup_then_cosine_reaches_the_floor():
    schedule = LRSchedule(ScheduleConfig(kind="cosine", warmup_steps=10, min_lr=1e-4), 1e-3, max_steps=100)
    assert schedule.lr_at(0) == pytest.approx(1e-3 / 11)
    assert schedule.lr_at(10) == pytest.approx(1e-3)
    assert schedule.lr_at(55) == pytest.approx((1e-3 + 1e-4) / 2)
    assert schedule.lr_at(100) == pytest.approx(1e-4) and schedule.lr_at(500) == pytest.approx(1e-4)


def test_plateau_divides_the_rate_when_validation_stops_improving():
    schedule = LRSchedule(ScheduleConfig(kind="plateau", plateau_factor=0.25), 20.0, max_steps=100)
    for loss in (5.0, 4.0):
        schedule.observe_validation(loss)
    assert schedule.lr_at(50) == 20.0
    schedule.observe_validation(4.5)
    assert schedule.lr_at(50) == 5.0
    schedule.observe_validation(3.0)
    assert schedule.lr_at(50) == 5.0


def test_constant_schedule_keeps_the_rate():
    schedule = LRSchedule(ScheduleConfig(kind="constant"), 3e-4, max_steps=10)
    assert {schedule.lr_at(s) for s in range(20)} == {3e-4}


def test_the_same_seed_reproduces_the_run_and_another_seed_does_not(tmp_path, corpus):
    a = losses(tiny_config(corpus, tmp_path / "runs", max_steps=15))
    b = losses(tiny_config(corpus, tmp_path / "runs", max_steps=15))
    c = losses(tiny_config(corpus, tmp_path / "runs", max_steps=15, seed=8))
    assert a == b and a != c


def test_gradient_accumulation_matches_one_big_batch(tmp_path, corpus):
    big = losses(tiny_config(corpus, tmp_path / "runs", max_steps=8, batch_size=8))
    accumulated = losses(tiny_config(corpus, tmp_path / "runs", max_steps=8, batch_size=4, grad_accum=2))
    assert accumulated == pytest.approx(big, abs=1e-5)


@pytest.mark.parametrize("optim", [{"name": "sgd", "lr": 0.5, "momentum": 0.9}, {"name": "adam", "lr": 3e-3},
                                   {"name": "adamw", "lr": 3e-3, "grad_clip": 0.0}])
def test_each_optimizer_lowers_the_loss(tmp_path, corpus, optim):
    config = tiny_config(corpus, tmp_path / "runs", max_steps=40)
    for key, value in optim.items():
        setattr(config.optim, key, value)
    seen = losses(config)
    assert sum(seen[-5:]) / 5 < sum(seen[:5]) / 5 - 0.3
