"""The Train tab's plots for classifier runs: a classifier's accuracy shown once (beside its F1, not in the small
plots' row, which keeps accuracy for masked language models), several classifiers' curves overlaid in their run
colours, one confusion matrix named in its title with label names that fit their columns, and the loss plot's
legend inside the plot."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics

from lmcore.events import ClassifyMetrics

from app.common.resources import PRESETS_DIR
from app.train.classify_plots import ClassifierPlots
from app.train.tab import TrainTab
from app_helpers import fake_metrics, make_run

SIX_LABELS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]


def classify_records(labels: list[str], steps=(10, 20, 30, 40)) -> list[dict]:
    """A classifier's ClassifyMetrics records, one per evaluation, most texts on the diagonal."""
    n = len(labels)
    return [{"kind": "classify", "step": step, "accuracy": 0.5 + step / 200, "macro_f1": 0.4 + step / 200,
             "labels": labels, "precision": [0.6] * n, "recall": [0.6] * n,
             "confusion": [[8 if i == j else 1 for j in range(n)] for i in range(n)]} for step in steps]


def classifier_metrics(labels: list[str]) -> list[dict]:
    """Steps and evaluations with accuracy, each evaluation followed by its ClassifyMetrics, as a classifier's."""
    records, classified = fake_metrics(40), iter(classify_records(labels))
    for record in [r for r in records if r["kind"] == "eval"]:
        record["val_accuracy"] = 0.6
        records.insert(records.index(record) + 1, next(classified))
    return records


def masked_lm_metrics() -> list[dict]:
    records = fake_metrics(40)
    for record in records:
        if record["kind"] == "eval":
            record["val_accuracy"] = 0.3
    return records


@pytest.fixture
def tab(qtbot, themed_app, tmp_path):
    widget = TrainTab(tmp_path / "runs", [PRESETS_DIR], tmp_path / "presets")
    qtbot.addWidget(widget)
    widget.resize(1000, 760)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def show(qtbot, tab, runs) -> None:
    tab.plots.compare(runs)
    qtbot.waitUntil(lambda: all(run in tab.plots.series for run in runs) and not tab.plots.is_loading(),
                    timeout=10_000)
    tab.plots.refresh()


def test_two_classifiers_are_overlaid_in_their_colours_and_their_accuracy_is_shown_once(qtbot, tab, tmp_path):
    first = make_run(tmp_path / "runs", "sentiment-a", "finished", metrics=classifier_metrics(["neg", "pos"]))
    second = make_run(tmp_path / "runs", "sentiment-b", "finished", metrics=classifier_metrics(["neg", "pos"]))
    show(qtbot, tab, [first, second])
    panel = tab.classifier_plots
    assert panel.isVisible() and list(panel.runs) == [first, second]
    assert tab.plots.accuracy_plot not in tab.plots.graphics.ci.items  # a classifier's accuracy: in its panel alone
    colours = set()
    for run in (first, second):
        accuracy, f1 = panel.curves[run]["accuracy"], panel.curves[run]["macro-F1"]
        assert list(accuracy.getData()[0]) == list(f1.getData()[0]) == [10, 20, 30, 40]
        colour = tab.plots.colour_of(run)  # the loss plot's colour for the run
        assert accuracy.opts["pen"].color().name() == f1.opts["pen"].color().name() == colour
        assert accuracy.opts["pen"].style() == Qt.PenStyle.SolidLine
        assert f1.opts["pen"].style() == Qt.PenStyle.DashLine
        colours.add(colour)
    assert len(colours) == 2
    assert panel.matrix_run == second and "sentiment-b" in panel.confusion_plot.titleLabel.text  # the last ticked
    tab.plots.compare([first])
    assert list(panel.curves) == [first] and panel.matrix_run == first
    assert "sentiment-a" in panel.confusion_plot.titleLabel.text
    tab.plots.compare([])
    assert not panel.isVisibleTo(tab)


def test_a_masked_lms_accuracy_has_the_small_plot_and_a_classifiers_stays_out_of_it(qtbot, tab, tmp_path):
    classifier = make_run(tmp_path / "runs", "sentiment", "finished", metrics=classifier_metrics(["neg", "pos"]))
    masked_lm = make_run(tmp_path / "runs", "baby-bert", "finished", metrics=masked_lm_metrics())
    show(qtbot, tab, [classifier, masked_lm])
    assert tab.plots.accuracy_plot in tab.plots.graphics.ci.items
    assert list(tab.plots.curves[masked_lm].val_accuracy.data()[1]) == [0.3] * 4
    assert tab.plots.curves[classifier].val_accuracy.data()[0] is None
    assert list(tab.classifier_plots.runs) == [classifier]


def test_the_live_classifiers_confusion_matrix_stays_while_others_are_ticked(qtbot, themed_app, tmp_path):
    panel = ClassifierPlots()
    qtbot.addWidget(panel)
    live, ticked = tmp_path / "live-run", tmp_path / "ticked-run"
    panel.show_run(live, [], "#4e79a7", live=True)
    assert panel.caption.text() == "Waiting for the first evaluation…"
    panel.show_run(ticked, [ClassifyMetrics.from_json(r) for r in classify_records(["neg", "pos"])], "#f28e2b")
    assert panel.matrix_run == live
    panel.add(live, [ClassifyMetrics.from_json(classify_records(["neg", "pos"], steps=(5,))[0])])
    assert panel.caption.text().startswith("live-run, step 5:")
    panel.remove(live)
    assert panel.matrix_run == ticked and panel.live is None


@pytest.mark.parametrize("labels", [["negative", "positive"], SIX_LABELS])
def test_the_predicted_label_names_fit_their_columns(qtbot, tab, tmp_path, labels):
    run = make_run(tmp_path / "runs", "emotions", "finished", metrics=classifier_metrics(labels))
    show(qtbot, tab, [run])
    plot = tab.classifier_plots.confusion_plot
    qtbot.waitUntil(lambda: plot.vb.width() > 0)
    axis = plot.getAxis("bottom")
    (x0, x1), _ = plot.vb.viewRange()
    column = plot.vb.width() / (x1 - x0)
    fits = QFontMetrics(axis.style["tickFont"] or axis.font())
    names = [name for _, name in axis._tickLevels[0]]  # pyqtgraph keeps the ticks set, with no getter
    assert len(names) == len(labels)
    assert all(fits.horizontalAdvance(name) < column for name in names), (names, column)
    if len(labels) == 2:
        assert names == labels  # room for them whole
    else:
        assert all(label.startswith(name.rstrip("…")) for name, label in zip(names, labels, strict=True))


@pytest.mark.parametrize("count", [1, 4])
def test_the_loss_legend_lies_inside_the_loss_plot(qtbot, tab, tmp_path, count):
    runs = [make_run(tmp_path / "runs", f"a-rather-long-run-name-{i}", "finished", metrics=fake_metrics(40))
            for i in range(count)]
    show(qtbot, tab, runs)
    legend, view = tab.plots.legend, tab.plots.loss_plot.vb
    assert view.sceneBoundingRect().contains(legend.sceneBoundingRect())
    assert legend.sceneBoundingRect().top() - view.sceneBoundingRect().top() < 20  # top right: off a falling loss
    assert view.sceneBoundingRect().right() - legend.sceneBoundingRect().right() < 20
