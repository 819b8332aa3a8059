"""The generation engine: sampling rules, streaming, the KV cache and window sliding, scoring, clear errors."""
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from engine_helpers import SAMPLE_CORPUS, tiny_config
from lmcore import generation
from lmcore.checkpoint import load_trained_model
from lmcore.errors import CheckpointError, ConfigError, TokenizerError
from lmcore.generation import (Decoder, SamplingSettings, TextStream, choose_next, generate,
                               score_text, window_start)
from lmcore.models import RNNConfig, TransformerConfig, build_model
from lmcore.tokenizers import CharTokenizer, TokenizerConfig, WordTokenizer, train_tokenizer
from lmcore.trainer import Trainer

TEXT = SAMPLE_CORPUS.read_text(encoding="utf-8")[:20_000]
CONTEXT = 16


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer.train(TEXT)


def make_model(family: str, vocab_size: int):
    torch.manual_seed(0)
    config = (TransformerConfig(vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=32, context_length=CONTEXT)
              if family == "transformer" else
              RNNConfig(vocab_size=vocab_size, cell="lstm", n_layer=1, n_embd=32, n_hidden=32, dropout=0.0))
    return build_model(config).eval()


@pytest.fixture(scope="module", params=["transformer", "rnn"])
def model(request, tokenizer):
    return make_model(request.param, tokenizer.vocab_size)


@pytest.fixture(scope="module")
def transformer(tokenizer):
    return make_model("transformer", tokenizer.vocab_size)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path_factory.mktemp("gen-run"), max_steps=10,
                                      eval_interval=10))
    assert trainer.run() == "finished"
    return trainer.folder.path


def ids_of(model, tokenizer, prompt, **settings):
    return [t.id for t in generate(model, tokenizer, prompt, SamplingSettings(**settings))]


# --- sampling rules ----------------------------------------------------------------------------------------

def test_greedy_is_deterministic_and_ignores_the_seed(model, tokenizer):
    first = ids_of(model, tokenizer, "ROMEO:", max_new_tokens=40, greedy=True, seed=1)
    assert first == ids_of(model, tokenizer, "ROMEO:", max_new_tokens=40, greedy=True, seed=2)
    # every step took the argmax of the model's own distribution
    tokens = list(generate(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=40, greedy=True)))
    assert all(t.candidates[0][0] == t.id and t.probability == pytest.approx(t.candidates[0][1]) for t in tokens)


def test_top_k_1_equals_greedy(model, tokenizer):
    greedy = ids_of(model, tokenizer, "ROMEO:", max_new_tokens=40, greedy=True)
    for seed in range(3):
        assert ids_of(model, tokenizer, "ROMEO:", max_new_tokens=40, top_k=1, temperature=2.0, seed=seed) == greedy


def test_top_p_keeps_only_the_smallest_set_reaching_p():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    generator = torch.Generator().manual_seed(0)

    def draws(**settings):
        return {choose_next(logits, SamplingSettings(temperature=1.0, **settings), [], generator) for _ in range(400)}

    assert draws(top_p=0.7) == {0, 1}  # 0.5 < 0.7, so the token that crosses p (0.3) is kept too
    assert draws(top_p=0.5) == {0}
    assert draws(top_p=0.9) == {0, 1, 2}
    assert draws() == {0, 1, 2, 3}


def test_repetition_penalty_discourages_tokens_already_in_the_text():
    logits = torch.tensor([2.0, 1.9, -1.0])
    generator = torch.Generator()
    assert choose_next(logits, SamplingSettings(greedy=True), [0], generator) == 0
    assert choose_next(logits, SamplingSettings(greedy=True, repetition_penalty=1.2), [0], generator) == 1


def test_a_seed_reproduces_the_sample_and_another_seed_does_not(model, tokenizer):
    settings = dict(max_new_tokens=40, temperature=1.0)
    a = ids_of(model, tokenizer, "ROMEO:", seed=11, **settings)
    assert a == ids_of(model, tokenizer, "ROMEO:", seed=11, **settings)
    assert a != ids_of(model, tokenizer, "ROMEO:", seed=12, **settings)


def test_bad_settings_are_refused_with_the_setting_named(model, tokenizer):
    for bad, word in [({"temperature": 0}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_k": -1}, "top_k"),
                      ({"stop": [""]}, "stop string"), ({"repetition_penalty": 0.5}, "repetition_penalty")]:
        with pytest.raises(ConfigError, match=word):
            ids_of(model, tokenizer, "A", **bad)


# --- streaming and stopping ----------------------------------------------------------------------------------

def test_tokens_stream_one_at_a_time_and_their_pieces_make_the_text(model, tokenizer):
    polls = []
    stream = generate(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=30, seed=5),
                      should_stop=lambda: polls.append(1) and False)
    first = next(stream)
    assert len(polls) == 1  # the first token arrives before the rest are computed
    tokens = [first, *stream]
    assert len(tokens) == len(polls) == 30
    ids = [t.id for t in tokens]
    assert "".join(t.text for t in tokens) == tokenizer.decode(ids)
    for t in tokens:
        probabilities = [p for _, p in t.candidates]
        assert len(t.candidates) == 10 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < t.probability <= 1 and 0 <= t.entropy <= math.log(tokenizer.vocab_size) + 1e-5


def test_should_stop_ends_generation_before_the_next_token(model, tokenizer):
    seen = []
    stream = generate(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=1000, seed=1),
                      should_stop=lambda: len(seen) >= 7)
    for token in stream:
        seen.append(token)
    assert len(seen) == 7


def test_generation_stops_at_a_stop_string_and_keeps_it(model, tokenizer):
    full = "".join(t.text for t in generate(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=60, seed=4)))
    stop = full[20:23]
    text = "".join(t.text for t in generate(model, tokenizer, "ROMEO:",
                                            SamplingSettings(max_new_tokens=60, seed=4, stop=["zzzz", stop])))
    assert text == full[:full.index(stop) + len(stop)]


@pytest.mark.parametrize("kind", ["word", "sentencepiece"])
def test_text_pieces_follow_the_tokenizers_spacing_and_multibyte_characters(kind):
    text = "Hello there, Élodie — how are you? 😀\nFine thanks, and you?"
    tokenizer = (WordTokenizer.train(text, TokenizerConfig(kind="word")) if kind == "word" else
                 train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=400), TEXT + text))
    ids = tokenizer.encode(text)
    split = 3
    stream = TextStream(tokenizer, ids[:split])
    pieces = [stream.push(i) for i in ids[split:]]
    whole, prompt = tokenizer.decode(ids), tokenizer.decode(ids[:split])
    assert prompt + "".join(pieces) == whole
    if kind == "sentencepiece":  # the emoji's four byte tokens: three empty pieces, then the character
        assert "😀" in pieces and "\ufffd" not in "".join(pieces)


# --- the KV cache, the hidden state and the sliding window ---------------------------------------------------

def test_the_cache_matches_full_recompute_at_every_step_across_slides(model):
    ids = torch.randint(0, model.config.vocab_size, (3 * CONTEXT + 5,), generator=torch.Generator().manual_seed(1))
    cached, recomputed = Decoder(model, "cpu"), Decoder(model, "cpu", cache=False)
    for token in ids.tolist():
        torch.testing.assert_close(cached.feed([token]), recomputed.feed([token]), atol=1e-5, rtol=1e-4)


def test_right_after_a_slide_the_logits_are_a_full_forward_of_the_retained_window(transformer):
    ids = torch.randint(0, transformer.config.vocab_size, (CONTEXT + 1,), generator=torch.Generator().manual_seed(2))
    decoder = Decoder(transformer, "cpu")
    decoder.feed(ids[:CONTEXT].tolist())
    assert decoder.state.length == CONTEXT  # full: the next token cannot fit
    logits = decoder.feed([int(ids[CONTEXT])])
    start = window_start(CONTEXT + 1, CONTEXT)
    assert decoder.state.length == CONTEXT // 2 == CONTEXT + 1 - start  # rebuilt from the last half window
    with torch.no_grad():
        full = transformer(ids[None, start:]).logits[0, -1]
    torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-4)


def test_generating_far_past_the_context_works(transformer, tokenizer):
    tokens = list(generate(transformer, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=5 * CONTEXT, seed=0)))
    assert len(tokens) == 5 * CONTEXT


def test_continuing_from_the_ids_gives_what_one_go_would(model, tokenizer):
    prompt = tokenizer.encode("ROMEO:")
    once = ids_of(model, tokenizer, prompt, max_new_tokens=3 * CONTEXT, greedy=True)
    first = ids_of(model, tokenizer, prompt, max_new_tokens=CONTEXT + 3, greedy=True)
    rest = ids_of(model, tokenizer, prompt + first, max_new_tokens=2 * CONTEXT - 3, greedy=True)
    assert first + rest == once


# --- scoring -------------------------------------------------------------------------------------------------

def test_score_matches_a_full_forward_within_the_window(transformer, tokenizer):
    text = "ROMEO:\nWhat light"
    result = score_text(transformer, tokenizer, text)
    ids = torch.tensor([tokenizer.encode(text)])
    with torch.no_grad():
        expected = F.cross_entropy(transformer(ids[:, :-1]).logits[0], ids[0, 1:], reduction="none")
    assert result.tokens[0].loss is None and [t.text for t in result.tokens] == list(text)
    assert [t.loss for t in result.tokens[1:]] == pytest.approx(expected.tolist(), abs=1e-4)
    assert result.perplexity == pytest.approx(math.exp(expected.mean().item()), rel=1e-4)
    assert result.bits_per_char == pytest.approx(result.mean_loss / math.log(2))  # one token per character
    assert all(t.probability == pytest.approx(math.exp(-t.loss)) for t in result.tokens[1:])


def test_score_of_a_long_text_predicts_each_token_from_its_window(model, tokenizer, monkeypatch):
    monkeypatch.setattr(generation, "SCORE_CHUNK", 20)  # chunks end at other places than the window's slides
    text = TEXT[:5 * CONTEXT]
    result = score_text(model, tokenizer, text)
    ids = tokenizer.encode(text)
    reference = Decoder(model, "cpu", cache=False)
    losses = [float(F.cross_entropy(reference.feed([ids[i - 1]])[None], torch.tensor([ids[i]])))
              for i in range(1, len(ids))]
    assert [t.loss for t in result.tokens[1:]] == pytest.approx(losses, abs=1e-4)


# --- bad input -----------------------------------------------------------------------------------------------

def test_an_empty_prompt_needs_a_start_token(model, tokenizer):
    with pytest.raises(TokenizerError, match="prompt is empty"):
        ids_of(model, tokenizer, "", max_new_tokens=3)
    words = WordTokenizer.train(TEXT, TokenizerConfig(kind="word"))
    word_model = make_model("rnn", words.vocab_size)
    assert len(ids_of(word_model, words, "", max_new_tokens=3, seed=0)) == 3  # starts from the line break


def test_characters_a_char_tokenizer_never_saw_are_named(model, tokenizer):
    with pytest.raises(TokenizerError, match="'€'"):
        ids_of(model, tokenizer, "ROMEO: €5", max_new_tokens=3)
    with pytest.raises(TokenizerError, match="'€'"):
        score_text(model, tokenizer, "it cost €5")


def test_a_model_and_a_tokenizer_of_different_sizes_are_refused(tokenizer):
    with pytest.raises(TokenizerError, match="do not belong together"):
        ids_of(make_model("rnn", tokenizer.vocab_size + 3), tokenizer, "ROMEO:", max_new_tokens=3)


def test_a_run_whose_tokenizer_is_missing_or_replaced_gets_a_clear_message(run_dir, tmp_path):
    missing = shutil.copytree(run_dir, tmp_path / "missing")
    shutil.rmtree(missing / "tokenizer")
    with pytest.raises(TokenizerError, match="tokenizer folder .* does not exist"):
        load_trained_model(missing, "best")

    replaced = shutil.copytree(run_dir, tmp_path / "replaced")
    CharTokenizer.train(TEXT + "€").save(replaced / "tokenizer")
    with pytest.raises(CheckpointError, match="does not match"):
        load_trained_model(replaced, "best")


def test_an_rnn_with_an_adaptive_softmax_generates_and_scores(tokenizer):
    torch.manual_seed(0)
    model = build_model(RNNConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_embd=32, n_hidden=32, dropout=0.0,
                                  tie_embeddings=False, adaptive_softmax_cutoffs=[20, 40])).eval()
    tokens = list(generate(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=20, seed=0)))
    assert len(tokens) == 20  # its outputs are log-probabilities already: softmax over them changes nothing
    assert all(sum(p for _, p in t.candidates) <= 1 + 1e-5 and t.entropy <= math.log(tokenizer.vocab_size) + 1e-4
               for t in tokens)
    result = score_text(model, tokenizer, "ROMEO:\nWhat light")
    assert all(t.loss == pytest.approx(-math.log(t.probability)) for t in result.tokens[1:])


def test_a_character_model_never_samples_unk(tokenizer):
    """<unk> stands for characters the corpus never had; an undertrained model may still favour it."""
    model = make_model("transformer", tokenizer.vocab_size)
    with torch.no_grad():
        model.output.proj.weight[tokenizer.unk_id] *= 0
        model.output.proj.weight[tokenizer.unk_id, :] += 50.0  # every position now prefers <unk> by far
    tokens = list(generate(model, tokenizer, "To be", SamplingSettings(max_new_tokens=30, seed=3, temperature=1.0)))
    assert len(tokens) == 30 and tokenizer.unk_id not in [t.id for t in tokens]
    word_tokenizer = WordTokenizer.train(TEXT, TokenizerConfig(kind="word", max_vocab=50))
    assert generation.never_generated(word_tokenizer) == []  # a word model's <unk> is a real prediction: rare words


def test_each_token_carries_the_distribution_it_was_drawn_from(tokenizer):
    """The raw distribution is the model's; the sampled one shows what temperature, top-k and top-p did to it."""
    model = make_model("transformer", tokenizer.vocab_size)
    cool = list(generate(model, tokenizer, "To be", SamplingSettings(max_new_tokens=5, seed=1, temperature=0.3,
                                                                      top_k=3)))
    hot = list(generate(model, tokenizer, "To be", SamplingSettings(max_new_tokens=5, seed=1, temperature=2.0)))
    for token in cool:
        assert len(token.sampled_candidates) <= 3  # top-k 3 leaves three tokens to draw from
        assert sum(p for _, p in token.sampled_candidates) == pytest.approx(1.0, abs=1e-5)
        assert dict(token.sampled_candidates)[token.id] == pytest.approx(token.sampled_probability)
        assert token.sampled_candidates[0][1] > token.candidates[0][1]  # a low temperature sharpens
    first = hot[0]
    assert first.candidates == cool[0].candidates  # the raw distribution does not depend on the settings
    assert first.sampled_candidates[0][1] < first.candidates[0][1]  # a high temperature flattens
    greedy = next(generate(model, tokenizer, "To be", SamplingSettings(max_new_tokens=1, greedy=True)))
    assert greedy.sampled_candidates == [(greedy.id, 1.0)] and greedy.id == greedy.candidates[0][0]
