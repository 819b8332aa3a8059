from pathlib import Path

import pytest

from lmcore.config import RunConfig, apply_override, config_from_dict, load_config
from lmcore.errors import ConfigError

PRESETS = sorted((Path(__file__).resolve().parents[2] / "resources" / "presets").glob("*.toml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_validates_and_points_at_the_bundled_corpus(preset):
    config = load_config(preset)
    config.validate()
    assert all(Path(p).is_file() for p in config.data.train)


def test_presets_cover_both_families_and_three_tokenizers():
    configs = [load_config(p) for p in PRESETS]
    assert {c.family for c in configs} == {"transformer", "rnn"}
    assert {c.tokenizer.kind for c in configs} == {"char", "word", "sentencepiece"}


def test_baby_gpt_preset_has_the_published_settings():
    c = load_config(PRESETS[0].parent / "baby-gpt-char.toml")
    assert (c.model["n_layer"], c.model["n_head"], c.model["n_embd"], c.train.context) == (4, 4, 128, 64)
    assert (c.train.batch_size, c.train.max_steps, c.optim.lr, c.schedule.min_lr) == (12, 2000, 1e-3, 1e-4)
    assert (c.schedule.warmup_steps, c.optim.betas, c.optim.weight_decay, c.model["dropout"]) == (100, [0.9, 0.99], 0.1, 0.0)
    assert c.optim.grad_clip == 1.0 and c.schedule.decay_steps == 2000


def test_overrides_are_parsed_as_toml_values():
    raw = {}
    apply_override(raw, "train.max_steps=100")
    apply_override(raw, "optim.name=sgd")
    apply_override(raw, "optim.betas=[0.9, 0.95]")
    config = config_from_dict(raw)
    assert config.train.max_steps == 100 and config.optim.name == "sgd" and config.optim.betas == [0.9, 0.95]


def test_override_without_equals_is_explained():
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_override({}, "train.max_steps")


@pytest.mark.parametrize("raw, field", [
    ({"train": {"batch_sise": 3}}, "train.batch_sise"),
    ({"trian": {}}, "trian"),
    ({"train": {"max_steps": "many"}}, "train.max_steps"),
    ({"optim": {"lr": True}}, "optim.lr"),
])
def test_unknown_or_mistyped_settings_are_named(raw, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_from_dict(raw)


@pytest.mark.parametrize("change, field", [
    ({"optim": {"lr": -1.0}}, "optim.lr"),
    ({"optim": {"name": "lion"}}, "optim.name"),
    ({"schedule": {"kind": "step"}}, "schedule.kind"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"data": {"train": ["x.txt"], "val_fraction": 1.5}}, "data.val_fraction"),
    ({"model": {"family": "cnn"}}, "model.family"),
    ({"model": {"family": "transformer", "context_length": 32}, "train": {"context": 64}}, "train.context"),
    # the model section too, before any corpus is read (x.txt does not exist)
    ({"model": {"family": "transformer", "n_embd": 30, "n_head": 4}}, "model.n_embd = 30 is not divisible"),
    ({"model": {"family": "rnn", "adaptive_softmax_cutoffs": [100, 5000], "tie_embeddings": False},
      "tokenizer": {"kind": "sentencepiece", "vocab_size": 4000}}, "model.adaptive_softmax_cutoffs"),
    ({"optim": {"lr": float("inf")}}, "optim.lr = inf must be a finite number"),
    ({"train": {"device": "gpu"}}, "train.device"),
])
def test_validation_names_the_bad_field(change, field):
    raw = {"data": {"train": ["x.txt"]}, **change}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_from_dict(raw).validate()


def test_missing_config_file_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_broken_toml_is_explained(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train\nmax_steps = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_relative_corpus_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hello")
    (tmp_path / "cfg.toml").write_text('[data]\ntrain = "data/a.txt"\n')
    config = load_config(tmp_path / "cfg.toml")
    assert config.data.train == [str((tmp_path / "data" / "a.txt").resolve())]
    assert isinstance(config, RunConfig)
