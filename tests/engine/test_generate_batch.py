"""Several samples of one prompt in one batch: sample i is what a single generation with seed + i gives."""
import dataclasses

import pytest
import torch

from engine_helpers import SAMPLE_CORPUS
from lmcore.errors import ConfigError
from lmcore.generation import Decoder, SamplingSettings, generate, generate_batch
from lmcore.models import RNNConfig, TransformerConfig, build_model
from lmcore.tokenizers import CharTokenizer

TEXT = SAMPLE_CORPUS.read_text(encoding="utf-8")[:20_000]
CONTEXT = 8  # short, so that 40 new tokens slide the Transformer's window several times


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer.train(TEXT)


@pytest.fixture(scope="module", params=["transformer", "rnn"])
def model(request, tokenizer):
    torch.manual_seed(0)
    config = (TransformerConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32,
                                context_length=CONTEXT)
              if request.param == "transformer" else
              RNNConfig(vocab_size=tokenizer.vocab_size, cell="lstm", n_layer=1, n_embd=32, n_hidden=32, dropout=0.0))
    return build_model(config).eval()


def alone(model, tokenizer, prompt, settings, seed):
    return list(generate(model, tokenizer, prompt, dataclasses.replace(settings, seed=seed)))


@pytest.mark.parametrize("settings", [
    SamplingSettings(max_new_tokens=40, seed=11),
    SamplingSettings(max_new_tokens=40, seed=3, temperature=1.2, top_k=20, top_p=0.9, repetition_penalty=1.2),
], ids=["plain", "filtered"])
def test_sample_i_is_the_single_generation_with_seed_plus_i(model, tokenizer, settings):
    samples = generate_batch(model, tokenizer, "ROMEO:", settings, 3)
    assert [s.seed for s in samples] == [settings.seed, settings.seed + 1, settings.seed + 2]
    for sample in samples:
        single = alone(model, tokenizer, "ROMEO:", settings, sample.seed)
        assert [t.id for t in sample.tokens] == [t.id for t in single]
        assert [t.probability for t in sample.tokens] == pytest.approx([t.probability for t in single], rel=1e-4)
        assert sample.text == "".join(t.text for t in single)
    assert len({s.text for s in samples}) > 1  # different seeds, different samples


def test_each_sample_ends_at_its_own_stop_string(model, tokenizer):
    settings = SamplingSettings(max_new_tokens=60, seed=5, stop=["e"])
    samples = generate_batch(model, tokenizer, "ROMEO:", settings, 4)
    for sample in samples:
        single = alone(model, tokenizer, "ROMEO:", settings, sample.seed)
        assert [t.id for t in sample.tokens] == [t.id for t in single]
        assert sample.text.count("e") <= 1 and (sample.text.endswith("e") or len(sample.tokens) == 60)
    assert len({len(s.tokens) for s in samples}) > 1  # they ended at different lengths, in one batch


def test_the_batch_is_one_forward_pass_a_token(model, tokenizer, monkeypatch):
    calls = []
    original = Decoder._advance

    def counting(self, rows, wanted):
        calls.append(len(rows))
        return original(self, rows, wanted)

    monkeypatch.setattr(Decoder, "_advance", counting)
    generate_batch(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=10, seed=1), 5)
    assert calls == [5] * 10  # the prompt, then one pass of 5 rows for each token after the first


def test_greedy_samples_agree_and_a_fresh_seed_is_reported(model, tokenizer):
    greedy = generate_batch(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=20, greedy=True), 2)
    assert greedy[0].text == greedy[1].text
    fresh = generate_batch(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=5), 2)
    assert fresh[1].seed == fresh[0].seed + 1


def test_at_least_one_sample(model, tokenizer):
    with pytest.raises(ConfigError, match="at least 1"):
        generate_batch(model, tokenizer, "ROMEO:", SamplingSettings(), 0)
