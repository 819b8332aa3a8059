import pickle
import tomllib
from pathlib import Path

import pytest

from lmcore.config import (RunConfig, apply_override, config_from_dict, config_to_dict, load_config, save_config,
                           setting_groups, settings_markdown)
from lmcore.errors import ConfigError
from lmcore.models import ConvConfig, EncoderConfig, MLPConfig, RNNConfig, TransformerConfig
from lmcore.settings import range_text
from lmcore.tokenizers import KIND_SETTINGS

PRESETS = sorted((Path(__file__).resolve().parents[2] / "resources" / "presets").glob("*.toml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_validates_and_points_at_the_bundled_corpus(preset):
    config = load_config(preset)
    config.validate()
    assert all(Path(p).is_file() for p in config.data.train)


def test_presets_cover_every_family_and_three_tokenizers():
    configs = [load_config(p) for p in PRESETS]
    assert {c.family for c in configs} == {"transformer", "rnn", "encoder", "mlp", "conv"}
    assert {c.tokenizer.kind for c in configs} == {"char", "word", "sentencepiece"}


def test_baby_gpt_preset_has_the_published_settings():
    c = load_config(PRESETS[0].parent / "baby-gpt-char.toml")
    assert (c.model.n_layer, c.model.n_head, c.model.n_embd, c.train.context) == (4, 4, 128, 64)
    assert (c.train.batch_size, c.train.max_steps, c.optim.lr, c.schedule.min_lr) == (12, 2000, 1e-3, 1e-4)
    assert (c.schedule.warmup_steps, c.optim.betas, c.optim.weight_decay, c.model.dropout) == \
        (100, [0.9, 0.99], 0.1, 0.0)
    assert c.optim.grad_clip == 1.0 and c.schedule.decay_steps == 0  # decays over the run: lr_decay_iters = max_iters


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


# ---- one typed config, end to end ---------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_the_model_section_is_typed_from_the_moment_the_file_is_read(preset):
    config = load_config(preset)
    written = tomllib.loads(preset.read_text(encoding="utf-8"))["model"]
    assert type(config.model) is {"transformer": TransformerConfig, "rnn": RNNConfig, "encoder": EncoderConfig,
                                  "mlp": MLPConfig, "conv": ConvConfig}[written["family"]]
    assert config.family == written["family"]
    assert all(getattr(config.model, name) == value for name, value in written.items() if name != "family")


# [model] as run folders before the typed config hold it: the family and the keys the user gave, nothing else.
OLD_RUN_CONFIG = """name = "old-run"
runs_dir = "runs"
init_from = ""

[data]
train = ["/data/corpus.txt"]
val = []
val_fraction = 0.1
encoding_errors = "strict"

[tokenizer]
kind = "word"

[model]
family = "rnn"
cell = "gru"
n_embd = 64
n_hidden = 64

[train]
context = 35
"""


def test_a_run_folders_config_loads_and_is_written_back_in_the_same_shape(tmp_path):
    (tmp_path / "config.toml").write_text(OLD_RUN_CONFIG)
    config = load_config(tmp_path / "config.toml")
    assert isinstance(config.model, RNNConfig) and (config.model.cell, config.model.n_hidden) == ("gru", 64)
    assert config.model.n_layer == RNNConfig().n_layer  # what the file leaves out takes its default
    raw = config_to_dict(config)
    assert list(raw) == ["name", "runs_dir", "init_from", "task", "data", "tokenizer", "model", "optim", "schedule",
                         "train", "distill", "classify"]
    assert list(raw["model"])[:3] == ["family", "cell", "n_layer"] and raw["model"]["family"] == "rnn"
    assert "vocab_size" not in raw["model"]  # the tokenizer tells it
    save_config(config, tmp_path / "again.toml")
    assert load_config(tmp_path / "again.toml") == config


def test_a_transformers_context_length_defaults_to_the_training_context():
    assert config_from_dict({"train": {"context": 256}}).model.context_length == 256
    assert config_from_dict({"model": {"family": "transformer"}, "train": {"context": 32}}).model.context_length == 32
    given = config_from_dict({"model": {"context_length": 512}, "train": {"context": 256}})
    assert given.model.context_length == 512


def test_the_vocabulary_size_is_filled_in_from_the_tokenizer():
    config = config_from_dict({"model": {"family": "rnn", "vocab_size": 7, "tie_embeddings": False}})
    model = config.model_for(321)
    assert isinstance(model, RNNConfig) and model.vocab_size == 321 and model.tie_embeddings is False
    assert config.model.vocab_size == 7  # the run's own config is left as it was
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": {"family": "rnn", "tie_embeddings": False,
                                    "adaptive_softmax_cutoffs": [100, 500]}}).model_for(300)
    assert info.value.field == "model.adaptive_softmax_cutoffs"


@pytest.mark.parametrize("change, field, also", [
    ({"optim": {"lr": -1.0}}, "optim.lr", ()),
    ({"optim": {"lr": float("nan")}}, "optim.lr", ()),
    ({"model": {"n_embd": 30, "n_head": 4}}, "model.n_embd", ("model.n_head",)),
    ({"model": {"family": "rnn", "n_embd": 32, "n_hidden": 64}}, "model.tie_embeddings",
     ("model.n_embd", "model.n_hidden")),
    ({"model": {"family": "cnn"}}, "model.family", ()),
    ({"model": {"n_embed": 32}}, "model.n_embed", ()),
    ({"name": "../x"}, "name", ()),
    ({"trian": {}}, "trian", ()),
    ({"train": {"batch_sise": 3}}, "train.batch_sise", ()),
    ({"train": {"max_steps": "many"}}, "train.max_steps", ()),
    ({"train": {"device": "tpu"}}, "train.device", ()),
    ({"train": {"context": 128}, "model": {"context_length": 64}}, "train.context", ("model.context_length",)),
    ({"schedule": {"min_lr": 0.5}}, "schedule.min_lr", ("optim.lr",)),
    ({"tokenizer": {"kind": "word", "max_vocab": 3}}, "tokenizer.max_vocab", ()),
    ({"data": {"train": []}}, "data.train", ()),
])
def test_a_config_error_carries_the_field_it_is_about(change, field, also):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"train": ["x.txt"]}, **change}).validate()
    assert (info.value.field, info.value.also) == (field, also)
    assert field in str(info.value)  # and the message still names it, for a reader
    again = pickle.loads(pickle.dumps(info.value))  # as lmcore.distributed sends it to the other ranks
    assert (str(again), again.field, again.also) == (str(info.value), field, also)


def test_every_setting_says_what_it_does():
    keys = {key for _, _, items in setting_groups() for key, _ in items}
    assert {"name", "data.val", "tokenizer.character_coverage", "model.family", "model.positional", "model.n_hidden",
            "optim.betas", "schedule.plateau_patience", "train.compile"} <= keys
    for _, _, items in setting_groups():
        for key, f in items:
            assert len(f.metadata.get("help", "")) > 20, key


def _past(bound: str, limit, kind: type):
    """A value just outside `limit`: on the limit itself for an open bound, one step past it for a closed one."""
    step = 1 if kind is int else 1e-3
    return {"above": limit, "below": limit, "at_least": limit - step, "at_most": limit + step}[bound]


def _ranged_settings():
    for _, when, items in setting_groups():
        for key, f in items:
            for bound in ("above", "below", "at_least", "at_most"):
                if bound in f.metadata and key != "model.vocab_size":  # the tokenizer's, not the file's
                    yield pytest.param(key, when, f, bound, id=f"{key}-{bound}")


@pytest.mark.parametrize("key, when, f, bound", list(_ranged_settings()))
def test_every_range_written_on_a_setting_is_the_one_validate_checks(key, when, f, bound):
    section, _, name = key.rpartition(".")
    kind = int if isinstance(f.default, int) and not isinstance(f.default, bool) else float
    raw: dict = {"data": {"train": ["x.txt"]}}
    raw.setdefault(section, {})[name] = _past(bound, f.metadata[bound], kind)
    if section == "model":
        raw["model"]["family"] = when.split('"')[1]
        if name == "n_hidden" and raw["model"]["family"] == "rnn":  # tied, the RNN's sizes must agree
            raw["model"]["tie_embeddings"] = False
    if section == "tokenizer":
        raw["tokenizer"]["kind"] = next(k for k, used in KIND_SETTINGS.items() if name in used)
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw).validate()
    assert info.value.field == key and range_text(f.metadata) in str(info.value)
    raw[section][name] = f.default  # the default lies inside the range
    config_from_dict(raw).validate()


def test_docs_configuration_md_is_what_lmcore_writes():
    docs = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert docs.read_text(encoding="utf-8") == settings_markdown(), \
        "docs/configuration.md is out of date: run `lmcore settings --markdown > docs/configuration.md`"


@pytest.mark.parametrize("preset", [p for p in PRESETS if load_config(p).schedule.kind == "cosine"],
                         ids=lambda p: p.stem)
def test_a_presets_learning_rate_decays_over_the_run_however_long_it_is(preset):
    """A preset that pinned schedule.decay_steps kept decaying over its own length when the user set fewer steps:
    the learning rate never came down."""
    from lmcore.schedule import LRSchedule

    config = load_config(preset, ["train.max_steps=300"])
    schedule = LRSchedule(config.schedule, config.optim.lr, 300)
    assert schedule.lr_at(300) == pytest.approx(config.schedule.min_lr)
