"""Text classification: labelled data (formats, bad rows, the stratified split), the classifier model (pooling that
ignores padding), training (a separable set to 100%, a frozen body, early stopping, resume), metrics, inference
and explanations, and the command line."""
from __future__ import annotations

import json
import random

import pytest
import torch

from lmcore import events as ev
from lmcore.checkpoint import load_checkpoint
from lmcore.classify import Classifier, classification_report, classifier_logits, encode_text, pad
from lmcore.cli import main
from lmcore.config import config_from_dict
from lmcore.errors import CheckpointError, ConfigError, CorpusError
from lmcore.labelled import LabelledRow, load_labelled, read_labelled, stratified_split
from lmcore.metrics import read_metric_events
from lmcore.models import (MODEL_CONFIGS, ConvConfig, EncoderConfig, MLPConfig, RNNConfig, TransformerConfig,
                           build_model)
from lmcore.models.classifier import AUTO_POOLING, TextClassifier
from lmcore.tokenizers import WordTokenizer
from lmcore.trainer import Trainer
from tests.engine_helpers import tiny_config, write_corpus

POSITIVE, NEGATIVE = ["good", "great", "lovely", "fine", "nice"], ["bad", "awful", "poor", "nasty", "vile"]
FILLERS = ["today", "indeed", "really", "again", "overall"]


def toy_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Texts whose label one word decides: 'it was good today' is pos, 'it was bad today' neg."""
    rng = random.Random(seed)
    return [(f"it was {rng.choice(POSITIVE if i % 2 else NEGATIVE)} {rng.choice(FILLERS)}", "pos" if i % 2 else "neg")
            for i in range(n)]


def write_tsv(path, rows, header=True):
    path.write_text(("text\tlabel\n" if header else "") + "".join(f"{t}\t{label}\n" for t, label in rows),
                    encoding="utf-8")
    return path


def classifier_config(tmp_path, family="transformer", init_from="", **overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    train = write_tsv(tmp_path / "train.tsv", toy_rows(120))
    model = {"transformer": {"family": "transformer", "n_layer": 1, "n_head": 2, "n_embd": 32},
             "rnn": {"family": "rnn", "cell": "lstm", "n_layer": 1, "n_embd": 32, "n_hidden": 32, "dropout": 0.0},
             "encoder": {"family": "encoder", "n_layer": 1, "n_head": 2, "n_embd": 32},
             "mlp": {"family": "mlp", "n_gram": 3, "n_embd": 16, "n_hidden": 32},
             "conv": {"family": "conv", "n_layer": 2, "n_embd": 32}}[family]
    raw = {"name": f"cls-{family}", "runs_dir": str(tmp_path / "runs"), "task": "classify", "init_from": init_from,
           "data": {"train": [str(train)], "val_fraction": 0.2},
           "tokenizer": {"kind": "word"}, "model": model,
           "optim": {"lr": 3e-3}, "schedule": {"kind": "constant"},
           "train": {"batch_size": 16, "context": 16, "max_steps": 40, "eval_interval": 20, "seed": 3,
                     "device": "cpu"},
           "classify": {"body_lr_scale": 1.0}}
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        raw[section][name] = value
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A word-level GPT classifier trained on the toy set, and the events of its run."""
    tmp_path = tmp_path_factory.mktemp("classifier")
    trainer = Trainer.new(classifier_config(tmp_path))
    events = []
    trainer.subscribe(events.append)
    assert trainer.run() == "finished"
    return trainer, events


# ---- labelled data ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, problem", [
    ("text\tlabel\ngood one\tpos\nthree\tcolumns\there\n", "3 tab-separated columns where 2 are expected"),
    ("text\tlabel\ngood one\tpos\nno label here\t \n", "no label"),
    ("text\tlabel\ngood one\tpos\n  \tneg\n", "the text is empty"),
])
def test_each_bad_row_is_reported_with_its_file_and_line(tmp_path, content, problem):
    path = tmp_path / "data.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=problem) as error:
        read_labelled(path)
    assert f"{path}:3" in str(error.value)


def test_an_unknown_label_is_reported_with_its_row(tmp_path):
    config = classifier_config(tmp_path)
    train = write_tsv(tmp_path / "own.tsv", [("good", "pos"), ("bad", "neg"), ("meh", "neutral")])
    config.data.train, config.classify.labels = [str(train)], ["neg", "pos"]
    with pytest.raises(CorpusError, match=r"own.tsv:4: label 'neutral' is not one of neg, pos"):
        load_labelled(config.data, config.classify, seed=1)


def test_a_validation_label_the_training_rows_lack_is_reported(tmp_path):
    config = classifier_config(tmp_path)
    config.data.val = [str(write_tsv(tmp_path / "val.tsv", [("so so", "meh")], header=False))]
    with pytest.raises(CorpusError, match=r"val.tsv:1: label 'meh' is not one of neg, pos"):
        load_labelled(config.data, config.classify, seed=1)


def test_bad_jsonl_rows_and_many_bad_rows_are_counted(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "label": 1}\nnot json\n[1, 2]\n' + '{"text": ""}\n' * 6, encoding="utf-8")
    with pytest.raises(CorpusError) as error:
        read_labelled(path)
    message = str(error.value)
    assert "8 bad row(s)" in message and "... and 3 more" in message
    assert f"{path}:2: not valid JSON" in message and f"{path}:3: a JSON object is expected" in message


def test_formats_headers_and_columns(tmp_path):
    (tmp_path / "a.csv").write_text('label,review\npos,"Good, really ""good"""\nneg,bad\n', encoding="utf-8")
    rows = read_labelled(tmp_path / "a.csv", text_field="review")
    assert [(r.text, r.label) for r in rows] == [('Good, really "good"', "pos"), ("bad", "neg")]
    (tmp_path / "b.tsv").write_text('He said "fine"  \t1\r\nodd\u0085line\t0\n', encoding="utf-8")
    rows = read_labelled(tmp_path / "b.tsv")  # no header: text, label; quotes and U+0085 belong to the text
    assert [(r.text, r.label) for r in rows] == [('He said "fine"', "1"), ("odd\u0085line", "0")]
    (tmp_path / "c.jsonl").write_text('{"text": "yes", "label": 1}\n\n{"text": "no", "label": "0"}\n',
                                      encoding="utf-8")
    assert [(r.text, r.label, r.where[-1]) for r in read_labelled(tmp_path / "c.jsonl")] == [("yes", "1", "1"),
                                                                                              ("no", "0", "3")]


def test_the_stratified_split_keeps_each_labels_share_and_follows_the_seed():
    rows = [LabelledRow(f"t{i}", "rare" if i % 10 == 0 else "common", f"f:{i}") for i in range(200)]
    train, val = stratified_split(rows, 0.1, seed=5)
    assert len(val) == 20 and sum(r.label == "rare" for r in val) == 2
    assert sorted(r.text for r in train + val) == sorted(r.text for r in rows)
    assert stratified_split(rows, 0.1, seed=5) == (train, val)
    assert stratified_split(rows, 0.1, seed=6)[1] != val


def test_classifier_settings_are_checked_before_anything_is_read(tmp_path):
    config = classifier_config(tmp_path, classify__pooling="cls")
    with pytest.raises(ConfigError) as error:
        config.validate()
    assert error.value.field == "classify.pooling"
    config = classifier_config(tmp_path)
    config.data.train = [str(tmp_path / "corpus.txt")]
    with pytest.raises(ConfigError, match="labelled files"):
        config.validate()


# ---- the model -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config, pooling", [
    (TransformerConfig(vocab_size=20, n_layer=1, n_head=2, n_embd=16, context_length=12), "last"),
    (TransformerConfig(vocab_size=20, n_layer=1, n_head=2, n_embd=16, context_length=12), "mean"),
    (RNNConfig(vocab_size=20, n_layer=1, n_embd=16, n_hidden=16, dropout=0.0), "final"),
    (RNNConfig(vocab_size=20, n_layer=1, n_embd=16, n_hidden=16, dropout=0.0), "mean"),
    (EncoderConfig(vocab_size=20, n_layer=1, n_head=2, n_embd=16, context_length=12), "cls"),
    (EncoderConfig(vocab_size=20, n_layer=1, n_head=2, n_embd=16, context_length=12), "mean"),
    (MLPConfig(vocab_size=20, n_gram=3, n_embd=8, n_hidden=16), "mean"),
    (MLPConfig(vocab_size=20, n_gram=3, n_embd=8, n_hidden=16, direct=True), "last"),
    (ConvConfig(vocab_size=20, n_layer=2, n_embd=16), "mean"),
    (ConvConfig(vocab_size=20, n_layer=2, n_embd=16), "last"),
])
def test_pooling_ignores_the_padding_after_a_text(config, pooling):
    torch.manual_seed(0)
    model = TextClassifier(build_model(config), 3, pooling).eval()
    short, long = [1, 5, 7], [2, 3, 4, 5, 6, 8, 9, 10]
    alone = model(pad([short])).logits[0]
    batched = model(pad([short, long])).logits[0]
    torch.testing.assert_close(alone, batched)


def test_every_family_has_an_auto_pooling():
    assert set(AUTO_POOLING) == set(MODEL_CONFIGS)


def test_metrics_of_a_known_example():
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 0, 1, 1, 2, 2])
    report = classification_report(torch.nn.functional.one_hot(predicted, 3).float() * 10, targets)
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.precision == pytest.approx([1.0, 0.5, 0.5]) and report.recall == pytest.approx([2 / 3, 0.5, 1.0])
    f1 = [2 * p * r / (p + r) for p, r in zip(report.precision, report.recall, strict=True)]
    assert report.macro_f1 == pytest.approx(sum(f1) / 3)


# ---- training --------------------------------------------------------------------------------------------------
def test_a_separable_set_is_learnt_to_100_percent_and_every_evaluation_has_its_metrics(trained):
    trainer, events = trained
    scores = [e for e in events if isinstance(e, ev.ClassifyMetrics)]
    evals = [e for e in events if isinstance(e, ev.EvalMetrics)]
    assert len(scores) == len(evals) == 2
    assert scores[-1].accuracy == 1.0 and scores[-1].macro_f1 == 1.0 and evals[-1].val_accuracy == 1.0
    assert scores[-1].labels == ["neg", "pos"] and sum(map(sum, scores[-1].confusion)) == 24
    recorded = read_metric_events(trainer.folder.metrics_path)
    assert [e for e in recorded if isinstance(e, ev.ClassifyMetrics)] == scores
    assert load_checkpoint(trainer.folder.checkpoint_path("best")).meta["classifier"]["labels"] == ["neg", "pos"]


def test_a_frozen_body_keeps_its_weights_and_only_the_head_learns(tmp_path):
    source = Trainer.new(tiny_config(write_corpus(tmp_path), tmp_path / "lm", max_steps=4, eval_interval=4))
    assert source.run() == "finished"
    config = classifier_config(tmp_path, init_from=str(source.folder.path), classify__freeze_body=True,
                               train__max_steps=6, train__eval_interval=3)
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    before = load_checkpoint(source.folder.checkpoint_path("best")).model
    after = load_checkpoint(trainer.folder.checkpoint_path("last")).model
    for name, tensor in before.items():
        torch.testing.assert_close(after[f"body.{name}"], tensor, rtol=0, atol=0)
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == 2  # the head's weight and bias


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path):
    config = classifier_config(tmp_path, optim__lr=1e-9, classify__early_stopping=2, train__max_steps=100,
                               train__eval_interval=5)
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    assert trainer.step == 15  # the first evaluation sets the best; two more without a better one end it
    status = trainer.folder.read_status()
    assert status["status"] == "finished" and "Stopped early" in status["message"]


@pytest.mark.parametrize("family", ["rnn", "encoder"])
def test_stop_and_resume_gives_the_same_classifier_run(tmp_path, family):
    whole = Trainer.new(classifier_config(tmp_path / "a", family, train__max_steps=12, train__eval_interval=4))
    assert whole.run() == "finished"
    first = Trainer.new(classifier_config(tmp_path / "b", family, train__max_steps=12, train__eval_interval=4))
    first.subscribe(lambda e: first.request_stop() if isinstance(e, ev.StepMetrics) and e.step == 6 else None)
    assert first.run() == "stopped"
    assert Trainer.resume(first.folder.path).run() == "finished"

    def history(trainer):
        return [(type(e).__name__, e.step, getattr(e, "loss", None), getattr(e, "accuracy", None))
                for e in read_metric_events(trainer.folder.metrics_path)]

    for a, b in zip(history(first), history(whole), strict=True):
        assert a[:2] == b[:2] and a[2:] == pytest.approx(b[2:], abs=1e-6)


# ---- inference -------------------------------------------------------------------------------------------------
def test_the_command_line_prints_what_classifier_probabilities_gives(trained, capsys):
    trainer, _ = trained
    texts = ["it was good today", "it was awful again"]
    classifier = Classifier.load(trainer.folder.path)
    assert main(["classify", str(trainer.folder.path), "--json", "--device", "cpu",
                 *(arg for text in texts for arg in ("--text", text))]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["pos", "neg"]
    assert [list(line["probabilities"].values()) for line in lines] == classifier.probabilities(texts)


def test_eval_of_a_classifier_prints_its_metrics(trained, tmp_path, capsys):
    trainer, _ = trained
    data = write_tsv(tmp_path / "test.tsv", toy_rows(30, seed=9))
    assert main(["eval", str(trainer.folder.path), "--data", str(data), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "accuracy 1.0000  macro-F1 1.0000" in out and "confusion matrix" in out
    assert main(["eval", str(trainer.folder.path), "--data", str(data), "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["confusion"] == [[15, 0], [0, 15]] and report["labels"] == ["neg", "pos"]


def test_explain_scores_every_token(trained):
    trainer, _ = trained
    classifier = Classifier.load(trainer.folder.path)
    explanation = classifier.explain("it was lovely overall")
    # each token as it reads in the text, with the space before it: joined, they give the text back
    assert explanation.tokens == ["it", " was", " lovely", " overall"] and len(explanation.scores) == 4
    assert explanation.label == classifier.labels.index("pos")
    assert explanation.probabilities == pytest.approx(classifier.probabilities(["it was lovely overall"])[0])
    assert classifier.explain("it was lovely overall", label=0).label == 0


@pytest.mark.parametrize("family", ["transformer", "encoder", "rnn", "mlp", "conv"])
def test_the_deciding_word_pushes_towards_its_label(tmp_path, family):
    trainer = Trainer.new(classifier_config(tmp_path, family))
    assert trainer.run() == "finished"
    classifier = Classifier.load(trainer.folder.path)
    for text, word, label in [("it was lovely overall", 2, "pos"), ("it was vile today", 2, "neg")]:
        explanation = classifier.explain(text)
        assert classifier.labels[explanation.label] == label
        assert explanation.scores[word] > 0 and explanation.scores[word] == max(explanation.scores)


@pytest.mark.parametrize("config", [
    TransformerConfig(vocab_size=20, n_layer=2, n_head=2, n_embd=16, context_length=12),
    EncoderConfig(vocab_size=24, n_layer=2, n_head=2, n_embd=16, context_length=12),
    RNNConfig(vocab_size=20, n_layer=1, n_embd=16, n_hidden=16, dropout=0.0),
    MLPConfig(vocab_size=20, n_gram=3, n_embd=8, n_hidden=16),
    ConvConfig(vocab_size=20, n_layer=2, n_embd=16),
], ids=lambda config: config.family)
def test_the_scores_add_up_to_the_logit_less_the_baselines(config, tmp_path):
    # Integrated gradients' completeness: the tokens' scores sum to logit(text) - logit(as many <unk> tokens)
    torch.manual_seed(0)
    tokenizer = WordTokenizer([f"w{i}" for i in range(18)])
    if config.family == "encoder":
        tokenizer = tokenizer.with_special_tokens()
    model = TextClassifier(build_model(config), 2, "mean")  # every token reaches the logits directly
    for weight in (model.head.weight, model.token_embedding.weight):  # logits far apart: the sum is a real test
        torch.nn.init.normal_(weight, std=1.0)
    classifier = Classifier(model, tokenizer, ["a", "b"], 12, tmp_path, torch.device("cpu"))
    text = "w3 w1 w4 w1 w5 w9 w2"
    explanation = classifier.explain(text, label=1)
    ids = classifier.encode(text)
    unknown = [tokenizer.unk_id if i in tokenizer.encode(text) else i for i in ids]  # an encoder's [CLS], [SEP] stay
    logits = classifier_logits(model, [ids, unknown], "cpu")[:, 1]
    assert len(explanation.scores) == 7 and abs(logits[0] - logits[1]) > 0.1
    assert sum(explanation.scores) == pytest.approx((logits[0] - logits[1]).item(), rel=0.02, abs=1e-3)


def test_a_language_model_is_not_a_classifier(tmp_path):
    run = Trainer.new(tiny_config(write_corpus(tmp_path), tmp_path / "lm", max_steps=2, eval_interval=2))
    run.run()
    with pytest.raises(CheckpointError, match="not a classifier"):
        Classifier.load(run.folder.path)


def test_an_encoder_frames_its_text_with_cls_and_sep(trained):
    tokenizer = trained[0].tokenizer.with_special_tokens()
    ids = encode_text(tokenizer, "it was good today", "encoder", 4)
    assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id and len(ids) == 4
