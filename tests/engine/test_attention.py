import math

import numpy as np
import pytest
import torch
from attention_helpers import one_torch_thread  # noqa: F401 - an autouse fixture
from engine_helpers import tiny_config

from lmcore import attention
from lmcore.attention import AttentionProbe, AttentionSnapshot, capture, gradient_saliency, opening_text
from lmcore.errors import TokenizerError
from lmcore.models import build_model
from lmcore.models.rnn import RNNConfig
from lmcore.models.transformer import TransformerConfig, apply_rotary
from lmcore.runs import RunFolder
from lmcore.tokenizers import CharTokenizer
from lmcore.trainer import Trainer

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind"


@pytest.fixture
def tokenizer():
    return CharTokenizer.train(TEXT)


def sharp_transformer(tokenizer, context=32):
    """Random weights scaled up, so the attention is far from uniform and a wrong index would show."""
    torch.manual_seed(0)
    model = build_model(TransformerConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=3, n_embd=24,
                                          context_length=context, positional="rotary"))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.c_attn.weight.mul_(20)
    return model.eval()


def small_rnn(tokenizer):
    torch.manual_seed(0)
    return build_model(RNNConfig(vocab_size=tokenizer.vocab_size, cell="lstm", n_layer=2, n_embd=16, n_hidden=16,
                                 dropout=0.0)).eval()


def assert_causal_distributions(weights):
    assert np.allclose(weights.sum(-1), 1.0, atol=1e-5)
    T = weights.shape[-1]
    assert np.all(weights[..., np.triu_indices(T, k=1)[0], np.triu_indices(T, k=1)[1]] == 0)
    assert np.all(weights >= 0)


def test_captured_attention_is_each_heads_softmax_over_the_past(tokenizer):
    model = sharp_transformer(tokenizer)
    text = TEXT[:20]
    snapshot = capture(model, tokenizer, text)
    L, H, T = 2, 3, len(text)
    assert snapshot.kind == "attention" and snapshot.weights.shape == (L, H, T, T) and snapshot.dropped == 0
    assert snapshot.tokens == list(text) and snapshot.weights.dtype == np.float32
    assert_causal_distributions(snapshot.weights)
    assert snapshot.weights.max() > 0.9  # the sharpened heads do not attend uniformly

    # layer 0 recomputed by hand from the model's own projections: the capture is that tensor, not another
    block = model.blocks[0]
    x = model.wte(torch.tensor([tokenizer.encode(text)]))
    q, k, _ = block.attn.c_attn(block.ln_1(x)).split(24, dim=2)
    q, k = (t.view(1, T, H, 8).transpose(1, 2) for t in (q, k))
    cos, sin = model.rope_cos[:T], model.rope_sin[:T]
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(8)
    expected = scores.masked_fill(torch.ones(T, T).triu(1).bool(), -math.inf).softmax(-1)[0]
    np.testing.assert_allclose(snapshot.weights[0], expected.detach().numpy(), atol=1e-5)


def test_a_text_longer_than_the_context_keeps_its_last_tokens(tokenizer):
    model = sharp_transformer(tokenizer, context=16)
    snapshot = capture(model, tokenizer, TEXT, step=42)
    assert snapshot.tokens == list(TEXT[-16:]) and snapshot.dropped == len(TEXT) - 16
    assert snapshot.weights.shape[-1] == 16 and snapshot.step == 42


def test_capture_restores_train_mode_and_leaves_gradients_alone(tokenizer):
    for model in (sharp_transformer(tokenizer), small_rnn(tokenizer)):
        model.train()
        capture(model, tokenizer, TEXT[:12])
        assert model.training and all(p.grad is None for p in model.parameters())


def test_unknown_characters_become_unk_and_an_empty_text_is_refused(tokenizer):
    model = sharp_transformer(tokenizer)
    assert capture(model, tokenizer, "Tö be").tokens == ["T", "<unk>", " ", "b", "e"]
    with pytest.raises(TokenizerError, match="no tokens"):
        capture(model, tokenizer, "")
    with pytest.raises(ValueError):
        AttentionProbe("", every=10)


def test_rnn_saliency_equals_one_backward_pass_per_position(tokenizer, monkeypatch):
    model = small_rnn(tokenizer)
    text = TEXT[:14]
    monkeypatch.setattr(attention, "LOGITS_BUDGET", 3 * len(text) * tokenizer.vocab_size)  # chunks of 3 rows
    snapshot = gradient_saliency(model, tokenizer, text)
    T = len(text)
    assert snapshot.kind == "saliency" and snapshot.weights.shape == (1, 1, T, T)
    assert_causal_distributions(snapshot.weights)

    ids = torch.tensor([tokenizer.encode(text)])
    expected = np.zeros((T, T), dtype=np.float32)
    predicted = []
    for t in range(T):  # the slow, obvious way: one forward and backward per prediction
        embedded = model.encoder(ids[:, :t + 1]).detach().requires_grad_()
        h, _ = model.rnn(embedded)
        log_probs = model.output(h)[0][0, t].log_softmax(-1)
        top = int(log_probs.argmax())
        (grad,) = torch.autograd.grad(log_probs[top], embedded)
        row = (grad * embedded).norm(dim=-1)[0].detach().numpy()
        expected[t, :t + 1] = row / row.sum()
        predicted.append(tokenizer.token_text(top))
    np.testing.assert_allclose(snapshot.weights[0, 0], expected, atol=1e-5)
    assert snapshot.predicted == predicted


def test_saliency_works_through_an_adaptive_softmax(tokenizer):
    torch.manual_seed(0)
    model = build_model(RNNConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_embd=16, n_hidden=16, dropout=0.0,
                                  tie_embeddings=False, adaptive_softmax_cutoffs=[8, 16]))
    snapshot = capture(model, tokenizer, TEXT[:12])
    assert snapshot.kind == "saliency"
    assert_causal_distributions(snapshot.weights)


def test_a_long_rnn_text_is_cut_to_the_saliency_window(tokenizer):
    snapshot = gradient_saliency(small_rnn(tokenizer), tokenizer, TEXT, window=10)
    assert snapshot.tokens == list(TEXT[-10:]) and snapshot.dropped == len(TEXT) - 10


def step_losses(run_dir):
    return [r["loss"] for r in RunFolder(run_dir).read_metrics() if r["kind"] == "step"]


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_the_probe_refreshes_during_training_without_changing_the_run(tmp_path, small_corpus, family):
    runs = []
    for name, probe in (("plain", None), ("probed", AttentionProbe("First Citizen:\nBefore we", every=5))):
        config = tiny_config(small_corpus, tmp_path / name, family, max_steps=20)
        config.model.dropout = 0.1  # the probe must not draw from the RNG that dropout uses
        trainer = Trainer.new(config)
        seen = []
        trainer.subscribe(seen.append)
        if probe:
            probe.attach(trainer)
        assert trainer.run() == "finished"
        runs.append((trainer, [e for e in seen if isinstance(e, AttentionSnapshot)]))
    (plain, none), (probed, snapshots) = runs
    assert none == [] and [s.step for s in snapshots] == [5, 10, 15, 20]
    assert step_losses(probed.folder.path) == step_losses(plain.folder.path)
    for snapshot in snapshots:
        assert snapshot.kind == ("attention" if family == "transformer" else "saliency")
        assert snapshot.run_dir == probed.folder.path and snapshot.tokens[-2:] == list("we")
        assert_causal_distributions(snapshot.weights)
    assert not np.allclose(snapshots[0].weights, snapshots[-1].weights, atol=1e-4)  # it follows the training


def test_opening_text_gives_whole_lines_from_the_start_of_the_corpus(tmp_path, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path / "runs"))
    assert opening_text(trainer.folder.path, 50) == "First Citizen:\n"  # the second line is cut at 50: left out
    assert opening_text(tmp_path / "nowhere") == ""
