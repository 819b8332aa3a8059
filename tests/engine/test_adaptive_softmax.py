"""The adaptive-softmax output of the RNN: a proper distribution, a proper loss, and it trains, saves and generates."""
import math

import pytest
import torch

from engine_helpers import tiny_config, write_corpus
from lmcore.checkpoint import load_trained_model
from lmcore.errors import ConfigError
from lmcore.generation import SamplingSettings, generate, score_text
from lmcore.models import RNNConfig, build_model, model_config_from_dict, model_config_to_dict
from lmcore.trainer import Trainer

V = 300
CUTOFFS = [20, 100]


def adaptive_rnn(**kw):
    torch.manual_seed(0)
    fields = dict(vocab_size=V, n_layer=1, n_embd=16, n_hidden=16, dropout=0.0, tie_embeddings=False,
                  adaptive_softmax_cutoffs=CUTOFFS)
    return build_model(RNNConfig(**{**fields, **kw})).eval()


@pytest.mark.parametrize("cutoffs, problem", [
    ([100, 20], "must increase"), ([20, 20], "must increase"), ([0, 100], "must increase"),
    ([20, V], "must increase"), (["20"], "a list of integers"), ([2.5], "a list of integers"),
])
def test_bad_cutoffs_are_refused_by_name(cutoffs, problem):
    with pytest.raises(ConfigError, match=f"adaptive_softmax_cutoffs.*{problem}"):
        RNNConfig(vocab_size=V, tie_embeddings=False, adaptive_softmax_cutoffs=cutoffs).validate()


def test_tied_embeddings_are_refused_with_an_adaptive_softmax():
    with pytest.raises(ConfigError, match="tie_embeddings = false"):
        RNNConfig(vocab_size=V, adaptive_softmax_cutoffs=CUTOFFS).validate()


def test_log_probabilities_normalise_and_the_loss_is_their_mean_negative_at_the_targets():
    model = adaptive_rnn()
    idx = torch.randint(0, V, (3, 9), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, V, (3, 9), generator=torch.Generator().manual_seed(2))
    log_probs = model(idx).logits
    assert log_probs.shape == (3, 9, V)
    torch.testing.assert_close(log_probs.logsumexp(-1), torch.zeros(3, 9), atol=1e-5, rtol=0)
    out = model(idx, targets)
    assert out.logits is None  # training never pays for the full [B, T, V]
    expected = -log_probs.gather(-1, targets.unsqueeze(-1)).mean()
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(model(idx, last_only=True).logits, log_probs[:, -1:])
    masked = targets.clone()
    masked[:, :4] = -1  # ignored, as the full softmax ignores them
    torch.testing.assert_close(model(idx, masked).loss, -log_probs[:, 4:].gather(-1, targets[:, 4:, None]).mean())


def test_config_round_trips_and_the_head_is_much_smaller_than_a_full_softmax():
    model = adaptive_rnn()
    again = model_config_from_dict(model_config_to_dict(model.config))
    assert again == model.config and again.adaptive_softmax_cutoffs == CUTOFFS
    full = build_model(RNNConfig(vocab_size=V, n_layer=1, n_embd=16, n_hidden=16, tie_embeddings=False))
    head = sum(p.numel() for p in model.output.parameters())
    assert head < 0.5 * sum(p.numel() for p in full.output.parameters())


def test_it_trains_saves_and_generates(tmp_path):
    config = tiny_config(write_corpus(tmp_path, 20_000), tmp_path / "runs", "rnn", max_steps=20, eval_interval=10)
    config.tokenizer.kind = "word"  # ids ordered by frequency, as the adaptive softmax's clusters assume
    config.model.tie_embeddings, config.model.adaptive_softmax_cutoffs = False, [50, 300]  # of ~1,600 words
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    losses = [r["val_loss"] for r in trainer.folder.read_metrics() if r["kind"] == "eval"]
    assert losses[-1] < losses[0] < math.log(trainer.tokenizer.vocab_size)

    model, tokenizer, _ = load_trained_model(trainer.folder.path, "last")
    assert model.config.adaptive_softmax_cutoffs == [50, 300]
    torch.testing.assert_close(model.state_dict(), trainer.model.state_dict())
    tokens = list(generate(model, tokenizer, "ROMEO: What", SamplingSettings(max_new_tokens=20, seed=1)))
    assert len(tokens) == 20 and all(0 < t.probability <= 1 for t in tokens)
    assert math.isfinite(score_text(model, tokenizer, "To be, or not to be").mean_loss)
