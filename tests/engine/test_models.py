import math

import pytest
import torch

from lmcore.errors import ConfigError
from lmcore.models import (
    RNNConfig, RNNLM, TransformerConfig, TransformerLM,
    build_model, model_config_from_dict, model_config_to_dict,
)

V = 23
POSITIONALS = ["learned", "sinusoidal", "rotary"]
CELLS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]


def tiny_transformer(**kw) -> TransformerLM:
    torch.manual_seed(0)
    fields = dict(vocab_size=V, n_layer=2, n_head=2, n_embd=16, context_length=12)
    return build_model(TransformerConfig(**{**fields, **kw})).eval()


def tiny_rnn(**kw) -> RNNLM:
    torch.manual_seed(0)
    fields = dict(vocab_size=V, n_layer=2, n_embd=16, n_hidden=16, dropout=0.0)
    return build_model(RNNConfig(**{**fields, **kw})).eval()


def tokens(B=2, T=12, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# --- shapes and losses ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("positional", POSITIONALS)
def test_transformer_shapes_and_initial_loss(positional):
    model = tiny_transformer(positional=positional)
    idx, targets = tokens(B=8), tokens(B=8, seed=2)
    out = model(idx, targets)
    assert out.logits.shape == (8, 12, V)
    assert out.state is None and out.attention is None
    assert abs(out.loss.item() - math.log(V)) < 0.1  # small init: near-uniform predictions
    last = model(idx, last_only=True).logits
    assert last.shape == (8, 1, V)
    torch.testing.assert_close(last, out.logits[:, -1:])


def test_loss_ignores_minus_one_targets():
    model = tiny_transformer()
    idx, targets = tokens(), tokens(seed=2)
    masked = targets.clone()
    masked[:, :6] = -1
    logits = model(idx).logits
    expected = torch.nn.functional.cross_entropy(logits[:, 6:].flatten(0, 1), targets[:, 6:].flatten())
    torch.testing.assert_close(model(idx, masked).loss, expected)


@pytest.mark.parametrize("cell", CELLS)
def test_rnn_shapes_and_state_carries_over(cell):
    model = tiny_rnn(cell=cell)
    idx = tokens()
    out = model(idx, tokens(seed=2))
    assert out.logits.shape == (2, 12, V) and out.attention is None
    assert torch.isfinite(out.loss)
    h = out.state[0] if cell == "lstm" else out.state
    assert h.shape == (2, 2, 16)
    # init_state is the zero state, and running two halves with the carried state equals one run.
    torch.testing.assert_close(model(idx, state=model.init_state(2, "cpu")).logits, out.logits)
    first = model(idx[:, :5])
    second = model(idx[:, 5:], state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), out.logits)
    assert model(idx, last_only=True).logits.shape == (2, 1, V)


# --- causality -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda p=p: tiny_transformer(positional=p) for p in POSITIONALS]
                         + [lambda c=c: tiny_rnn(cell=c) for c in CELLS])
def test_future_tokens_do_not_change_past_logits(make):
    model = make()
    idx = tokens()
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % V
    a, b = model(idx).logits, model(changed).logits
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=0, rtol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


# --- KV cache ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("positional", POSITIONALS)
@pytest.mark.parametrize("chunks", [[1] * 12, [3, 1, 4, 4], [5, 7]])
def test_kv_cache_matches_full_forward(positional, chunks):
    model = tiny_transformer(positional=positional)
    idx = tokens()
    full = model(idx).logits
    cache, pieces, start = model.init_state(2, "cpu"), [], 0
    for n in chunks:
        out = model(idx[:, start:start + n], state=cache)
        assert out.state is cache
        pieces.append(out.logits)
        start += n
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)


def test_too_many_positions_raise():
    model = tiny_transformer()
    with pytest.raises(ValueError, match="context_length"):
        model(tokens(T=13))
    cache = model.init_state(2, "cpu")
    model(tokens(T=10), state=cache)
    with pytest.raises(ValueError, match="context_length"):
        model(tokens(T=3), state=cache)


# --- attention capture ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("positional", POSITIONALS)
def test_capture_matches_fast_path(positional):
    model = tiny_transformer(positional=positional)
    idx = tokens()
    fast = model(idx)
    out = model(idx, capture_attention=True)
    torch.testing.assert_close(out.logits, fast.logits, atol=1e-5, rtol=1e-5)
    att = out.attention
    assert att.shape == (2, 2, 2, 12, 12)  # [L, B, H, T, S]
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 2, 12))
    future = torch.ones(12, 12, dtype=torch.bool).triu(1)
    assert (att[..., future] == 0).all()
    assert (att[..., ~future] > 0).all()


def test_capture_with_cache():
    model = tiny_transformer(positional="rotary")
    idx = tokens()
    full = model(idx).logits
    cache = model.init_state(2, "cpu")
    model(idx[:, :5], state=cache)
    out = model(idx[:, 5:9], state=cache, capture_attention=True)
    torch.testing.assert_close(out.logits, full[:, 5:9], atol=1e-5, rtol=1e-5)
    att = out.attention
    assert att.shape == (2, 2, 2, 4, 9)  # S = 5 cached + 4 new
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 2, 4))
    future = torch.ones(4, 9, dtype=torch.bool).triu(6)  # query i sits at position 5 + i
    assert (att[..., future] == 0).all() and (att[..., ~future] > 0).all()


# --- parameters ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, table, tied", [
    (lambda: tiny_transformer(), lambda m: m.wte, True),
    (lambda: tiny_transformer(tie_embeddings=False), lambda m: m.wte, False),
    (lambda: tiny_rnn(), lambda m: m.encoder, True),
    (lambda: tiny_rnn(n_hidden=24, tie_embeddings=False), lambda m: m.encoder, False),
])
def test_tied_embeddings_share_storage(make, table, tied):
    model = make()
    shared = table(model).weight.data_ptr() == model.output.proj.weight.data_ptr()
    assert shared == tied


@pytest.mark.parametrize("make", [
    lambda: tiny_transformer(bias=True),
    lambda: tiny_transformer(tie_embeddings=False, positional="rotary"),
    lambda: tiny_rnn(cell="lstm"),
    lambda: tiny_rnn(cell="gru", n_hidden=24, tie_embeddings=False),
])
def test_optim_groups_cover_each_parameter_once(make):
    model = make()
    decay, no_decay = model.optim_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert not any("bias" in n or "ln_" in n for n in decayed)
    assert all(p.dim() >= 2 for p in decay["params"])
    assert any("wte" in n or "encoder" in n for n in decayed)  # embeddings are decayed


def test_initialisation():
    model = tiny_transformer(n_layer=4, n_embd=64, bias=True)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert (p == 0).all(), name
        elif name.endswith("c_proj.weight"):  # residual projections are scaled down by depth
            assert p.std().item() == pytest.approx(0.02 / math.sqrt(2 * 4), rel=0.1), name
        elif name.endswith("c_attn.weight") or name == "wte.weight":
            assert p.std().item() == pytest.approx(0.02, rel=0.1), name
    rnn = tiny_rnn()
    assert rnn.encoder.weight.abs().max() <= 0.1 and rnn.encoder.weight.std() > 0.05
    assert (rnn.output.proj.bias == 0).all()


def test_transformer_parameter_and_flop_counts():
    V_, L, C, T = 23, 2, 16, 12
    per_layer = 2 * C + 3 * C * C + C * C + 4 * C * C + 4 * C * C  # two LayerNorms, qkv, proj, MLP (no bias)
    model = tiny_transformer()
    assert model.num_parameters() == V_ * C + T * C + L * per_layer + C == sum(p.numel() for p in model.parameters())
    assert model.num_parameters(non_embedding=True) == model.num_parameters() - T * C
    assert model.flops_per_token() == 6 * (V_ * C + L * per_layer + C) + 12 * L * C * T
    untied = tiny_transformer(tie_embeddings=False, positional="rotary")  # no position table; wte is a lookup
    assert untied.num_parameters() == 2 * V_ * C + L * per_layer + C
    assert untied.num_parameters(non_embedding=True) == V_ * C + L * per_layer + C


def test_rnn_parameter_and_flop_counts():
    E = H = 16
    lstm = 4 * H * E + 4 * H * H + 8 * H + 4 * H * H + 4 * H * H + 8 * H  # W_ih, W_hh, b_ih, b_hh per layer
    model = tiny_rnn(cell="lstm")
    assert model.num_parameters() == V * E + lstm + V  # decoder weight tied, bias V
    assert model.flops_per_token() == 6 * (V * E + lstm + V)
    gru = tiny_rnn(cell="gru", n_hidden=24, tie_embeddings=False)
    H = 24
    gru_params = 3 * H * E + 3 * H * H + 6 * H + 3 * H * H + 3 * H * H + 6 * H
    assert gru.num_parameters() == V * E + gru_params + H * V + V
    assert gru.flops_per_token() == 6 * (gru_params + H * V + V)  # the untied input table is a lookup


# --- configs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, needle", [
    (TransformerConfig(n_embd=130, n_head=4), "model.n_embd = 130 is not divisible by model.n_head = 4"),
    (TransformerConfig(positional="alibi"), "model.positional"),
    (TransformerConfig(n_embd=12, n_head=4, positional="rotary"), "model.positional = 'rotary' needs an even"),
    (TransformerConfig(n_layer=0), "model.n_layer = 0"),
    (TransformerConfig(dropout=1.0), "model.dropout"),
    (TransformerConfig(bias="yes"), "model.bias"),
    (TransformerConfig(n_head=True), "model.n_head"),
    (RNNConfig(n_embd=200, n_hidden=256), "model.tie_embeddings = true needs model.n_embd (200) == model.n_hidden (256)"),
    (RNNConfig(cell="transformer"), "model.cell"),
    (RNNConfig(n_hidden=-1, tie_embeddings=False), "model.n_hidden"),
])
def test_config_validation_names_the_field(config, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        config.validate()
    with pytest.raises(ConfigError):  # the model refuses it too
        build_model(config)


@pytest.mark.parametrize("config", [TransformerConfig(positional="rotary", dropout=0.1),
                                    RNNConfig(cell="gru", n_hidden=64, tie_embeddings=False)])
def test_config_dict_round_trip(config):
    d = model_config_to_dict(config)
    assert d["family"] == config.family
    assert model_config_from_dict(d) == config


@pytest.mark.parametrize("d, needle", [
    ({"family": "transformer", "n_layers": 4}, "model.n_layers"),
    ({"family": "rnn", "positional": "rotary"}, "model.positional"),
    ({"family": "cnn"}, "model.family"),
    ({"n_layer": 2}, "model.family"),
    ({"family": "transformer", "n_layer": "4"}, "model.n_layer"),
    ({"family": "rnn", "dropout": "0.1"}, "model.dropout"),
])
def test_config_from_dict_rejects(d, needle):
    with pytest.raises(ConfigError, match=needle):
        model_config_from_dict(d)


def test_config_from_dict_fills_defaults_and_accepts_int_for_float():
    config = model_config_from_dict({"family": "transformer", "n_layer": 1, "dropout": 0})
    assert isinstance(config, TransformerConfig) and config.n_layer == 1 and config.n_embd == 128


# --- learning ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, lr", [(lambda: tiny_transformer(), 1e-2), (lambda: tiny_rnn(cell="lstm"), 3e-2)],
                         ids=["transformer", "lstm"])
def test_tiny_model_overfits_repeated_sequence(make, lr):
    model = make().train()
    seq = torch.tensor([3, 1, 4, 15, 9, 2, 6, 5]).repeat(2)[:13].repeat(4, 1)
    idx, targets = seq[:, :-1], seq[:, 1:]
    optimizer = torch.optim.AdamW(model.optim_groups(0.01), lr=lr)
    losses = []
    for _ in range(100):
        loss = model(idx, targets).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
