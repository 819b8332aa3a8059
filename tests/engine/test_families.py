"""The feed-forward n-gram model (MLP, Bengio et al. 2003) and the gated convolutional model (CNN, Dauphin et al.
2017): shapes, causality and the exact receptive field, the incremental path against a full forward pass (in the
model, the generation Decoder and scoring), training, checkpoints, resume, `lmcore eval`, saliency and the
estimate."""
import json
import math

import pytest
import torch

from engine_helpers import stopped_and_resumed, tiny_config
from lmcore import events as ev
from lmcore.attention import capture
from lmcore.checkpoint import load_trained_model
from lmcore.config import config_from_dict, config_to_dict
from lmcore.errors import ConfigError
from lmcore.estimate import estimate_run
from lmcore.evaluation import evaluate_ids
from lmcore.generation import Decoder, SamplingSettings, generate, score_text
from lmcore.models import (ConvConfig, ConvLM, MLPConfig, MLPLM, RNNConfig, TransformerConfig, build_model,
                           model_config_from_dict, model_config_to_dict)
from lmcore.run_table import RunTable
from lmcore.runs import list_runs
from lmcore.trainer import Trainer

V = 23
TINY = {"mlp": dict(n_gram=5, n_embd=8, n_hidden=24, n_layer=2),
        "conv": dict(n_layer=3, n_embd=16, kernel_size=3, dilation_cycle=2)}
CONFIGS = {"mlp": MLPConfig, "conv": ConvConfig}
FAMILIES = ["mlp", "conv"]


def tiny(family, **kw):
    torch.manual_seed(0)
    return build_model(CONFIGS[family](vocab_size=V, **{**TINY[family], **kw})).eval()


def tokens(B=2, T=24, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def family_config(family, corpus, runs_dir, **train):
    """tiny_config's run with a tiny model of `family` in place of its Transformer."""
    config = tiny_config(corpus, runs_dir, **train)
    config.name = f"tiny-{family}"
    config.model = CONFIGS[family](**{**TINY[family], "n_embd": 16})
    return config


# --- the models -----------------------------------------------------------------------------------------------

VARIANTS = [{}, {"dropout": 0.1}, {"direct": True}, {"tie_embeddings": False}]


@pytest.mark.parametrize(("family", "variant"),
                         [(family, variant) for family in FAMILIES for variant in VARIANTS
                          if set(variant) <= set(CONFIGS[family].__dataclass_fields__)])  # each family's own settings
def test_shapes_and_a_first_loss_near_uniform(family, variant):
    model = tiny(family, **variant)
    idx = tokens()
    out = model(idx, targets=idx)
    assert out.logits.shape == (2, 24, V) and out.attention is None
    assert abs(out.loss.item() - math.log(V)) < 0.5
    assert model(idx, last_only=True).logits.shape == (2, 1, V)


@pytest.mark.parametrize("family", FAMILIES)
def test_future_tokens_do_not_change_past_logits(family):
    model = tiny(family)
    idx = tokens()
    for t in (0, 7, 23):
        changed = idx.clone()
        changed[:, t] = (changed[:, t] + 1) % V
        before, after = model(idx).logits, model(changed).logits
        torch.testing.assert_close(before[:, :t], after[:, :t], rtol=0, atol=0)
        assert not torch.allclose(before[:, t], after[:, t])


@pytest.mark.parametrize("family", FAMILIES)
def test_a_prediction_sees_exactly_its_receptive_field(family):
    model = tiny(family)
    field = model.receptive_field()
    assert field == (4 if family == "mlp" else 1 + 2 * (1 + 2 + 1))  # n - 1; 1 + (kernel - 1) x the dilations
    idx, t = tokens(), 20
    for back, seen in ((field - 1, True), (field, False)):
        changed = idx.clone()
        changed[:, t - back] = (changed[:, t - back] + 1) % V
        assert torch.allclose(model(idx).logits[:, t], model(changed).logits[:, t]) != seen


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("chunks", [[24], [1] * 24, [3, 1, 9, 11]])
def test_the_incremental_path_equals_a_full_forward_pass(family, chunks):
    model = tiny(family, **({"direct": True} if family == "mlp" else {}))
    idx = tokens()
    full = model(idx).logits
    state, pieces, start = model.init_state(2, "cpu"), [], 0
    for n in chunks:
        out = model(idx[:, start:start + n], state=state)
        state, start = out.state, start + n
        pieces.append(out.logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_decoder_and_scoring_match_recomputing_from_scratch(family, tmp_path):
    from lmcore.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train("abcdefghijklmnopqrstuv")  # 22 characters + <unk> = V
    model = tiny(family)
    ids = tokenizer.encode("".join("abcdefghijklmnopqrstuv"[i % 22] for i in tokens(B=1, T=40)[0].tolist()))
    cached, fresh = Decoder(model, "cpu"), Decoder(model, "cpu", cache=False)
    torch.testing.assert_close(cached.feed(ids[:10], all_logits=True), fresh.feed(ids[:10], all_logits=True))
    for token in ids[10:]:  # one position per new token, against the whole history recomputed
        torch.testing.assert_close(cached.feed([token]), fresh.feed([token]), rtol=1e-5, atol=1e-5)
    full = model(torch.tensor([ids])).logits[0]
    scored = score_text(model, tokenizer, tokenizer.decode(ids))
    losses = torch.nn.functional.cross_entropy(full[:-1], torch.tensor(ids[1:]), reduction="none")
    assert [t.loss for t in scored.tokens[1:]] == pytest.approx(losses.tolist(), abs=1e-4)
    settings = SamplingSettings(max_new_tokens=30, seed=3)
    first = [t.id for t in generate(model, tokenizer, "abc", settings)]
    assert first == [t.id for t in generate(model, tokenizer, "abc", settings)] and len(first) == 30


def test_settings_are_checked_by_name_and_round_trip():
    for config, field in ((ConvConfig(kernel_size=1), "model.kernel_size"), (MLPConfig(n_gram=1), "model.n_gram"),
                          (ConvConfig(dilation_cycle=0), "model.dilation_cycle"), (MLPConfig(n_hidden=0),
                                                                                   "model.n_hidden")):
        with pytest.raises(ConfigError, match=field) as info:
            config.validate()
        assert info.value.field == field
    for config in (MLPConfig(n_gram=9, direct=True), ConvConfig(kernel_size=4, tie_embeddings=False)):
        assert model_config_from_dict(model_config_to_dict(config)) == config
    config = family_config("conv", "c.txt", "runs")
    raw = config_to_dict(config)
    assert raw["model"]["family"] == "conv" and config_from_dict(raw).model == config.model
    with pytest.raises(ConfigError, match="model.n_head"):  # a Transformer's setting is not a CNN's
        config_from_dict({**raw, "model": {**raw["model"], "n_head": 4}})


def test_parameter_and_flop_counts():
    mlp = tiny("mlp", direct=True)
    k, E, H = 4, 8, 24
    hidden = k * E * H + H + H * H + H
    output = (H + k * E) * V + V
    assert mlp.num_parameters() == V * E + E + hidden + output
    assert mlp.num_parameters(non_embedding=True) == hidden + output
    assert mlp.flops_per_token() == 6 * (hidden + output)
    conv = tiny("conv")
    C = 16
    blocks = 3 * (2 * C + C * 2 * C * 3 + 2 * C)  # norm, kernels, biases
    assert conv.num_parameters() == V * C + blocks + 2 * C  # tied output, final norm
    assert conv.flops_per_token() == 6 * conv.num_parameters()  # the tied table is a matmul too


def test_the_estimate_gives_every_familys_receptive_field(tmp_path):
    config = family_config("conv", "c.txt", tmp_path)
    assert estimate_run(config, V).receptive_field == 9
    config.model = MLPConfig(n_gram=7)
    estimate = estimate_run(config, V)
    assert estimate.receptive_field == 6 and estimate.parameters == build_model(config.model_for(V)).num_parameters()
    config.model = TransformerConfig(context_length=16)
    assert estimate_run(config, V).receptive_field == 16
    config.model = RNNConfig()
    assert estimate_run(config, V).receptive_field is None


# --- training, checkpoints, resume, eval, saliency -------------------------------------------------------------

@pytest.fixture(scope="module", params=FAMILIES)
def trained(request, tmp_path_factory, small_corpus):
    runs = tmp_path_factory.mktemp("runs")
    trainer = Trainer.new(family_config(request.param, small_corpus, runs, max_steps=60, eval_interval=30))
    seen = []
    trainer.subscribe(seen.append)
    assert trainer.run() == "finished"
    return trainer, [e for e in seen if isinstance(e, ev.EvalMetrics)]


def test_a_run_learns_and_its_checkpoint_gives_the_same_model(trained):
    trainer, evals = trained
    assert [e.step for e in evals] == [30, 60] and evals[-1].val_loss < evals[0].val_loss < math.log(V) + 1
    assert evals[-1].val_bits_per_char is not None
    model, tokenizer, meta = load_trained_model(trainer.folder.path, "last")
    assert isinstance(model, (MLPLM, ConvLM)) and model.family == trainer.model.family and meta["step"] == 60
    again = evaluate_ids(model, trainer.val_ids, 16, torch.device("cpu"))
    assert again.loss == pytest.approx(evals[-1].val_loss, abs=1e-5)
    assert "".join(t.text for t in generate(model, tokenizer, "ROMEO:", SamplingSettings(max_new_tokens=20, seed=1)))
    row = RunTable(trainer.folder.path.parent).rows()[0]
    assert row.values["family"] == {"mlp": "MLP", "conv": "CNN"}[model.family]
    assert list_runs(trainer.folder.path.parent)[0].family == model.family


def test_lmcore_eval_scores_the_run(trained, small_corpus, capsys):
    from lmcore.cli import main

    trainer, evals = trained
    assert main(["eval", str(trainer.folder.path), "--data", str(small_corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["loss"] > 0 and report["bits_per_char"] == pytest.approx(report["bits_per_token"])  # characters


def test_saliency_covers_each_prediction_and_never_the_future(trained):
    trainer, _ = trained
    snapshot = capture(trainer.model, trainer.tokenizer, "To be, or not to be", step=60)
    weights = snapshot.weights[0, 0]
    assert snapshot.kind == "saliency" and weights.shape == (19, 19) and len(snapshot.predicted) == 19
    assert (weights[torch.ones(19, 19).triu(1).bool().numpy()] == 0).all()
    assert weights.sum(-1) == pytest.approx(1.0, abs=1e-5)
    if trainer.model.family == "mlp":  # n - 1 = 4 tokens back, its own included, and nothing further
        assert (weights[10, :7] == 0).all() and (weights[10, 7:11] > 0).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_stop_and_resume_gives_the_same_losses_as_an_uninterrupted_run(family, tmp_path, small_corpus):
    def config(folder):
        c = family_config(family, small_corpus, tmp_path / folder, max_steps=24, eval_interval=8)
        c.model.dropout = 0.1  # dropout makes the RNG state part of what resume must restore
        return c

    uninterrupted, resumed = stopped_and_resumed(config, tmp_path)
    assert len(resumed[0]) == 24 and len(resumed[1]) == 3
    assert resumed[0] == pytest.approx(uninterrupted[0], abs=1e-6)
    assert resumed[1] == pytest.approx(uninterrupted[1], abs=1e-6)
