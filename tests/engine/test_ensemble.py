"""Ensembles of runs that share a tokenizer (lmcore.ensemble): generation, scoring, evaluation, the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from engine_helpers import tiny_config, write_corpus
from lmcore.checkpoint import load_trained_model
from lmcore.cli import main
from lmcore.corpus import encode_with_progress
from lmcore.ensemble import MEANS, Ensemble, load_ensemble
from lmcore.errors import LMCoreError, TokenizerError
from lmcore.evaluation import evaluate_ids
from lmcore.generation import Decoder, SamplingSettings, generate, score_text
from lmcore.trainer import Trainer

VAL_TEXT_CHARS = 2000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus):
    """Two Transformers trained with different seeds and an LSTM, all on one text (one tokenizer)."""
    folder = tmp_path_factory.mktemp("runs")
    paths = []
    for family, seed in (("transformer", 1), ("transformer", 2), ("rnn", 3)):
        trainer = Trainer.new(tiny_config(corpus, folder, family, max_steps=30, seed=seed))
        assert trainer.run() == "finished"
        paths.append(trainer.folder.path)
    return paths


@pytest.mark.parametrize("mean", MEANS)
def test_the_ensemble_of_a_run_with_itself_is_the_run(runs, corpus, mean):
    model, tokenizer, _ = load_trained_model(runs[0])
    twice = Ensemble([model, model], mean)
    ids = torch.tensor([tokenizer.encode(corpus.read_text()[:16])])
    with torch.no_grad():
        alone, together = model(ids).logits.softmax(-1), twice(ids).logits.softmax(-1)
    torch.testing.assert_close(together, alone)
    text = corpus.read_text()[:300]
    assert score_text(twice, tokenizer, text).mean_loss == pytest.approx(score_text(model, tokenizer, text).mean_loss,
                                                                         rel=1e-5)
    settings = SamplingSettings(max_new_tokens=40, temperature=0.9, top_k=20, seed=3)
    single, double = list(generate(model, tokenizer, "ROMEO:", settings)), list(generate(twice, tokenizer,
                                                                                          "ROMEO:", settings))
    assert [t.id for t in double] == [t.id for t in single]
    assert [t.probability for t in double] == pytest.approx([t.probability for t in single], rel=1e-4)


def test_the_ensembles_validation_loss_is_at_most_its_members_mean(runs, corpus):
    ensemble, tokenizer, _ = load_ensemble(runs[:2])
    ids = encode_with_progress(tokenizer, corpus.read_text()[-VAL_TEXT_CHARS:])
    losses = [evaluate_ids(member, ids, 16, torch.device("cpu")).loss for member in ensemble.members]
    assert losses[0] != pytest.approx(losses[1])  # two different models
    assert evaluate_ids(ensemble, ids, 16, torch.device("cpu")).loss <= sum(losses) / len(losses)


def test_each_member_keeps_its_own_state_as_the_window_slides(runs):
    """A Transformer (KV cache, window of 16) with an LSTM (hidden state): cached decoding equals recomputing."""
    ensemble, tokenizer, _ = load_ensemble([runs[0], runs[2]])
    ids = tokenizer.encode("ROMEO:\nWhat light through yonder window breaks? It is the east")  # > 16 tokens
    cached, fresh = Decoder(ensemble, "cpu"), Decoder(ensemble, "cpu", cache=False)
    for token in ids:
        torch.testing.assert_close(cached.feed([token]), fresh.feed([token]), rtol=1e-4, atol=1e-5)


def test_runs_with_another_tokenizer_are_refused_naming_both(tmp_path, runs):
    other = write_corpus(tmp_path, chars=3000)  # fewer characters, another vocabulary
    trainer = Trainer.new(tiny_config(other, tmp_path / "runs", max_steps=2, eval_interval=2))
    trainer.run()
    with pytest.raises(TokenizerError, match="another tokenizer") as caught:
        load_ensemble([runs[0], trainer.folder.path])
    assert str(runs[0]) in str(caught.value) and str(trainer.folder.path) in str(caught.value)
    with pytest.raises(LMCoreError, match="at least two"):
        Ensemble([load_trained_model(runs[0])[0]])


def test_eval_and_sample_take_several_runs(runs, corpus, tmp_path, capsys):
    data = tmp_path / "val.txt"
    data.write_text(corpus.read_text()[-VAL_TEXT_CHARS:], encoding="utf-8")
    assert main(["eval", *map(str, runs[:2]), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["run"] for m in report["members"]] == [str(r) for r in runs[:2]]
    assert report["ensemble"]["mean"] == "probability"
    assert report["ensemble"]["loss"] <= sum(m["loss"] for m in report["members"]) / 2
    assert main(["eval", *map(str, runs), "--data", str(data), "--mean", "log-probability"]) == 0
    assert "ensemble (log-probability mean)" in capsys.readouterr().out
    assert main(["sample", *map(str, runs), "--prompt", "ROMEO:", "--max-new-tokens", "12", "--seed", "1",
                 "--json"]) == 0
    (sample,) = json.loads(capsys.readouterr().out)
    assert len(sample["tokens"]) == 12
