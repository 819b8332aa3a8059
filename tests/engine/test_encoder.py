"""The encoder family (BERT-style masked LM): the model, its training and evaluation, its checkpoints and resume,
its preset, and what generation does with it (refuses) and instead (fill_mask)."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine_helpers import stopped_and_resumed, tiny_config
from lmcore import events as ev
from lmcore.checkpoint import load_trained_model
from lmcore.config import load_config
from lmcore.errors import ConfigError, LMCoreError, TokenizerError
from lmcore.evaluation import evaluate_ids
from lmcore.generation import SamplingSettings, fill_mask, generate, score_text
from lmcore.masking import MaskedLM
from lmcore.metrics import metric_event, metric_record, read_metric_events
from lmcore.models import (IGNORE_INDEX, EncoderConfig, EncoderLM, TransformerConfig, build_model,
                           model_config_from_dict, model_config_to_dict)
from lmcore.runs import list_runs
from lmcore.tokenizers import load_tokenizer
from lmcore.trainer import Trainer

V = 23
PRESET = Path(__file__).resolve().parents[2] / "resources" / "presets" / "baby-bert-char.toml"


def tiny(config_class=EncoderConfig, **kw):
    torch.manual_seed(0)
    fields = dict(vocab_size=V, n_layer=2, n_head=2, n_embd=16, context_length=12)
    return build_model(config_class(**{**fields, **kw})).eval()


def tokens(B=2, T=12, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def encoder_config(corpus, runs_dir, positional="rotary", **train):
    """tiny_config's run with a tiny encoder in place of its Transformer."""
    config = tiny_config(corpus, runs_dir, **{"batch_size": 16, **train})
    config.name = "tiny-encoder"
    config.model = EncoderConfig(n_layer=1, n_head=2, n_embd=32, context_length=16, positional=positional)
    return config


# --- the model ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "rotary"])
def test_a_later_token_changes_an_earlier_positions_output_in_the_encoder_only(positional):
    idx = tokens()
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % V
    encoder, gpt = tiny(positional=positional), tiny(TransformerConfig, positional=positional)
    assert not torch.allclose(encoder(idx).logits[:, :-1], encoder(changed).logits[:, :-1])
    torch.testing.assert_close(gpt(idx).logits[:, :-1], gpt(changed).logits[:, :-1], rtol=0, atol=0)


@pytest.mark.parametrize("positional", ["learned", "rotary"])
def test_padding_is_ignored(positional):
    model = tiny(positional=positional)
    idx = tokens(T=7)
    padded = torch.cat([idx, torch.full((2, 5), 3)], dim=1)  # any id will do: the mask, not the id, hides it
    padding = torch.zeros(2, 12, dtype=torch.bool)
    padding[:, 7:] = True
    alone, with_padding = model(idx, capture_attention=True), model(padded, key_padding_mask=padding,
                                                                    capture_attention=True)
    torch.testing.assert_close(with_padding.logits[:, :7], alone.logits, rtol=1e-5, atol=1e-6)
    assert bool((with_padding.attention[..., 7:] == 0).all())  # no position looks at the padding
    # the fast path (scaled_dot_product_attention's mask) agrees with the spelled-out one
    torch.testing.assert_close(model(padded, key_padding_mask=padding).logits[:, :7], alone.logits,
                               rtol=1e-5, atol=1e-6)


def test_captured_attention_is_full_and_matches_the_fast_path():
    model = tiny()
    idx = tokens()
    out = model(idx, capture_attention=True)
    assert out.attention.shape == (2, 2, 2, 12, 12)  # [L, B, H, T, S]
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2, 2, 2, 12))
    ahead = torch.ones(12, 12, dtype=torch.bool).triu(diagonal=1)
    assert bool((out.attention[..., ahead] > 0).all())  # every position looks ahead too
    torch.testing.assert_close(out.logits, model(idx).logits, rtol=1e-5, atol=1e-6)


def test_the_mlm_loss_counts_only_the_chosen_positions():
    model = tiny()
    idx, original = tokens(), tokens(seed=2)
    targets = torch.full_like(original, IGNORE_INDEX)
    chosen = [(0, 1), (0, 7), (1, 3), (1, 11)]
    for b, t in chosen:
        targets[b, t] = original[b, t]
    out = model(idx, targets)
    log_probs = F.log_softmax(out.logits, dim=-1)
    by_hand = -sum(log_probs[b, t, original[b, t]] for b, t in chosen) / len(chosen)
    torch.testing.assert_close(out.loss, by_hand)
    others = model(idx, torch.where(targets == IGNORE_INDEX, original, IGNORE_INDEX)).loss
    assert abs(others.item() - out.loss.item()) > 1e-4  # the unchosen positions' loss is another number
    assert model(idx, torch.full_like(original, IGNORE_INDEX)).loss.item() == 0.0  # none chosen: 0, not nan


def test_the_mlm_head_is_tied_to_the_embedding_and_counted():
    model = tiny()
    assert model.output.proj.weight is model.wte.weight
    assert model.family == "encoder" and not model.supports_kv_cache and model.init_state(2, "cpu") is None
    untied = tiny(tie_embeddings=False)
    assert untied.num_parameters() == model.num_parameters() + V * 16
    head = 16 * 16 + 16  # the head's dense layer and its layer norm's gain (no biases with bias = false)
    assert model.num_parameters() == tiny(TransformerConfig).num_parameters() + head
    assert model.flops_per_token() == pytest.approx(6 * model.num_parameters(non_embedding=True) + 12 * 2 * 16 * 12)


def test_state_is_refused_and_the_config_round_trips():
    model = tiny()
    with pytest.raises(ValueError, match="no state"):
        model(tokens(), state=object())
    d = model_config_to_dict(model.config)
    assert d["family"] == "encoder" and model_config_from_dict(d) == model.config
    assert isinstance(build_model(model_config_from_dict(d)), EncoderLM)
    with pytest.raises(ConfigError, match="model.context_length"):
        EncoderConfig(context_length=2).validate()


def test_a_tiny_encoder_overfits_a_repeated_sequence():
    torch.manual_seed(0)
    model = build_model(EncoderConfig(vocab_size=V + 4, n_layer=1, n_head=2, n_embd=32, context_length=14))
    mlm = MaskedLM(V, V + 1, V + 2, V + 3, V + 4)
    sequence = mlm.frame(torch.arange(12)[None] % V).expand(32, -1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        x, y = mlm.mask(sequence, generator)
        loss = model(x, y).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3


# --- training, checkpoints, resume ----------------------------------------------------------------------------

def test_an_encoder_run_trains_its_masked_accuracy_rises_and_it_saves_and_loads(tmp_path, small_corpus):
    trainer = Trainer.new(encoder_config(small_corpus, tmp_path / "runs", max_steps=240, eval_interval=80))
    seen = []
    trainer.subscribe(seen.append)
    assert trainer.run() == "finished"
    evals = [e for e in seen if isinstance(e, ev.EvalMetrics)]
    assert [e.step for e in evals] == [80, 160, 240]
    assert all(e.val_bits_per_char is None and 0 < e.val_accuracy < 1 for e in evals)
    assert evals[-1].val_loss < evals[0].val_loss and evals[-1].val_perplexity == pytest.approx(
        math.exp(evals[-1].val_loss))

    tokenizer = trainer.tokenizer
    assert tokenizer.special_tokens == ("[CLS]", "[SEP]", "[MASK]", "[PAD]")
    assert load_tokenizer(trainer.folder.tokenizer_dir).fingerprint() == tokenizer.fingerprint()
    untrained = build_model(trainer.model.config)
    before = evaluate_ids(untrained, trainer.val_ids, 16, torch.device("cpu"), mlm=trainer.mlm)
    assert evals[-1].val_accuracy > max(before.accuracy + 0.08, 0.12)

    model, loaded_tokenizer, meta = load_trained_model(trainer.folder.path, "last")
    assert isinstance(model, EncoderLM) and meta["step"] == 240 and loaded_tokenizer.mask_id == tokenizer.mask_id
    again = evaluate_ids(model, trainer.val_ids, 16, torch.device("cpu"), mlm=MaskedLM.of(loaded_tokenizer))
    assert again.loss == pytest.approx(evals[-1].val_loss) and again.accuracy == pytest.approx(evals[-1].val_accuracy)
    records = read_metric_events(trainer.folder.metrics_path)
    assert [e.val_accuracy for e in records if isinstance(e, ev.EvalMetrics)] == [e.val_accuracy for e in evals]
    assert list_runs(tmp_path / "runs")[0].family == "encoder"


def test_stop_and_resume_gives_the_same_losses_as_an_uninterrupted_encoder_run(tmp_path, small_corpus):
    def config(folder):
        c = encoder_config(small_corpus, tmp_path / folder, positional="learned", max_steps=24, eval_interval=8)
        c.model.dropout = 0.1  # dropout makes the RNG state part of what resume must restore
        return c

    uninterrupted, resumed = stopped_and_resumed(config, tmp_path, ("val_loss", "val_accuracy"))
    assert len(resumed[0]) == 24 and len(resumed[1]) == 3
    assert resumed[0] == pytest.approx(uninterrupted[0], abs=1e-6)
    assert resumed[1] == pytest.approx(uninterrupted[1], abs=1e-6)


def test_an_encoder_needs_room_for_cls_and_sep(tmp_path, small_corpus):
    config = encoder_config(small_corpus, tmp_path, context=2)
    with pytest.raises(ConfigError, match="train.context = 2") as info:
        config.validate()
    assert info.value.field == "train.context"


def test_the_baby_bert_preset_validates():
    config = load_config(PRESET)
    config.validate()
    assert config.family == "encoder" and config.tokenizer.kind == "char"
    assert (config.model.n_layer, config.model.n_head, config.model.n_embd, config.train.context) == (4, 4, 128, 64)
    assert config.model.context_length == 64 and 1000 <= config.train.max_steps <= 10_000
    assert all(Path(p).is_file() for p in config.data.train)


def test_old_evaluation_records_and_event_lines_without_accuracy_still_load():
    old = {"kind": "eval", "step": 500, "tokens": 64000, "elapsed": 1.0, "val_loss": 2.4, "val_perplexity": 11.0,
           "val_bits_per_char": 3.5, "best": True}
    event = metric_event(old)
    assert isinstance(event, ev.EvalMetrics) and event.val_accuracy is None and event.val_loss == 2.4
    line = json.dumps({"event": "EvalMetrics", "v": 1, **{k: v for k, v in old.items() if k != "kind"}})
    assert ev.event_from_line(line) == event
    new = ev.EvalMetrics(10, 100, 0.5, 2.0, 7.4, None, True, 0.25)
    assert ev.event_from_line(ev.event_to_line(new)) == new and metric_event(metric_record(new)) == new


# --- generation refuses; fill_mask ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_corpus):
    trainer = Trainer.new(encoder_config(small_corpus, tmp_path_factory.mktemp("runs"), max_steps=40,
                                         eval_interval=40))
    assert trainer.run() == "finished"
    model, tokenizer, _ = load_trained_model(trainer.folder.path)
    return model, tokenizer, trainer.folder.path


def test_generation_and_scoring_refuse_an_encoder(trained):
    model, tokenizer, _ = trained
    with pytest.raises(LMCoreError, match="fills in blanks"):
        next(generate(model, tokenizer, "To be", SamplingSettings(seed=1)))
    with pytest.raises(LMCoreError, match="fills in blanks"):
        score_text(model, tokenizer, "To be, or not to be")


def test_fill_mask_gives_candidates_for_each_mask(trained):
    model, tokenizer, _ = trained
    text = "[MASK]o be, or t[MASK]"
    filled = fill_mask(model, tokenizer, text, top=5)
    assert [offset for offset, _ in filled] == [0, 16] and text[16:22] == "[MASK]"
    for _, candidates in filled:
        assert len(candidates) == 5 and 0 < sum(p for _, p in candidates) <= 1 + 1e-6
        assert [p for _, p in candidates] == sorted((p for _, p in candidates), reverse=True)
        assert all(len(text) == 1 and text not in tokenizer.special_tokens for text, _ in candidates)
    everything = fill_mask(model, tokenizer, "a[MASK]c", top=tokenizer.vocab_size)[0][1]
    assert sum(p for _, p in everything) == pytest.approx(1.0, abs=1e-5)  # over every token but the special ones


def test_fill_mask_explains_what_it_cannot_do(trained, tmp_path, small_corpus):
    model, tokenizer, _ = trained
    with pytest.raises(TokenizerError, match=r"no \[MASK\]"):
        fill_mask(model, tokenizer, "no blanks here")
    with pytest.raises(TokenizerError, match="at most 14"):
        fill_mask(model, tokenizer, "[MASK]" + "a" * 20)
    gpt = tiny(TransformerConfig, vocab_size=tokenizer.vocab_size)
    with pytest.raises(LMCoreError, match="continues text"):
        fill_mask(gpt, tokenizer, "a[MASK]")


def test_an_encoders_attention_is_captured_whole_and_saved_as_such(trained, tmp_path):
    from lmcore.attention import capture, load_snapshot, save_snapshot

    model, tokenizer, _ = trained
    snapshot = capture(model, tokenizer, "To be, or not to be", step=40)
    assert snapshot.kind == "attention" and not snapshot.causal
    assert snapshot.weights[0, 0, 0, 1:].sum() > 0  # the first query attends to later keys
    assert not load_snapshot(save_snapshot(snapshot, tmp_path)).causal


def test_lmcore_eval_scores_an_encoder_on_masked_tokens(trained, small_corpus, capsys):
    from lmcore.cli import main

    _, _, run_dir = trained
    assert main(["eval", str(run_dir), "--data", str(small_corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 < report["masked_accuracy"] <= 1 and report["bits_per_char"] is None and report["loss"] > 0
