"""Text classification in the app: the Train form's task choice and classifier fields, a classifier trained from
the form with its accuracy, F1 and confusion matrix shown, and the Classify tab's probabilities and token colours,
which are lmcore's Classifier's (and `lmcore classify`'s)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from lmcore.classify import Classifier
from lmcore.config import config_from_dict
from lmcore.trainer import Trainer

from app.classify.tab import ClassifyTab
from app.train.fields import CLASSIFIER, LANGUAGE_MODEL, MASKED_LM, TASK
from app_helpers import set_field, shown, use_tiny_settings
from engine_helpers import tiny_config

TIMEOUT = 120_000  # ms; generous, for a busy machine

CLASSIFY_FIELDS = ("classify.pooling", "classify.freeze_body", "classify.body_lr_scale", "classify.class_weights",
                   "classify.early_stopping", "classify.metric", "classify.labels", "classify.test", "data.val")
POSITIVE = ("a wonderful, delightful film", "great acting and a lovely story", "I loved it, truly superb",
            "brilliant and moving", "a joy from start to end", "excellent, warm and funny")
NEGATIVE = ("a dull, tedious mess", "awful acting and a boring plot", "I hated it, truly dreadful",
            "weak and lifeless", "a chore from start to end", "terrible, cold and grim")


def write_labelled(path, repeat: int = 6):
    """A small sentiment file: a header row, then text and label per row."""
    rows = [(text, "pos") for text in POSITIVE] + [(text, "neg") for text in NEGATIVE]
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for _ in range(repeat) for t, label in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def tab(train_tab):
    return train_tab


def test_the_task_choice_shows_a_classifiers_fields_and_writes_its_section(qtbot, tab, tmp_path, monkeypatch):
    form = tab.form
    assert form.task() == LANGUAGE_MODEL and not form.sections["Classifier"].isVisibleTo(form)
    assert not any(shown(form, key) for key in CLASSIFY_FIELDS)

    set_field(form, TASK, CLASSIFIER)
    assert form.sections["Classifier"].isVisibleTo(form) and all(shown(form, key) for key in CLASSIFY_FIELDS)
    assert shown(form, "model.family") and "labelled" in form.corpus.path_edit.placeholderText()
    train, val, test = (write_labelled(tmp_path / f"{name}.tsv") for name in ("train", "val", "test"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(train), ""))
    file_button = next(b for b in form.corpus.findChildren(type(tab.start_button)) if b.text() == "File…")
    qtbot.mouseClick(file_button, Qt.MouseButton.LeftButton)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(val), ""))
    form.editors["data.val"].browse.trigger()  # the folder button at the field's end
    set_field(form, "classify.test", str(test))
    set_field(form, "classify.pooling", "mean")
    set_field(form, "classify.class_weights", True)
    set_field(form, "classify.early_stopping", 3)
    set_field(form, "classify.metric", "macro_f1")
    set_field(form, "classify.labels", "neg, pos")
    assert form.validate(), form.errors
    config = form.config()
    assert config.task == "classify" and config.family == "transformer"
    assert config.data.train == [str(train)] and config.data.val == [str(val)] and config.classify.test == [str(test)]
    c = config.classify
    assert (c.pooling, c.class_weights, c.early_stopping, c.metric, c.labels) == ("mean", True, 3, "macro_f1",
                                                                                 ["neg", "pos"])
    form.load_settings(form.settings())  # read back as it was written
    assert form.task() == CLASSIFIER and form.editors["classify.labels"].text() == "neg, pos"

    set_field(form, TASK, LANGUAGE_MODEL)
    assert not form.sections["Classifier"].isVisibleTo(form) and not shown(form, "data.val")


def test_a_masked_language_model_is_an_encoder(tab):
    form = tab.form
    set_field(form, TASK, MASKED_LM)
    assert not shown(form, "model.family")  # nothing to choose: a masked LM is an encoder
    assert form.validate(), form.errors
    config = form.config()
    assert (config.task, config.family) == ("lm", "encoder")
    set_field(form, TASK, LANGUAGE_MODEL)  # continuing text: not an encoder
    assert form.editors["model.family"].config_value() == "transformer"
    set_field(form, "model.family", "encoder")  # picking an encoder picks its task
    assert form.task() == MASKED_LM


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """A tiny character-level GPT classifier, trained for a few steps: its numbers, not its skill, are tested."""
    folder = tmp_path_factory.mktemp("classifier")
    train = write_labelled(folder / "train.tsv")
    config = config_from_dict({
        "name": "tiny-classifier", "task": "classify", "data": {"train": [str(train)]},
        "model": {"family": "transformer", "n_layer": 1, "n_head": 2, "n_embd": 32},
        "train": {"batch_size": 8, "context": 32, "max_steps": 10, "eval_interval": 5, "device": "cpu"}})
    trainer = Trainer.new(config, folder / "runs")
    assert trainer.run() == "finished"
    return trainer.folder.path


def test_a_classifier_trained_from_the_form_shows_its_curves_and_confusion_matrix(make_window, qtbot, tmp_path,
                                                                                 monkeypatch):
    train = write_labelled(tmp_path / "train.tsv")
    window = make_window()
    tab, form = window.train_tab, window.train_tab.form
    set_field(form, TASK, CLASSIFIER)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(train), ""))
    file_button = next(b for b in form.corpus.findChildren(type(tab.start_button)) if b.text() == "File…")
    qtbot.mouseClick(file_button, Qt.MouseButton.LeftButton)
    use_tiny_settings(form, **{"train.max_steps": 10, "train.eval_interval": 5})
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=5000)
    qtbot.mouseClick(tab.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    assert "Finished" in tab.banner.text() and "Classify tab" in tab.banner.text(), tab.banner.text()
    plots, run = tab.classifier_plots, tab.plots.pinned
    assert plots.isVisible() and plots.matrix_run == run
    assert list(plots.curves[run]["accuracy"].getData()[0]) == [5, 10]
    assert len(plots.curves[run]["macro-F1"].getData()[1]) == 2
    assert tab.plots.accuracy_plot not in tab.plots.graphics.ci.items  # its accuracy is shown once: here
    latest = plots.runs[run][-1]
    assert plots.image.image.T.shape == (2, 2)  # neg and pos, true down and predicted across
    counts = [int(text.toPlainText()) for text in plots.cell_texts]
    assert counts == [n for row in latest.confusion for n in row]
    assert [sum(row) for row in latest.confusion] == [4, 4]  # a stratified tenth of 72 rows, 36 of each label
    assert "macro-F1" in plots.caption.text() and "neg: precision" in plots.caption.text()

    again = make_window()  # a finished classifier, ticked in the runs list, is read back from its metrics
    again.runs_browser.refresh()
    again.runs_browser.set_checked(run, True)
    replayed = again.train_tab.classifier_plots
    qtbot.waitUntil(lambda: replayed.matrix_run == run, timeout=20_000)
    assert replayed.runs[run] == plots.runs[run]
    again.runs_browser.set_checked(run, False)
    qtbot.waitUntil(lambda: not replayed.isVisibleTo(again), timeout=5000)


@pytest.fixture
def classify_tab(qtbot):
    tab = ClassifyTab()
    qtbot.addWidget(tab)  # closed at the end, which ends its worker thread
    tab.resize(800, 600)
    tab.show()
    return tab


def classify(qtbot, tab, text: str):
    tab.text_edit.setPlainText(text)
    qtbot.waitUntil(tab.classify_button.isEnabled, timeout=20_000)
    tab.result = None
    qtbot.mouseClick(tab.classify_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.result is not None, timeout=20_000)
    return tab.result


def test_the_classify_view_gives_the_classifiers_probabilities_and_lmcore_classifys(qtbot, classify_tab,
                                                                                  classifier_run):
    text = "a lovely, moving film"
    classify_tab.set_run(classifier_run)
    result = classify(qtbot, classify_tab, text)
    classifier = Classifier.load(classifier_run)
    assert classify_tab.bars.labels == classifier.labels == ["neg", "pos"]
    assert classify_tab.bars.probabilities == classifier.probabilities([text])[0] == result.probabilities
    printed = subprocess.run([sys.executable, "-m", "lmcore", "classify", str(classifier_run), "--text", text,
                              "--json"], capture_output=True, text=True, timeout=120, check=True)
    assert list(json.loads(printed.stdout)["probabilities"].values()) == classify_tab.bars.probabilities
    explained = classifier.explain(text)
    assert result.explanation.tokens == explained.tokens and classify_tab.tokens_view.tokens == explained.tokens
    assert result.explanation.label == explained.label  # the predicted class, unless another is chosen
    assert not classify_tab.cut_note.isVisibleTo(classify_tab)  # all of it read


def test_token_colours_follow_the_scores_signs_and_another_class_can_be_explained(qtbot, classify_tab,
                                                                                 classifier_run):
    classify_tab.set_run(classifier_run)
    result = classify(qtbot, classify_tab, "great acting, but a boring plot")
    view = classify_tab.tokens_view
    assert view.scores == result.explanation.scores and len(view.colours) == len(view.tokens)
    strongest = max(range(len(view.scores)), key=lambda i: abs(view.scores[i]))
    assert f"{view.scores[strongest]:+.4f}" in view.score_text(strongest)
    scores = check_colours(view)

    other = 1 - result.explanation.label
    classify_tab.explain_combo.setCurrentIndex(classify_tab.explain_combo.findData(other))
    classify_tab.explain_combo.activated.emit(classify_tab.explain_combo.currentIndex())  # as a user's pick does
    qtbot.waitUntil(lambda: classify_tab.result.explanation.label == other, timeout=20_000)
    assert classify_tab.tokens_view.label == ["neg", "pos"][other]
    assert classify_tab.result.probabilities == result.probabilities  # the same text: only the explanation differs
    scores += check_colours(classify_tab.tokens_view)
    # this barely trained model's tokens push one way, for one class or the other: both colours were checked
    assert any(score > 0 for score in scores) and any(score < 0 for score in scores)


def check_colours(view) -> list[float]:
    """Red for a token that pushed towards the class explained, blue for one that pushed away; its scores."""
    visible = 0.01 * max(abs(score) for score in view.scores)  # fainter ones are all but white
    for score, colour in zip(view.scores, view.colours, strict=True):
        if score > visible:
            assert colour.red() > colour.blue()
        elif score < -visible:
            assert colour.blue() > colour.red()
    return list(view.scores)


def test_a_language_models_run_is_refused_with_a_clear_message(qtbot, classify_tab, tmp_path, small_corpus):
    trainer = Trainer.new(tiny_config(small_corpus, tmp_path / "runs", max_steps=2, eval_interval=2))
    assert trainer.run() == "finished"
    classify_tab.set_run(trainer.folder.path)
    qtbot.waitUntil(classify_tab.message.isVisible, timeout=20_000)
    assert "not a classifier" in classify_tab.message.text()
    classify_tab.text_edit.setPlainText("some text")
    assert not classify_tab.classify_button.isEnabled()


@pytest.mark.parametrize("size", [(1024, 700), (1280, 800)])
def test_a_classifier_fits_the_window_in_the_train_and_classify_tabs(qtbot, themed_app, tmp_path, classifier_run,
                                                                    size):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from test_app_layout import check_fits, show_at

    window = MainWindow(classifier_run.parent, settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat),
                        user_presets_dir=tmp_path / "presets")
    qtbot.addWidget(window)  # closed at the end, which ends the tabs' worker threads
    window.show()
    qtbot.waitExposed(window)
    window.runs_browser.select_run(classifier_run)
    window.runs_browser.set_checked(classifier_run, True)
    qtbot.waitUntil(lambda: window.train_tab.classifier_plots.matrix_run == classifier_run, timeout=20_000)
    show_at(window, size)
    check_fits(window, size, "Train, a classifier's plots")
    window.tabs.setCurrentWidget(window.tabs.widget(window.tabs.count() - 1))
    classify(qtbot, window.classify_tab, "a lovely film, " * 20)  # long enough to wrap
    assert window.classify_tab.cut_note.isVisible()  # and longer than the 32 tokens the classifier reads
    show_at(window, size)
    check_fits(window, size, "Classify")
