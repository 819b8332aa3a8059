"""The live plots: big curves stay cheap, the controls change what is drawn, exports write files."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QWheelEvent
from PySide6.QtWidgets import QApplication, QPushButton

from lmcore import events as ev

from app.train.live_curve import TAIL_PIXELS, _downsampled
from app.train import plots as plots_module
from app.train.plots import NOISY_POINTS_PER_PIXEL, SMOOTH_POINTS_PER_PIXEL, TrainingPlots
from app.train.series import X_AXES, Columns, SmoothedLoss
from app.common.text import run_label
from app.common.style import run_colour
from app_helpers import fake_metrics, make_run


def steps(first: int, count: int, tokens_per_step: int = 100):
    return [ev.StepMetrics(i, i * tokens_per_step, 3.0 / (1 + i / 500) + 0.1 * np.sin(i), 1e-3, 1.0, 5000.0,
                           i * 0.02) for i in range(first, first + count)]


@pytest.fixture
def plots(plots, tmp_path):
    """conftest's plots, following a live run in tmp_path/live."""
    plots.begin_live_run(tmp_path / "live")
    return plots


def compare(qtbot, plots, runs) -> None:
    """Tick these runs for comparison, and wait until the plots have read them (on their loader's thread)."""
    plots.compare(runs)
    qtbot.waitUntil(lambda: not plots.is_loading(), timeout=10_000)
    plots.refresh()


def test_100k_points_per_curve_are_downsampled_to_the_plots_width(plots, tmp_path):
    plots.add_steps(steps(1, 100_000))
    plots.refresh()
    plots.graphics.grab()  # paints every plot
    curves = plots.curves[tmp_path / "live"]
    assert len(curves.raw_loss.data()[0]) == 100_000
    width = plots.loss_plot.vb.width()
    assert len(curves.raw_loss.history.getData()[0]) <= NOISY_POINTS_PER_PIXEL * width + 4  # peak pairs, spikes kept
    assert len(curves.smoothed_loss.history.getData()[0]) <= SMOOTH_POINTS_PER_PIXEL * width + 4


class Clock:
    """The plots' time.monotonic, stopped where it was and moved by hand."""

    def __init__(self):
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


def drawn_steps(plots, run, curve="raw_loss") -> int:
    curves = plots.curves.get(run)
    return len(getattr(curves, curve).data()[0]) if curves else 0


def test_steps_are_drawn_when_they_come_and_steps_closer_than_a_tenth_of_a_second_together(plots, qtbot, tmp_path,
                                                                                            monkeypatch):
    """A batch of steps is drawn in the event loop's next pass (the wake-up that brought it), not at a timer of the
    plots' own; batches that come faster than the refresh rate wait out the rest of the interval and are drawn by
    one refresh."""
    qtbot.waitUntil(lambda: not plots._refresh_timer.isActive(), timeout=5000)  # the empty run drawn
    clock = Clock()
    monkeypatch.setattr(plots_module, "time", clock)
    refreshes = []
    refresh = plots.refresh
    monkeypatch.setattr(plots, "refresh", lambda details=True: (refreshes.append(details), refresh(details)))

    clock.now += 1.0
    plots.add_steps(steps(1, 3))
    assert drawn_steps(plots, tmp_path / "live") == 0  # appending only stores the points
    assert plots._refresh_timer.remainingTime() == 0  # the last refresh is a second old: at once
    qtbot.waitUntil(lambda: drawn_steps(plots, tmp_path / "live") == 3, timeout=5000)
    assert refreshes == [True]

    clock.now += 0.02
    plots.add_steps(steps(4, 3))
    clock.now += 0.02
    plots.add_steps(steps(7, 3))
    assert plots._refresh_timer.remainingTime() > 1000 * plots_module.DUE_SLACK_S  # the rest of the interval
    qtbot.waitUntil(lambda: drawn_steps(plots, tmp_path / "live") == 9, timeout=5000)
    assert refreshes == [True, False]  # one refresh for both; the small plots' turn had not come


def test_the_small_plots_catch_up_when_no_more_steps_come(plots, qtbot, tmp_path, monkeypatch):
    qtbot.waitUntil(lambda: not plots._refresh_timer.isActive(), timeout=5000)
    clock = Clock()
    monkeypatch.setattr(plots_module, "time", clock)
    clock.now += 1.0
    plots.add_steps(steps(1, 3))
    qtbot.waitUntil(lambda: drawn_steps(plots, tmp_path / "live", "grad_norm") == 3, timeout=5000)
    clock.now += 0.1
    plots.add_steps(steps(4, 3))
    qtbot.waitUntil(lambda: drawn_steps(plots, tmp_path / "live") == 6, timeout=5000)
    assert drawn_steps(plots, tmp_path / "live", "grad_norm") == 3  # the loss at once, the small plots later
    clock.now += plots.pace.details_s
    qtbot.waitUntil(lambda: drawn_steps(plots, tmp_path / "live", "grad_norm") == 6, timeout=5000)


def test_a_run_training_on_every_core_is_drawn_at_the_sparing_pace(plots, qtbot, tmp_path, monkeypatch):
    """Each redraw takes CPU from a run that keeps every core busy: its steps wait out SPARING's longer interval."""
    plots.begin_live_run(tmp_path / "live", pace=plots_module.SPARING)
    qtbot.waitUntil(lambda: not plots._refresh_timer.isActive(), timeout=5000)
    clock = Clock()
    monkeypatch.setattr(plots_module, "time", clock)
    clock.now += 10.0
    plots.add_steps(steps(1, 3))
    qtbot.waitUntil(lambda: drawn_steps(plots, tmp_path / "live") == 3, timeout=5000)
    clock.now += plots_module.LIVELY.refresh_s  # a lively run's next refresh would be due now
    plots.add_steps(steps(4, 3))
    wait_ms = 1000 * (plots_module.SPARING.refresh_s - plots_module.LIVELY.refresh_s)
    assert plots._refresh_timer.remainingTime() > wait_ms - 1000 * plots_module.DUE_SLACK_S
    plots.end_live_run()
    assert plots.pace is plots_module.LIVELY  # runs shown after it are drawn at once again


def test_the_pace_is_sparing_beside_a_run_that_keeps_every_core_busy(monkeypatch):
    monkeypatch.setattr(plots_module.os, "cpu_count", lambda: 8)
    assert plots_module.pace_beside(8) is plots_module.SPARING  # training on the CPU, a thread a core
    assert plots_module.pace_beside(1) is plots_module.LIVELY  # one process driving a GPU
    assert plots_module.pace_beside(0) is plots_module.LIVELY  # not said (an older lmcore)
    assert plots_module.SPARING.refresh_s > plots_module.LIVELY.refresh_s
    assert plots_module.SPARING.details_s > plots_module.LIVELY.details_s


def test_plots_with_nothing_new_to_draw_ask_for_no_refresh(plots, qtbot, tmp_path):
    """An idle window sleeps: no timer of the plots' wakes it while nothing changes."""
    plots.add_steps(steps(1, 3))
    qtbot.waitUntil(lambda: drawn_steps(plots, tmp_path / "live", "grad_norm") == 3, timeout=5000)
    qtbot.waitUntil(lambda: not plots._refresh_timer.isActive(), timeout=5000)
    qtbot.wait(300)
    assert not plots._refresh_timer.isActive()


def test_columns_keep_their_bounds_as_rows_arrive():
    columns = Columns(("step", "loss"))
    columns.extend([(1, 2.0), (2, float("nan"))])  # a missing value is skipped
    columns.extend([(3, -1.0), (4, 0.5)])
    assert columns.bounds("loss") == (-1.0, 2.0)
    assert columns.bounds("loss", positive=True) == (0.5, 2.0)  # for a log axis
    assert columns.bounds("step") == (1, 4)


def test_smoothing_is_tensorboards_debiased_moving_average(plots, tmp_path):
    losses = [4.0, 2.0, 3.0, 1.0]
    reference, average = [], 0.0
    for i, loss in enumerate(losses, start=1):
        average = average * 0.6 + 0.4 * loss
        reference.append(average / (1 - 0.6 ** i))
    smoothed = SmoothedLoss(0.6)
    smoothed.extend(losses[:2])
    smoothed.extend(losses[2:])  # in two batches, as live data arrives
    assert np.allclose(smoothed.values["loss"], reference)

    plots.add_steps(steps(1, 50))
    plots.smoothing.setValue(0)
    plots.refresh()
    series = plots.series[tmp_path / "live"]
    assert np.allclose(series.smoothed.values["loss"], series.steps["loss"])  # 0: the raw loss
    plots.smoothing.setValue(95)
    assert np.std(np.diff(series.smoothed.values["loss"])) < np.std(np.diff(series.steps["loss"]))
    assert plots.smoothing_value.text() == "0.95"


def test_x_axis_switches_between_steps_tokens_and_time(plots, tmp_path):
    plots.add_steps(steps(1, 20, tokens_per_step=256))
    plots.add_evals([ev.EvalMetrics(20, 20 * 256, 0.4, 2.5, 12.0, None, True)])
    for key, expected_last in (("step", 20), ("tokens", 20 * 256), ("elapsed", 0.4)):
        plots.x_axis.setCurrentIndex(plots.x_axis.findData(key))
        plots.refresh()
        x, _ = plots.curves[tmp_path / "live"].raw_loss.data()
        x_eval, _ = plots.curves[tmp_path / "live"].val_loss.data()
        assert x[-1] == pytest.approx(expected_last) and x_eval[-1] == pytest.approx(expected_last)
        assert plots.loss_plot.getAxis("bottom").labelText == X_AXES[key]


def test_log_scale_toggle(plots, qtbot):
    qtbot.mouseClick(plots.log_y, Qt.MouseButton.LeftButton)
    assert plots.loss_plot.getAxis("left").logMode
    qtbot.mouseClick(plots.log_y, Qt.MouseButton.LeftButton)
    assert not plots.loss_plot.getAxis("left").logMode


def test_view_follows_new_data_until_the_user_zooms(plots, qtbot):
    view = plots.loss_plot.vb
    plots.add_steps(steps(1, 100))
    plots.refresh()
    assert view.viewRange()[0][1] >= 100
    plots.add_steps(steps(101, 100))
    plots.refresh()
    assert view.viewRange()[0][1] >= 200  # followed
    wheel_over(plots, plots.loss_plot)  # the user zooms in: the view stays where they put it
    zoomed = view.viewRange()[0]
    assert zoomed[1] - zoomed[0] < 150
    plots.add_steps(steps(201, 100))
    plots.refresh()
    assert view.viewRange()[0] == zoomed
    qtbot.mouseClick(next(b for b in plots.findChildren(QPushButton) if b.text() == "Fit"), Qt.MouseButton.LeftButton)
    assert view.viewRange()[0][1] >= 300


def test_the_view_moves_in_steps_not_at_every_point(plots):
    """Moving the view redraws the axes, the costliest part of a repaint: it should happen rarely."""
    moves = []
    plots.loss_plot.vb.sigXRangeChanged.connect(lambda *_: moves.append(1))
    for first in range(1, 1001, 10):
        plots.add_steps(steps(first, 10))
        plots.refresh()
    assert plots.loss_plot.vb.viewRange()[0][1] >= 1000
    assert len(moves) < 30  # not 100


def test_a_run_with_a_planned_end_moves_the_steps_axis_three_times_and_never_past_it(plots, tmp_path):
    """Shown from step 1 with room to double, the axis would move a dozen times in 2,000 steps."""
    plots.begin_live_run(tmp_path / "planned", max_steps=2000, tokens_per_step=100)
    rights = []
    plots.loss_plot.vb.sigXRangeChanged.connect(lambda *_: rights.append(plots.loss_plot.vb.viewRange()[0][1]))
    for first in range(1, 2001, 10):
        plots.add_steps(steps(first, 10))
        plots.refresh()
    assert 2000 <= rights[-1] < 1.1 * 2000  # the planned end, and the padding
    assert rights[0] >= 2000 / 8
    assert len(rights) <= 5  # the first view, 3 moves, and one for the y axis's padding at most
    plots.x_axis.setCurrentIndex(plots.x_axis.findData("tokens"))  # the tokens axis knows its end too
    assert plots.loss_plot.vb.viewRange()[0][1] < 1.1 * 2000 * 100


def test_when_training_ends_the_views_drop_the_room_kept_for_new_points(plots):
    plots.add_steps(steps(1, 300))
    plots.refresh()
    assert plots.loss_plot.vb.viewRange()[0][1] > 1.3 * 300  # room ahead while training
    wheel_over(plots, plots.lr_plot)  # the user zoomed this one: it stays as they left it
    zoomed = plots.lr_plot.vb.viewRange()
    plots.end_live_run()
    assert 300 <= plots.loss_plot.vb.viewRange()[0][1] < 1.1 * 300
    assert plots.lr_plot.vb.viewRange() == zoomed


def test_a_zoom_redraws_the_newest_points_for_the_new_scale(plots, tmp_path):
    """The tail's points are thinned out for the scale they were drawn at; a run that ends (or a zoom) changes the
    scale, and they must not stay drawn as they were, which showed as gaps and straight lines."""
    plots.begin_live_run(tmp_path / "planned", max_steps=100_000, tokens_per_step=100)
    for first in range(1, 60, 3):
        plots.add_steps(steps(first, 3))
        plots.refresh()
    curves = plots.curves[tmp_path / "planned"]
    assert len(curves.raw_loss.tail.x) > 0  # drawn for a view 12,500 steps wide
    plots.end_live_run()  # the view closes in on the 60 steps
    plots.refresh()
    assert len(curves.raw_loss.tail.x) == 0 and len(curves.raw_loss.history.getOriginalDataset()[0]) == 60


def test_new_steps_redraw_only_the_curves_they_extend(plots, tmp_path):
    plots.add_steps(steps(1, 50))
    plots.add_evals([ev.EvalMetrics(50, 5000, 1.0, 2.5, 12.2, None, True)])
    plots.refresh()
    curves = plots.curves[tmp_path / "live"]
    redrawn = []
    for name, curve in curves.items().items():
        for method in ("extend", "replace"):
            drawn = getattr(curve, method)
            setattr(curve, method, lambda x, y, name=name, drawn=drawn: (redrawn.append(name), drawn(x, y)))
    plots.add_steps(steps(51, 10))
    plots.refresh(details=False)
    assert sorted(set(redrawn)) == ["raw_loss", "smoothed_loss"]  # not the validation markers, nor the small plots yet
    plots.refresh()
    assert sorted(set(redrawn)) == ["grad_norm", "lr", "raw_loss", "smoothed_loss", "tokens_per_s"]


class PaintedRects(QObject):
    """The rectangles a widget repaints."""

    def __init__(self, widget):
        super().__init__()
        self.rects = []
        self.last_painted = time.monotonic()
        widget.installEventFilter(self)

    def eventFilter(self, _watched, event):  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            self.rects.extend(event.region())  # the strips, not the rectangle around them
            self.last_painted = time.monotonic()
        return False

    def wait_until_still(self, qtbot) -> None:
        """Until nothing was painted for 0.2 s (a new view range takes two paints), then forget what was."""
        qtbot.waitUntil(lambda: time.monotonic() - self.last_painted > 0.2, timeout=5000)
        self.rects.clear()


def test_new_points_repaint_only_a_strip_at_the_end_of_the_curves(plots, qtbot, tmp_path):
    """Painting takes CPU from training, which shares the cores: a refresh must not repaint the whole plot."""
    plots.add_steps(steps(1, 2000))
    plots.refresh()
    viewport = plots.graphics.viewport()
    painted = PaintedRects(viewport)
    painted.wait_until_still(qtbot)
    curves = plots.curves[tmp_path / "live"]
    history_before = curves.raw_loss.history.getOriginalDataset()[0]
    for first in range(2001, 2021, 2):  # ten refreshes of two steps each, as at 20 steps a second
        plots.add_steps(steps(first, 2))
        plots.refresh(details=False)
        qtbot.wait(5)
    assert painted.rects, "the new points were not painted"
    assert max(rect.width() for rect in painted.rects) < 0.1 * viewport.width()
    assert curves.raw_loss.history.getOriginalDataset()[0] is history_before  # the history was not redrawn
    assert len(curves.raw_loss.data()[0]) == 2020


def test_plot_items_bounds_follow_a_resize(plots, qtbot):
    """The plot, view and axis items answer their bounds without pyqtgraph's Python (and an axis keeps its
    answer): after a resize the answers must be the new size, or curves would be clipped to the old one."""
    plots.add_steps(steps(1, 200))
    plots.refresh()
    plots.graphics.grab()
    plot = plots.loss_plot
    axis = plot.getAxis("left")
    old_axis_bounds = axis.boundingRect()
    old_shapes = [item.shape().boundingRect() for item in (plot, plot.vb)]  # as Qt asks, to clip their items
    plots.resize(1200, 800)
    qtbot.waitUntil(lambda: plot.size().width() > 900 * 0.9)
    plots.graphics.grab()
    for item, old_shape in zip((plot, plot.vb), old_shapes, strict=True):
        size = item.size()
        assert item.boundingRect().size() == size
        assert item.shape().boundingRect().size() == size != old_shape.size()
    view_in_axis = plot.vb.mapRectToItem(axis, plot.vb.boundingRect())
    assert axis.boundingRect() != old_axis_bounds
    assert axis.boundingRect().contains(view_in_axis)  # its grid lines cross the whole view


def test_the_tail_of_a_live_curve_joins_its_history_once_it_is_wide(plots, tmp_path):
    plots.add_steps(steps(1, 1000))
    plots.refresh()
    curve = plots.curves[tmp_path / "live"].raw_loss
    plots.add_steps(steps(1001, 2))
    plots.refresh()
    history_end = curve.history.getData()[0][-1]  # where its drawn (downsampled) line ends
    assert list(curve.tail.x) == [history_end, 1001, 1002]  # the line is unbroken
    for first in range(1003, 1603, 3):  # 600 steps: several tails' worth
        plots.add_steps(steps(first, 3))
        plots.refresh()
    history_x, tail_x = curve.history.getOriginalDataset()[0], curve.tail.x
    assert 1003 < history_x[-1] < 1602  # joined, and a new tail began
    assert tail_x[0] == curve.history.getData()[0][-1] and tail_x[-1] == 1602
    (left, right), _ = plots.loss_plot.vb.viewRange()
    assert (tail_x[-1] - tail_x[0]) / (right - left) * plots.loss_plot.vb.width() <= TAIL_PIXELS


def test_a_tail_is_downsampled_as_its_history_is(plots, tmp_path):
    """Else a noisy tail, every point drawn, is a darker band than the history beside it."""
    plots.add_steps(steps(1, 20_000))
    plots.refresh()
    plots.add_steps(steps(20_001, 200))
    plots.refresh()
    curves = plots.curves[tmp_path / "live"]
    assert len(curves.raw_loss.tail.x) < 200 / 4  # a peak pair per bucket of 10 or more points
    assert curves.raw_loss.tail.x[-1] == 20_200  # the newest point is drawn
    x = np.arange(10.0)
    assert list(_downsampled(x, x ** 2, 3, "peak")[0]) == [1, 1, 4, 4, 7, 7, 9]  # bucket centres, then the rest
    assert list(_downsampled(x, x ** 2, 3, "peak")[1]) == [4, 0, 25, 9, 64, 36, 81]  # highest, lowest
    assert list(_downsampled(x, x, 3, "mean")[1]) == [1, 4, 7, 9]


def test_a_flat_curve_gets_a_readable_range_around_its_value(plots):
    plots.add_steps(steps(1, 100))  # a constant learning rate of 1e-3
    plots.refresh()
    low, high = plots.lr_plot.vb.viewRange()[1]
    assert 0.8e-3 < low < 1e-3 < high < 1.2e-3


def wheel_over(plots, plot, notches: int = 3):
    centre = plots.graphics.mapFromScene(plot.vb.sceneBoundingRect().center())
    viewport = plots.graphics.viewport()
    event = QWheelEvent(QPointF(centre), QPointF(viewport.mapToGlobal(centre)), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


def test_crosshair_reads_the_values_under_the_mouse(plots, qtbot, tmp_path):
    plots.add_steps(steps(1, 100))
    plots.refresh()
    qtbot.wait(50)
    box = plots.loss_plot.vb.sceneBoundingRect()
    point = plots.graphics.mapFromScene(box.left() + 0.3 * box.width(), box.center().y())
    qtbot.mouseMove(plots.graphics.viewport(), QPoint(point.x(), point.y()))
    qtbot.waitUntil(lambda: "live" in plots.crosshair.label.text(), timeout=3000)
    assert plots.crosshair.x_line.isVisible()
    series = plots.series[tmp_path / "live"]
    nearest = np.argmin(np.abs(series.steps["step"] - plots.crosshair.x_line.value()))
    expected = series.steps["loss"][nearest]
    assert f"loss {expected:.3f}" in plots.crosshair.label.text()


def test_the_crosshair_readout_never_widens_the_window(plots, qtbot, tmp_path):
    """Issue 23: the readout asked for its whole text's width, and the window grew to 6,482 px for 11 runs."""
    compare(qtbot, plots, [make_run(tmp_path / "runs", f"a-rather-long-run-name-{i}", "finished",
                                    metrics=fake_metrics(40)) for i in range(11)])
    qtbot.wait(50)
    width = plots.width()
    box = plots.loss_plot.vb.sceneBoundingRect()
    point = plots.graphics.mapFromScene(box.left() + 0.5 * box.width(), box.center().y())
    qtbot.mouseMove(plots.graphics.viewport(), QPoint(point.x(), point.y()))
    qtbot.waitUntil(lambda: "a-rather-long-run-name" in plots.crosshair.label.text(), timeout=3000)
    qtbot.wait(50)  # any layout the new text asked for
    assert plots.width() == width
    assert plots.crosshair.label.minimumSizeHint().width() < 100
    assert plots.crosshair.label.sizeHint().width() <= width and plots.crosshair.label.text().endswith("…")


def test_export_png_and_csv(plots, tmp_path):
    plots.add_steps(steps(1, 30))
    plots.add_evals([ev.EvalMetrics(30, 3000, 0.6, 2.5, 12.0, None, True)])
    plots.export_png(tmp_path / "plots.png")
    image = QImage(str(tmp_path / "plots.png"))
    assert not image.isNull() and image.width() >= 800
    plots.export_csv(tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv", encoding="utf-8") as table:
        rows = list(csv.DictReader(table))
    assert [r["kind"] for r in rows].count("step") == 30
    assert rows[-1] == {**rows[-1], "kind": "eval", "step": "30", "val_loss": "2.5"}
    assert rows[0]["run"] == "live" and rows[0]["step"] == "1"


def test_compared_runs_get_their_colour_and_legend_entries(plots, qtbot, tmp_path):
    lstm = make_run(tmp_path / "runs", "lstm", "finished", "rnn", metrics=fake_metrics(40, 5.0))
    gpt = make_run(tmp_path / "runs", "gpt", "finished", metrics=fake_metrics(60, 4.0))
    compare(qtbot, plots, [lstm, gpt])
    assert set(plots.shown_runs()) == {tmp_path / "live", lstm, gpt}
    colours = {plots.curves[run].smoothed_loss.history.opts["pen"].color().name() for run in (lstm, gpt)}
    assert len(colours) == 2  # each its own colour
    legend = [label.text for _, label in plots.legend.items]
    assert legend == ["live", run_label(lstm.name), run_label(gpt.name), "validation"]
    assert len(plots.series[gpt].evals["val_loss"]) == 6
    compare(qtbot, plots, [gpt])
    assert lstm not in plots.curves
    assert [label.text for _, label in plots.legend.items] == ["live", run_label(gpt.name), "validation"]


def named_run(folder, name):
    """A finished run in a folder called `name` (the folder name picks the run's colour)."""
    return make_run(folder, "run", "finished", metrics=fake_metrics(20)).rename(folder / name)


def test_a_run_keeps_its_colour_alone_in_any_company_and_in_a_new_widget(plots, qtbot, tmp_path):
    runs = [named_run(tmp_path / "runs", name) for name in ("run-a", "run-b", "run-c")]  # three colours of their own

    def colour(widget, run):
        widget.refresh()
        return widget.curves[run].smoothed_loss.history.opts["pen"].color().name()

    compare(qtbot, plots, [runs[2]])
    alone = colour(plots, runs[2])
    compare(qtbot, plots, runs)
    assert colour(plots, runs[2]) == alone
    compare(qtbot, plots, runs[::-1])
    assert colour(plots, runs[2]) == alone
    reopened = TrainingPlots()  # as after a restart: nothing shown before, no live run
    qtbot.addWidget(reopened)
    reopened.show()
    compare(qtbot, reopened, runs)
    assert colour(reopened, runs[2]) == alone


def test_runs_whose_folders_pick_the_same_colour_still_differ_when_compared(plots, qtbot, tmp_path):
    runs = [named_run(tmp_path / "runs", name) for name in ("run-a", "run-h", "run-i")]  # all pick the same colour
    compare(qtbot, plots, runs)
    colours = [plots.curves[run].smoothed_loss.history.opts["pen"].color().name() for run in runs]
    assert colours[0] == run_colour(runs[0]) and len(set(colours)) == 3


def test_hidden_plots_wait_to_be_shown_before_they_redraw(plots, qtbot, tmp_path):
    """Behind another tab, redrawing would take CPU from training for nothing."""
    plots.hide()
    plots.add_steps(steps(1, 10))
    qtbot.wait(350)  # three ticks of the refresh timer
    assert tmp_path / "live" not in plots.curves  # nothing drawn yet
    plots.show()
    assert len(plots.curves[tmp_path / "live"].raw_loss.data()[0]) == 10
