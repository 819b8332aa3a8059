"""Models in and out (lmcore.interop): tiny random GPT-2 models built with `transformers` import with equal logits,
generate what `transformers` generates, and export back; nanoGPT checkpoints import without unpickling code; runs
export to Hugging Face, ONNX and plain safetensors."""
import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from interop_helpers import END_OF_TEXT, TEXT, gpt2_folder, gpt2_tokenizer, load_hf_model
from lmcore.checkpoint import load_trained_model
from lmcore.cli import main
from lmcore.errors import ConfigError, InteropError
from lmcore.generation import SamplingSettings, generate
from lmcore.interop import export_run, import_huggingface, import_nanogpt
from lmcore.interop.imported import save_imported_run
from lmcore.models import MLPConfig, RNNConfig, TransformerConfig, build_model
from lmcore.runs import list_runs
from lmcore.tokenizers import (CharTokenizer, HuggingFaceTokenizer, SentencePieceTokenizer, Tokenizer, TokenizerConfig,
                               WordTokenizer, load_tokenizer)

pytest.importorskip("transformers")

TOLERANCE = 1e-4
SAMPLES = [TEXT, "  two  spaces,\ttabs\nand lines\n\n", "naïve café — 日本語 🎉 \u200b", END_OF_TEXT + "Hi" + END_OF_TEXT]


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


def random_ids(vocab_size: int, length: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab_size, (2, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return gpt2_folder(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def imported(hf_folder, tmp_path_factory):
    return import_huggingface(hf_folder, tmp_path_factory.mktemp("runs"))


# ---- import from Hugging Face ------------------------------------------------------------------------------------
def test_imported_gpt2_gives_the_logits_of_transformers(hf_folder, imported):
    model, tokenizer, _ = load_trained_model(imported)
    hf = load_hf_model(hf_folder)
    ids = random_ids(tokenizer.vocab_size, 64)  # the whole context
    assert torch.allclose(logits(model, ids), logits(hf, ids), atol=TOLERANCE)
    c = model.config
    assert (c.activation, c.bias, c.positional, c.tie_embeddings, c.context_length) == (
        "gelu_tanh", True, "learned", True, 64)


def test_imported_run_is_listed_finished_and_evaluates(imported, tmp_path, capsys):
    (run,) = list_runs(imported.parent)
    assert (run.path, run.status, run.family) == (imported, "finished", "transformer")
    (tmp_path / "text.txt").write_text(TEXT * 3, encoding="utf-8")
    assert main(["eval", str(imported), "--data", str(tmp_path / "text.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] > 0


def test_gpt2_tokenizer_encodes_as_transformers_does_and_round_trips_bytes(hf_folder, imported):
    from transformers import PreTrainedTokenizerFast

    theirs = PreTrainedTokenizerFast(tokenizer_file=str(hf_folder / "tokenizer.json"))
    ours = load_tokenizer(imported / "tokenizer")
    assert isinstance(ours, HuggingFaceTokenizer) and ours.eos_id == theirs.convert_tokens_to_ids(END_OF_TEXT)
    for text in SAMPLES:
        ids = ours.encode(text)
        assert ids == theirs(text)["input_ids"]
        assert ours.decode(ids) == text == theirs.decode(ids)
    assert (imported / "tokenizer" / "lmcore-tokenizer.json").is_file()
    assert (imported / "tokenizer" / "tokenizer.json").read_bytes() == (hf_folder / "tokenizer.json").read_bytes()


def test_vocab_and_merges_make_the_same_tokenizer_as_tokenizer_json(tmp_path):
    gpt2_tokenizer().model.save(str(tmp_path))
    from_files = HuggingFaceTokenizer.from_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.txt")
    reference = gpt2_tokenizer()
    for text in SAMPLES:
        assert from_files.encode(text) == reference.encode(text).ids
        assert from_files.decode(from_files.encode(text)) == text


def test_a_folder_with_vocab_and_merges_imports(tmp_path):
    folder = gpt2_folder(tmp_path / "gpt2", files="vocab+merges")
    run = import_huggingface(folder, tmp_path / "runs", name="from-merges")
    model, _, _ = load_trained_model(run)
    ids = random_ids(model.config.vocab_size)
    assert torch.allclose(logits(model, ids), logits(load_hf_model(folder), ids), atol=TOLERANCE)


def test_greedy_generation_equals_transformers_generate(hf_folder, imported):
    model, tokenizer, _ = load_trained_model(imported)
    prompt = "To be, or not"
    ours = [t.id for t in generate(model, tokenizer, prompt, SamplingSettings(max_new_tokens=30, greedy=True))]
    hf = load_hf_model(hf_folder)
    start = torch.tensor([tokenizer.encode(prompt)])
    theirs = hf.generate(start, max_new_tokens=30, do_sample=False, pad_token_id=tokenizer.eos_id, eos_token_id=None)
    assert ours == theirs[0, start.shape[1]:].tolist()


def test_another_architecture_is_refused_naming_what_imports(tmp_path):
    folder = gpt2_folder(tmp_path / "llama")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(InteropError, match="'llama'.*imports GPT-2 models"):
        import_huggingface(folder, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_folder_with_only_a_pickle_is_refused(tmp_path):
    folder = gpt2_folder(tmp_path / "bin")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(InteropError, match="pytorch_model.bin, a pickle"):
        import_huggingface(folder, tmp_path / "runs")


# ---- import from nanoGPT -----------------------------------------------------------------------------------------
def nanogpt_state(hf_model, prefix: str = "_orig_mod.") -> dict[str, torch.Tensor]:
    """A GPT2LMHeadModel's weights in nanoGPT's layout: nn.Linear weights (transposed from Conv1D), lm_head kept."""
    state = {}
    for name, tensor in hf_model.state_dict().items():
        if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            tensor = tensor.t()
        state[prefix + name] = tensor.clone().contiguous()
    return state


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    """A character-level GPT-2 with exact GELU (nanoGPT's), its corpus and its nanoGPT ckpt.pt."""
    folder = tmp_path_factory.mktemp("nanogpt")
    corpus = folder / "input.txt"
    corpus.write_text(TEXT * 2, encoding="utf-8")
    chars = sorted(set(TEXT))
    hf = load_hf_model(gpt2_folder(folder / "hf", activation="gelu"))
    hf.resize_token_embeddings(len(chars))
    args = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64, "bias": True, "vocab_size": len(chars),
            "dropout": 0.0}
    checkpoint = {"model": nanogpt_state(hf), "optimizer": {"state": {}, "param_groups": []}, "model_args": args,
                  "iter_num": 5000, "best_val_loss": torch.tensor(1.47), "config": {"dataset": "shakespeare_char"}}
    path = folder / "out-shakespeare-char" / "ckpt.pt"
    path.parent.mkdir()
    torch.save(checkpoint, path)
    return hf, corpus, path


def test_a_nanogpt_character_checkpoint_imports_with_its_corpus_and_matches(char_model, tmp_path):
    hf, corpus, path = char_model
    run = import_nanogpt(path, tmp_path / "runs", corpus=corpus)
    assert run.name.startswith("out-shakespeare-char-")
    model, tokenizer, _ = load_trained_model(run)
    assert isinstance(tokenizer, CharTokenizer) and model.config.activation == "gelu"
    nano_ids = random_ids(hf.config.vocab_size)
    ours = logits(model, nano_ids + 1)  # our character ids follow <unk>
    assert torch.allclose(ours[..., 1:], logits(hf, nano_ids), atol=TOLERANCE)
    # the same characters: nanoGPT's stoi is {ch: i for i, ch in enumerate(sorted(set(text)))}
    assert tokenizer.encode("To be") == [sorted(set(TEXT)).index(c) + 1 for c in "To be"]


def test_a_bare_state_dict_imports_given_its_heads(char_model, tmp_path):
    hf, corpus, _ = char_model
    path = tmp_path / "state.pt"
    torch.save(nanogpt_state(hf, prefix=""), path)
    with pytest.raises(InteropError, match="--n-head"):
        import_nanogpt(path, tmp_path / "runs", corpus=corpus)
    model, _, _ = load_trained_model(import_nanogpt(path, tmp_path / "runs", corpus=corpus, n_head=2))
    ids = random_ids(hf.config.vocab_size)
    assert torch.allclose(logits(model, ids + 1)[..., 1:], logits(hf, ids), atol=TOLERANCE)


def test_a_checkpoint_from_another_corpus_is_refused(char_model, tmp_path):
    _, _, path = char_model
    (tmp_path / "other.txt").write_text("abc", encoding="utf-8")
    with pytest.raises(InteropError, match="3 distinct characters.*give the corpus"):
        import_nanogpt(path, tmp_path / "runs", corpus=tmp_path / "other.txt")


class Payload:
    """Unpickling this would touch a file: proof of code run from a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_checkpoint_holding_a_python_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"wte": torch.zeros(2)}, "model_args": {}, "config": Payload(marker)}, path)
    with pytest.raises(InteropError, match="refused without running"):
        import_nanogpt(path, tmp_path / "runs", corpus=path)
    assert not marker.exists()
    with open(path.with_suffix(".pkl"), "wb") as f:  # a plain pickle, not a torch.save zip, is refused the same way
        pickle.dump(Payload(marker), f)
    with pytest.raises(InteropError):
        import_nanogpt(path.with_suffix(".pkl"), tmp_path / "runs", corpus=path)
    assert not marker.exists()


# ---- export ------------------------------------------------------------------------------------------------------
def our_run(tmp_path: Path, config, name: str = "ours", tokenizer: Tokenizer | None = None
            ) -> tuple[Path, torch.nn.Module]:
    """A run folder holding a random model of `config` with `tokenizer` (a character one by default): export needs
    no training."""
    tokenizer = tokenizer or CharTokenizer.train(TEXT)
    torch.manual_seed(1)
    model = build_model(type(config)(**{**config.__dict__, "vocab_size": tokenizer.vocab_size}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_imported_run(model, tokenizer, name, tmp_path / "runs", "a test"), model.eval()


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
@pytest.mark.parametrize("bias", [False, True])
def test_a_gpt_run_exports_to_transformers_with_equal_logits(tmp_path, positional, bias):
    from transformers import AutoTokenizer

    run, model = our_run(tmp_path, TransformerConfig(n_layer=2, n_head=2, n_embd=32, context_length=32,
                                                     positional=positional, bias=bias))
    export_run(run, "hf", tmp_path / "hf")
    hf = load_hf_model(tmp_path / "hf")
    ids = random_ids(model.config.vocab_size, 32)
    assert torch.allclose(logits(hf, ids), logits(model, ids), atol=TOLERANCE)
    theirs = AutoTokenizer.from_pretrained(tmp_path / "hf")
    tokenizer = load_tokenizer(run / "tokenizer")
    assert theirs(TEXT)["input_ids"] == tokenizer.encode(TEXT) and theirs.decode(tokenizer.encode(TEXT)) == TEXT


# Spaces in runs, tabs, line breaks (\r\n too), characters outside the vocabulary, separators str.split() splits at
# but Unicode does not call whitespace (\x1c), literal special tokens and "▁" (SentencePiece's space).
VARIED = (TEXT + "  two  spaces,\ttabs\r\nand lines\n\nnaïve café — 日本語 🎉 \u200b x\x1cy unseenword <eos> x<eos>y "
          "<unk> ▁ ▁▁a <0x41> 0x41 1234\n")
SPM_CORPUS = TEXT * 4 + "<b>naïve café</b> — 日本語 0x41 1234\n"


def word_tokenizer(**settings) -> WordTokenizer:
    return WordTokenizer.train(TEXT, TokenizerConfig(kind="word", **settings))


def sentencepiece_tokenizer(model_type: str) -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(SPM_CORPUS, TokenizerConfig(kind="sentencepiece", vocab_size=310,
                                                                   model_type=model_type))


@pytest.mark.parametrize("make_tokenizer", [word_tokenizer, lambda: word_tokenizer(lowercase=True),
                                            lambda: sentencepiece_tokenizer("bpe"),
                                            lambda: sentencepiece_tokenizer("unigram")],
                         ids=["word", "word-lowercase", "sentencepiece-bpe", "sentencepiece-unigram"])
def test_word_and_sentencepiece_runs_export_with_a_tokenizer_giving_our_ids(tmp_path, make_tokenizer):
    from transformers import AutoTokenizer

    tokenizer = make_tokenizer()
    run, model = our_run(tmp_path, TransformerConfig(n_layer=1, n_head=2, n_embd=32, context_length=32),
                         tokenizer=tokenizer)
    export_run(run, "hf", tmp_path / "hf")
    theirs = AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = tokenizer.encode(VARIED, unknown="replace")
    assert theirs(VARIED)["input_ids"] == ids
    assert theirs.decode(ids) == tokenizer.decode(ids)
    if tokenizer.kind == "sentencepiece":  # byte fallback: any text comes back as it was
        assert theirs.decode(ids) == VARIED
    else:  # a word tokenizer's own text, words between single spaces, round-trips
        assert theirs.decode(theirs(TEXT)["input_ids"]) == tokenizer.decode(tokenizer.encode(TEXT)) == (
            TEXT.lower() if tokenizer.lowercase else TEXT)
    window = torch.tensor([ids[:32]])
    assert torch.allclose(logits(load_hf_model(tmp_path / "hf"), window), logits(model, window), atol=TOLERANCE)


def test_an_imported_gpt2_exports_back_to_the_same_model(hf_folder, imported, tmp_path):
    export_run(imported, "hf", tmp_path / "back")
    ids = random_ids(300)
    assert torch.allclose(logits(load_hf_model(tmp_path / "back"), ids), logits(load_hf_model(hf_folder), ids),
                          atol=TOLERANCE)
    assert (tmp_path / "back" / "tokenizer.json").read_bytes() == (hf_folder / "tokenizer.json").read_bytes()


ROTARY = TransformerConfig(n_layer=2, n_head=2, n_embd=32, context_length=32, positional="rotary")


@pytest.mark.parametrize(("bias", "activation", "make_tokenizer"), [
    (False, "gelu", None), (True, "gelu_tanh", None), (False, "gelu", lambda: sentencepiece_tokenizer("bpe")),
], ids=["no-bias-char", "bias-gelu-tanh-char", "sentencepiece-bpe"])
def test_a_rotary_gpt_run_exports_as_gpt_neox_with_equal_logits_and_generation(tmp_path, bias, activation,
                                                                                make_tokenizer):
    from transformers import AutoTokenizer

    config = dataclasses.replace(ROTARY, bias=bias, activation=activation)
    run, model = our_run(tmp_path, config, tokenizer=make_tokenizer and make_tokenizer())
    export_run(run, "hf", tmp_path / "hf")
    hf = load_hf_model(tmp_path / "hf")
    assert type(hf).__name__ == "GPTNeoXForCausalLM"
    ids = random_ids(model.config.vocab_size, 32)
    assert torch.allclose(logits(hf, ids), logits(model, ids), atol=TOLERANCE)
    tokenizer = load_tokenizer(run / "tokenizer")
    prompt = "To be, or"
    start = torch.tensor([tokenizer.encode(prompt)])
    assert AutoTokenizer.from_pretrained(tmp_path / "hf")(prompt)["input_ids"] == start[0].tolist()
    ours = [t.id for t in generate(model, tokenizer, prompt, SamplingSettings(max_new_tokens=20, greedy=True))]
    theirs = hf.generate(start, max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert ours == theirs[0, start.shape[1]:].tolist()


def test_a_gpt_neox_export_imports_back_to_the_same_model(tmp_path):
    run, model = our_run(tmp_path, dataclasses.replace(ROTARY, tie_embeddings=False))
    export_run(run, "hf", tmp_path / "hf")
    back, _, _ = load_trained_model(import_huggingface(tmp_path / "hf", tmp_path / "imported"))
    assert (back.config.positional, back.config.tie_embeddings) == ("rotary", False)
    ids = random_ids(model.config.vocab_size, 32)
    assert torch.allclose(logits(back, ids), logits(model, ids), atol=TOLERANCE)


def neox_folder(folder: Path, **config) -> Path:
    """A GPTNeoXForCausalLM saved by `transformers` itself (its own tensor names), with a GPT-2 tokenizer."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    folder.mkdir(parents=True)
    tokenizer = gpt2_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(**{
        "vocab_size": tokenizer.get_vocab_size(), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128, "max_position_embeddings": 32, "use_parallel_residual": False, "rotary_pct": 1.0,
        **config}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def test_a_gpt_neox_folder_saved_by_transformers_imports_with_its_logits(tmp_path):
    folder = neox_folder(tmp_path / "neox", attention_bias=False, hidden_act="gelu_new")
    model, _, _ = load_trained_model(import_huggingface(folder, tmp_path / "runs"))
    ids = random_ids(model.config.vocab_size, 32)
    assert torch.allclose(logits(model, ids), logits(load_hf_model(folder), ids), atol=TOLERANCE)


def test_a_pythia_shaped_gpt_neox_is_refused_naming_what_differs(tmp_path):
    folder = neox_folder(tmp_path / "pythia", use_parallel_residual=True, rotary_pct=0.25)
    with pytest.raises(InteropError, match="use_parallel_residual = true, rotary_pct = 0.25"):
        import_huggingface(folder, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("config", "formats"), [
    (RNNConfig(n_layer=1, n_embd=32, n_hidden=32, dropout=0.0), "--to onnx or --to safetensors"),
    (MLPConfig(n_gram=3, n_embd=8, n_hidden=16), "--to safetensors"),
], ids=["rnn", "mlp"])
def test_a_family_without_a_hugging_face_architecture_is_refused_naming_its_formats(tmp_path, config, formats):
    run, _ = our_run(tmp_path, config)
    with pytest.raises(InteropError, match=f"only GPT-family.*use {formats} for this one"):
        export_run(run, "hf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_without_a_tokenizer_json_is_refused_before_anything_is_written(tmp_path):
    jieba, _ = our_run(tmp_path, TransformerConfig(n_layer=1, n_head=2, n_embd=32, context_length=16), "jieba",
                       tokenizer=WordTokenizer(["我们", "喜欢", "语言"], segmenter="jieba"))
    with pytest.raises(InteropError, match="cuts words with jieba.*--to onnx"):
        export_run(jieba, "hf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config", [
    TransformerConfig(n_layer=2, n_head=2, n_embd=32, context_length=32, positional="rotary"),
    RNNConfig(cell="gru", n_layer=2, n_embd=32, n_hidden=32, dropout=0.0),
], ids=["gpt", "rnn"])
def test_onnx_export_gives_the_logits_of_our_model(tmp_path, config):
    onnxruntime = pytest.importorskip("onnxruntime")
    run, model = our_run(tmp_path, config)
    files = export_run(run, "onnx", tmp_path / "onnx")
    assert tmp_path / "onnx" / "model.onnx" in files
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    for batch, length in ((1, 1), (3, 32)):
        ids = random_ids(model.config.vocab_size, length)[:1].repeat(batch, 1)
        theirs = session.run(["logits"], {"input_ids": ids.numpy()})[0]
        np.testing.assert_allclose(theirs, logits(model, ids).numpy(), atol=TOLERANCE)


def test_weights_only_export_holds_the_model_and_its_config_and_no_optimizer_state(tmp_path, capsys):
    run, model = our_run(tmp_path, TransformerConfig(n_layer=1, n_head=2, n_embd=32, context_length=16))
    assert main(["export", str(run), "--to", "safetensors", str(tmp_path / "w")]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    with safe_open(str(tmp_path / "w" / "model.safetensors"), "pt") as f:
        config = json.loads(f.metadata()["model"])
        tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    assert config == json.loads((tmp_path / "w" / "config.json").read_text())
    assert set(tensors) == set(model.state_dict()) - {"output.proj.weight"}  # tied: the embedding, once
    assert all(torch.equal(tensors[name], model.state_dict()[name]) for name in tensors)
    assert load_tokenizer(tmp_path / "w" / "tokenizer").fingerprint() == load_tokenizer(run / "tokenizer").fingerprint()


def test_cli_imports_and_exports(hf_folder, tmp_path, capsys):
    assert main(["import", "hf", str(hf_folder), "--runs-dir", str(tmp_path / "runs"), "--name", "tiny gpt2"]) == 0
    (run,) = list_runs(tmp_path / "runs")
    assert run.name.startswith("tiny gpt2-")
    assert main(["export", str(run.path), "--to", "hf", str(tmp_path / "hf")]) == 0
    assert main(["export", str(run.path), str(tmp_path / "hf")]) == 2
    assert "give a run, a format" in capsys.readouterr().err
    assert main(["import", "nanogpt", str(hf_folder / "model.safetensors"), "--runs-dir", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_huggingface_tokenizer_is_not_trained_for_a_new_run(tmp_path):
    from engine_helpers import tiny_config, write_corpus

    config = tiny_config(write_corpus(tmp_path), tmp_path / "runs")
    config.tokenizer.kind = "huggingface"
    with pytest.raises(ConfigError, match="imported model") as err:
        config.validate()
    assert err.value.field == "tokenizer.kind"


def test_fine_tuning_an_imported_gpt2_trains_from_its_weights(imported, tmp_path):
    from engine_helpers import tiny_config

    from lmcore.trainer import Trainer

    (tmp_path / "text.txt").write_text(TEXT * 40, encoding="utf-8")
    config = tiny_config(tmp_path / "text.txt", tmp_path / "runs", max_steps=2, eval_interval=2, context=16)
    config.init_from = str(imported)
    config.tokenizer.kind = "huggingface"
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    assert trainer.model.config.activation == "gelu_tanh" and trainer.tokenizer.kind == "huggingface"
    shutil.rmtree(trainer.folder.path)
