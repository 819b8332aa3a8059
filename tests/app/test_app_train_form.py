"""The Train form: presets, fields that follow the model family, inline validation, corpus problems."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QSpinBox

from lmcore.config import load_config, setting_field
from lmcore.errors import ConfigError
from lmcore.models import RNNConfig, TransformerConfig
from lmcore.models.common import MAX_WIDTH
from lmcore.corpus import inspect_corpus
from lmcore.estimate import estimate_run, estimate_vocab_size

from app.train import form as train_form
from app.train.fields import FIELDS, FORM_ONLY, WIDE
from app.common.resources import PRESETS_DIR
from app.common.text import format_count
from app_helpers import set_field, shown, type_corpus


@pytest.fixture
def tab(train_tab):
    return train_tab


def test_every_field_says_what_it_does_and_its_range(tab):
    for key, editor in tab.form.editors.items():
        tip = editor.toolTip()
        assert len(tip) > 40, key
        if FIELDS[key].editor in ("int", "number"):
            assert any(ch.isdigit() for ch in tip), f"{key}: no range in {tip!r}"


def test_switching_the_family_shows_only_its_fields(tab):
    form = tab.form
    assert shown(form, "model.n_head") and shown(form, "model.positional")
    assert not shown(form, "model.n_hidden") and not shown(form, "model.cell")
    set_field(form, "model.family", "rnn")
    assert shown(form, "model.n_hidden") and shown(form, "model.cell")
    assert not shown(form, "model.n_head") and not shown(form, "model.positional")
    set_field(form, "model.n_hidden", 128)  # tied embeddings need n_embd == n_hidden (128)
    set_field(form, "model.cell", "gru")
    assert form.validate()
    model = form.config().model
    assert isinstance(model, RNNConfig) and (model.cell, model.n_embd, model.n_hidden) == ("gru", 128, 128)


def test_an_invalid_field_is_marked_explained_and_blocks_start(tab, qtbot):
    form = tab.form
    set_field(form, "model.n_head", 3)  # 128 is not divisible by 3
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    heads, embedding = form.editors["model.n_head"], form.editors["model.n_embd"]
    message = form._rows["model.n_embd"][2]  # the message names n_embd first; both fields are marked
    assert heads.property("invalid") is True and embedding.property("invalid") is True
    assert message.isVisibleTo(form) and "not divisible by model.n_head = 3" in message.text()
    assert "divisible" in tab.start_button.toolTip()
    set_field(form, "optim.lr", 1000.0)  # still invalid, for another reason too...
    set_field(form, "model.n_head", 4)  # ...and then for that one alone: the tooltip follows the errors
    qtbot.waitUntil(lambda: "optim.lr" in tab.start_button.toolTip(), timeout=3000)
    assert "divisible" not in tab.start_button.toolTip() and not tab.start_button.isEnabled()
    set_field(form, "optim.lr", 1e-3)
    set_field(form, "model.n_head", 3)
    qtbot.waitUntil(lambda: "divisible" in tab.start_button.toolTip(), timeout=3000)
    qtbot.mouseClick(tab.start_button, Qt.LeftButton)
    assert tab.state == "idle" and not tab.is_training()
    set_field(form, "model.n_head", 4)
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=3000)
    assert not heads.property("invalid") and not message.isVisibleTo(form)


def test_text_that_is_not_a_number_is_explained(tab, qtbot):
    form = tab.form
    form.sections["Optimizer"].expand()
    form.editors["optim.lr"].clear()
    qtbot.keyClicks(form.editors["optim.lr"], "fast")
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    assert "optim.lr = 'fast' is not a number" in form._rows["optim.lr"][2].text()


def test_a_rule_across_fields_names_the_field_at_fault(tab, qtbot):
    form = tab.form
    set_field(form, "schedule.min_lr", 0.5)  # above the learning rate (1e-3)
    qtbot.waitUntil(lambda: "schedule.min_lr" in form.errors, timeout=3000)
    assert form.sections["Schedule"].header.isChecked()  # a folded section with a problem opens
    assert not tab.start_button.isEnabled()


@pytest.mark.parametrize("content, explanation", [
    (b"", "is empty"),
    (b"\x00\x01\x02binary" * 50, "looks binary"),
    ("caf\xe9 au lait\n".encode("latin-1") * 200, "not valid UTF-8"),
    (b"To be or not to be.\n", "too short"),
    (None, "does not exist"),
])
def test_a_bad_corpus_is_explained_in_the_form(tab, qtbot, tmp_path, content, explanation):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    type_corpus(qtbot, tab.form, path)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    problem = tab.form.corpus.problem
    assert problem.isVisibleTo(tab.form) and explanation in problem.text()


def test_replacing_bad_bytes_makes_a_latin1_corpus_usable(tab, qtbot, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait, s'il vous pla\xeet\n".encode("latin-1") * 200)
    type_corpus(qtbot, tab.form, path)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    set_field(tab.form, "data.encoding_errors", "replace")
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=3000)
    assert "6,000 characters" in tab.form.corpus.info.text() and not tab.form.corpus.problem.isVisibleTo(tab.form)


def test_presets_load_every_setting_but_the_corpus(tab, small_corpus):
    form = tab.form
    form.preset.setCurrentIndex(form.preset.findText("lstm-word"))
    config, preset = form.config(), load_config(PRESETS_DIR / "lstm-word.toml")
    assert (config.family, config.model.cell, config.optim.name, config.tokenizer.kind) == \
        ("rnn", "lstm", "sgd", "word")
    assert (config.optim.lr, config.train.context) == (preset.optim.lr, preset.train.context)
    assert config.train.epochs == preset.train.epochs > 0
    assert shown(form, "train.epochs") and not shown(form, "train.max_steps")
    assert config.data.train == [str(small_corpus)]


def test_save_as_preset(tab, qtbot, tmp_path, monkeypatch):
    form = tab.form
    set_field(form, "model.n_layer", 2)
    set_field(form, "train.max_steps", 300)
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("my small gpt", True))
    qtbot.mouseClick(next(b for b in form.findChildren(type(tab.start_button)) if "preset" in b.text()),
                     Qt.LeftButton)
    saved = tmp_path / "presets" / "my-small-gpt.toml"
    assert saved.is_file() and form.preset.currentText() == "my-small-gpt"
    config = load_config(saved)
    assert (config.model.n_layer, config.train.max_steps) == (2, 300)
    set_field(form, "model.n_layer", 6)
    form.preset.setCurrentIndex(form.preset.findText("baby-gpt-char"))
    form.preset.setCurrentIndex(form.preset.findText("my-small-gpt"))
    assert form.config().model.n_layer == 2


def test_summary_shows_what_the_run_will_cost(tab, small_corpus):
    config = load_config(PRESETS_DIR / "baby-gpt-char.toml")
    config.data.train = [str(small_corpus)]
    expected = estimate_run(config, estimate_vocab_size(config, inspect_corpus(config.data.train)))
    values = tab.form.summary.values
    assert values["Parameters"].text() == format_count(expected.parameters)
    assert values["Tokens / step"].text() == "768"
    assert values["Memory (est.)"].text().startswith("≈")
    assert values["Time / step"].text() == "–"  # known once training runs


def test_steps_or_epochs(tab, qtbot):
    form = tab.form
    set_field(form, "train.by", "epochs")
    assert shown(form, "train.epochs") and not shown(form, "train.max_steps")
    set_field(form, "train.epochs", 2.5)
    assert form.validate() and form.config().train.epochs == 2.5
    set_field(form, "train.by", "steps")
    assert form.validate() and form.config().train.epochs == 0


@pytest.mark.parametrize("key, value, message", [
    ("data.val_fraction", 0, "data.val_fraction = 0.0 must be between 0 and 1"),  # once a division by zero
    ("optim.lr", "inf", "optim.lr = inf must be a finite number"),
    ("train.epochs", "inf", "train.epochs = inf must be a finite number"),
    ("model.dropout", 1.5, "model.dropout = 1.5 is too high: it must be at least 0 and below 1"),
    ("name", "../escape", "name = '../escape' cannot name a run folder"),
])
def test_every_invalid_value_blocks_start_and_says_why(tab, qtbot, key, value, message):
    form = tab.form
    if key == "train.epochs":
        set_field(form, "train.by", "epochs")
    set_field(form, key, value)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    label = form._rows[key][2]
    assert message in label.text() and label.isVisibleTo(form) and form.config() is None
    assert message in tab.start_button.toolTip()


def test_tooltips_and_spin_box_ranges_are_lmcores(tab):
    form = tab.form
    for key, editor in form.editors.items():
        spec = setting_field(key)
        if spec is None:
            assert key in FORM_ONLY
            continue
        assert editor.toolTip() == spec.metadata["help"], key
        if isinstance(editor, QSpinBox):
            low = spec.metadata.get("at_least", 1)
            assert (editor.minimum(), editor.maximum()) == (low, spec.metadata.get("at_most", WIDE)), key
        if FIELDS[key].choices and key != "train.device":  # the devices this machine has, of lmcore's
            assert {value for value, _ in FIELDS[key].choices} == set(spec.metadata["choices"]), key
    embedding = form.editors["model.n_embd"]
    embedding.setValue(10**9)  # too wide a model cannot even be typed: the box stops at lmcore's limit
    assert embedding.value() == MAX_WIDTH and form.editors["tokenizer.vocab_size"].minimum() == 258


def test_the_model_tooltips_follow_the_family(tab, qtbot):
    form = tab.form
    layers = form.editors["model.n_layer"]
    assert layers.toolTip() == TransformerConfig.__dataclass_fields__["n_layer"].metadata["help"]
    set_field(form, "model.family", "rnn")
    rnn_help = RNNConfig.__dataclass_fields__["n_layer"].metadata["help"]
    assert layers.toolTip() == rnn_help != TransformerConfig.__dataclass_fields__["n_layer"].metadata["help"]
    assert form._labels["model.n_layer"].toolTip() == rnn_help


@pytest.mark.parametrize("field, also, marked, shown_under", [
    ("train.batch_size", ("model.n_layer",), ["model.n_layer"], "train.batch_size"),
    ("model.n_hidden", ("model.n_embd",), [], "model.n_embd"),  # n_hidden is hidden: the first shown one takes it
    (None, (), [], ""),  # no field: the message goes under the whole form
])
def test_the_form_marks_the_field_an_error_is_about(tab, qtbot, monkeypatch, field, also, marked, shown_under):
    """The field comes from ConfigError.field, not from the message's words: this one names no field at all."""
    def refuse(*args):
        raise ConfigError("These settings will not do; change them.", field=field, also=also)

    monkeypatch.setattr(train_form, "estimate_run", refuse)
    form = tab.form
    set_field(form, "model.n_layer", 2)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    assert list(form.errors) == [shown_under] and form.errors[shown_under].startswith("These settings")
    for key, editor in form.editors.items():
        assert bool(editor.property("invalid")) == (key == shown_under or key in marked), key
    if shown_under:
        assert form._rows[shown_under][2].isVisibleTo(form) and not form.general_error.isVisibleTo(form)
    else:
        assert form.general_error.isVisibleTo(form) and "will not do" in form.general_error.text()


@pytest.mark.parametrize("refused", ["read_bytes", "stat"])  # a file, or a folder, this user may not read
def test_an_unreadable_corpus_blocks_start_and_says_why(tab, qtbot, tmp_path, monkeypatch, refused):
    path = tmp_path / "locked.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 100)
    real = getattr(Path, refused)

    def refuse(self, *args, **kwargs):  # as the system would for another user (chmod does not stop root, as in CI)
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, refused, refuse)
    type_corpus(qtbot, tab.form, path)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    problem = tab.form.corpus.problem.text()
    assert str(path) in problem and "Permission denied" in problem and tab.form.config() is None


def test_an_unforeseen_failure_blocks_start_and_says_what_it_was(tab, qtbot, monkeypatch):
    def broken(*args):
        raise RuntimeError("the estimate broke")

    monkeypatch.setattr(train_form, "estimate_run", broken)
    set_field(tab.form, "model.n_layer", 2)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    general = tab.form.general_error
    assert general.isVisibleTo(tab.form) and "RuntimeError: the estimate broke" in general.text()
    assert tab.form.config() is None  # the settings before the failure are not kept for Start
    monkeypatch.undo()
    set_field(tab.form, "model.n_layer", 3)
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=3000)
    assert not general.isVisibleTo(tab.form)


def test_a_run_that_cannot_fit_in_memory_is_blocked_and_one_that_barely_fits_is_warned(tab, qtbot, monkeypatch,
                                                                                     small_corpus):
    form = tab.form
    config = form.config()
    needed = estimate_run(config, estimate_vocab_size(config, inspect_corpus(config.data.train))).memory_bytes
    for memory, can_start, warned in ((needed // 2, False, False), (needed * 3 // 2, True, True),
                                      (needed * 4, True, False)):
        monkeypatch.setattr(train_form, "memory_bytes", lambda device, memory=memory: memory)
        assert form.validate() == can_start and tab.start_button.isEnabled() == can_start
        assert form.summary.warning.isVisibleTo(form) == warned
        assert ("of memory, more than" in form.general_error.text()) == (not can_start)
        assert ("it may run out" in form.summary.warning.text()) == warned


def test_the_issues_terabyte_model_is_blocked_on_this_machine(tab, qtbot):
    form = tab.form
    set_field(form, "model.n_layer", 48)
    set_field(form, "model.n_embd", 16384)  # about 155 billion parameters: terabytes with gradients and Adam
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=10_000)
    assert "TB of memory, more than" in form.general_error.text()
    assert form.summary.values["Memory (est.)"].text().endswith("TB")


def test_a_validation_share_out_of_range_gets_one_message_not_a_corpus_length_too(tab, qtbot):
    """1.5 once also said the corpus was too short, "about -132 characters"."""
    form = tab.form
    set_field(form, "data.val_fraction", 1.5)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=3000)
    assert "data.val_fraction = 1.5" in form._rows["data.val_fraction"][2].text()
    assert not form.corpus.problem.isVisibleTo(form) and "too short" not in " ".join(form.errors.values())


def test_a_model_far_too_large_for_this_machine_is_blocked_with_its_memory(tab, qtbot):
    """A 9.66 B-parameter model estimated at 165 GB once got no warning."""
    form = tab.form
    set_field(form, "model.n_layer", 48)
    set_field(form, "model.n_embd", 4096)
    qtbot.waitUntil(lambda: not tab.start_button.isEnabled(), timeout=5000)
    assert "of memory" in tab.start_button.toolTip()


def test_a_word_tokenizer_on_text_without_spaces_is_warned_about(tab, qtbot, tmp_path):
    form = tab.form
    corpus = tmp_path / "poems.txt"
    corpus.write_text("床前明月光，疑是地上霜。举头望明月，低头思故乡。\n" * 400, encoding="utf-8")
    type_corpus(qtbot, form, corpus)
    set_field(form, "tokenizer.kind", "word")
    qtbot.waitUntil(lambda: "written without spaces" in form.summary.warning.text(), timeout=5000)
    set_field(form, "tokenizer.segmenter", "jieba")  # cut into words: nothing to warn about
    qtbot.waitUntil(lambda: "written without spaces" not in form.summary.warning.text(), timeout=5000)
