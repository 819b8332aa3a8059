"""Distillation: a student run trained on its text and on a teacher run's predictions (lmcore.distill)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from engine_helpers import tiny_config, write_corpus
from lmcore.distill import distillation_loss
from lmcore.errors import ConfigError
from lmcore.events import StepMetrics
from lmcore.metrics import read_metric_events
from lmcore.trainer import Trainer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path_factory.mktemp("teacher"), max_steps=20))
    assert trainer.run() == "finished"
    return trainer.folder.path


def distilled(config, teacher, alpha=0.3, temperature=2.0):
    config.distill = dataclasses.replace(config.distill, teacher=str(teacher), alpha=alpha, temperature=temperature)
    return config


def step_events(trainer) -> list[StepMetrics]:
    return [e for e in read_metric_events(trainer.folder.metrics_path) if isinstance(e, StepMetrics)]


def test_the_distillation_loss_is_zero_for_the_teachers_own_logits_and_grows_with_disagreement():
    logits = torch.randn(2, 5, 11)
    assert distillation_loss(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(logits, logits + torch.randn(2, 5, 11), 2.0).item() > 0.01


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_a_distilled_run_records_both_parts_of_its_loss(tmp_path, corpus, teacher, family):
    config = distilled(tiny_config(corpus, tmp_path, family, max_steps=6, eval_interval=6), teacher)
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    steps = step_events(trainer)
    assert len(steps) == 6
    for step in steps:
        assert step.text_loss is not None and step.teacher_loss is not None and step.teacher_loss >= 0
        assert step.loss == pytest.approx(0.3 * step.text_loss + 0.7 * step.teacher_loss, rel=1e-4)
    assert trainer.best_val_loss is not None


def test_a_run_without_a_teacher_records_no_parts(tmp_path, corpus):
    trainer = Trainer.new(tiny_config(corpus, tmp_path, max_steps=2, eval_interval=2))
    trainer.run()
    steps = step_events(trainer)
    assert steps and all(s.text_loss is None and s.teacher_loss is None for s in steps)


def test_a_teacher_with_another_tokenizer_is_refused_naming_both_runs(tmp_path, teacher):
    other = write_corpus(tmp_path, chars=3000, name="other.txt")  # fewer characters: another vocabulary
    trainer = Trainer.new(distilled(tiny_config(other, tmp_path / "runs", max_steps=2), teacher))
    assert trainer.run() == "failed"
    status = trainer.folder.read_status()
    assert "another tokenizer" in status["message"] and str(teacher) in status["message"]
    assert "tiny-transformer" in status["message"]


def test_a_teacher_that_cannot_be_loaded_is_named(tmp_path, corpus):
    trainer = Trainer.new(distilled(tiny_config(corpus, tmp_path / "runs", max_steps=2), tmp_path / "nowhere"))
    assert trainer.run() == "failed"
    assert "distill.teacher" in trainer.folder.read_status()["message"]


@pytest.mark.parametrize("key, value", [("alpha", 1.5), ("temperature", 0.0)])
def test_distillation_settings_out_of_range_name_their_field(tmp_path, corpus, key, value):
    config = tiny_config(corpus, tmp_path)
    setattr(config.distill, key, value)
    with pytest.raises(ConfigError) as caught:
        config.validate()
    assert caught.value.field == f"distill.{key}"
