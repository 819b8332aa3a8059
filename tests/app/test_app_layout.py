"""The window on small screens: at 1024x700 and at the default 1280x800 (and at scale factor 2), every tab fits
without a horizontal scroll bar, every field and button lies inside the window at no less than its width, every
plot inside its panel with its title whole, and the window is never wider than it was asked to be, whatever a tab
shows."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QLabel, QLineEdit,
                               QScrollBar, QSlider, QWidget)

from app.generate.session import GENERATE
from app.main_window import ATTENTION_TAB_INDEX
from app_helpers import fake_metrics, make_run
from engine_helpers import tiny_config

SIZES = [(1024, 700), (1280, 800)]
FIELDS = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QSlider, QLabel)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, small_corpus):
    """A finished run with a long name, so the runs list, the headers and the tabs show one."""
    from lmcore.trainer import Trainer

    config = tiny_config(small_corpus, tmp_path_factory.mktemp("layout") / "runs", max_steps=20, eval_interval=10)
    config.name = "a-rather-long-run-name-for-a-small-screen"
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    return trainer.folder.path


@pytest.fixture
def real_window(qtbot, themed_app, tmp_path, trained_run):
    """The main window with the real Generate and Attention tabs, over the trained run's runs folder."""
    from app.main_window import MainWindow

    window = MainWindow(trained_run.parent, settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat),
                        user_presets_dir=tmp_path / "presets")
    qtbot.addWidget(window)  # closed at the end, which ends the tabs' worker threads
    window.show()
    qtbot.waitExposed(window)
    return window


def show_at(window, size: tuple[int, int]) -> None:
    window.resize(*size)
    for _ in range(3):  # a layout change may ask for another
        QApplication.processEvents()


def horizontal_scroll_bars(window) -> list[QScrollBar]:
    return [bar for bar in window.findChildren(QScrollBar)
            if bar.orientation() == Qt.Orientation.Horizontal and bar.isVisible()]


def misplaced(window) -> list[str]:
    """The visible fields, buttons and labels that stick out of the window, or are narrower than they need (cut
    off) though nothing set them so; with what is wrong with each."""
    problems = []
    for widget in window.findChildren(QWidget):
        if not isinstance(widget, FIELDS) or not widget.isVisible():
            continue
        if isinstance(widget.parent(), (QAbstractSpinBox, QComboBox)):
            continue  # the editor inside a spin box or combo box: its box is checked
        left = widget.mapTo(window, QPoint(0, 0)).x()
        what = f"{type(widget).__name__} {getattr(widget, 'text', lambda: '')()!r}"
        if left < 0 or left + widget.width() > window.width():
            problems.append(f"{what} at x {left}..{left + widget.width()}, outside {window.width()}")
        cut = isinstance(widget, (QAbstractButton, QComboBox)) or (
            isinstance(widget, QLabel) and not widget.wordWrap() and widget.text())
        if cut and widget.minimumWidth() == 0 and widget.width() < widget.minimumSizeHint().width():
            problems.append(f"{what} {widget.width()} px wide, needs {widget.minimumSizeHint().width()}")
    return problems


def plots_cut_off(window) -> list[str]:
    """The plots of the visible plot panels that stick out of their panel (a row of plots wider than its room), or
    whose title is cut; with what is wrong with each."""
    problems = []
    for panel in window.findChildren(pg.GraphicsLayoutWidget):
        if not panel.isVisible():
            continue
        for plot in [item for item in panel.ci.items if isinstance(item, pg.PlotItem)]:
            title = plot.titleLabel
            right = panel.mapFromScene(plot.sceneBoundingRect()).boundingRect().right()
            if right > panel.viewport().width() + 1:
                problems.append(f"plot {title.text!r} ends at x {right}, past {panel.viewport().width()}")
            if title.isVisible() and title.itemRect().width() > title.width() + 1:
                problems.append(f"title {title.text!r} needs {title.itemRect().width():.0f} px, has {title.width():.0f}")
    return problems


def check_fits(window, size: tuple[int, int], where: str) -> None:
    assert (window.width(), window.height()) == size, f"{where}: the window grew"
    hint = window.minimumSizeHint()
    assert hint.width() <= size[0] and hint.height() <= size[1], f"{where}: needs {hint.toTuple()}"
    assert horizontal_scroll_bars(window) == [], f"{where}: a horizontal scroll bar"
    assert misplaced(window) == [], where
    assert plots_cut_off(window) == [], where


@pytest.mark.parametrize("size", SIZES)
def test_the_train_tab_fits_every_section_open(make_window, size):
    window = make_window()
    show_at(window, size)
    check_fits(window, size, "Train")
    assert window.train_tab.start_button.isVisible()
    for section in window.train_tab.form.sections.values():  # a folded section's fields count too
        section.expand()
    show_at(window, size)
    check_fits(window, size, "Train, every section open")


@pytest.mark.parametrize("size", SIZES)
def test_the_train_tab_fits_with_the_accuracy_plot_shown(make_window, tmp_path, qtbot, size):
    """A masked language model's masked-token accuracy: a fourth small plot in the row, which must fit too."""
    metrics = fake_metrics(40)
    for record in metrics:
        if record["kind"] == "eval":
            record["val_accuracy"] = record["step"] / 100
    run = make_run(tmp_path / "runs", "masked-lm-with-accuracy", "finished", metrics=metrics)
    window = make_window()
    window.runs_browser.refresh()
    window.runs_browser.set_checked(run, True)
    plots = window.train_tab.plots
    qtbot.waitUntil(lambda: run in plots.curves and not plots.is_loading(), timeout=10_000)
    plots.refresh()
    assert plots.accuracy_plot in plots.graphics.ci.items
    show_at(window, size)
    check_fits(window, size, "Train, a run's accuracy shown")


def test_the_runs_list_narrows_and_keeps_its_width(make_window):
    """The runs list can be narrowed to its least width (its buttons then stack) and the window remembers it."""
    window = make_window()
    show_at(window, (1280, 800))
    least = window.runs_browser.minimumSizeHint().width()
    window.splitter.setSizes([0, 1280])  # dragged as far as it goes: its least width, or folded away
    window.splitter.setSizes([least + 8, 1280 - least - 8])
    show_at(window, (1280, 800))
    narrowed = window.splitter.sizes()
    assert misplaced(window) == []
    window.close()
    assert make_window().splitter.sizes()[0] == narrowed[0]  # (the offscreen screen is narrower than the window)


def test_a_long_readout_under_the_loss_plot_never_widens_the_window(make_window):
    window = make_window()
    show_at(window, (1024, 700))
    window.train_tab.plots.crosshair.label.setText("step 123,456 · " + "loss 1.2345 · " * 30)
    show_at(window, (1024, 700))
    assert window.width() == 1024


@pytest.mark.parametrize("size", SIZES)
def test_every_tab_fits_with_a_run_selected(qtbot, real_window, trained_run, size):
    window = real_window
    window.runs_browser.select_run(trained_run)
    generate = window.generate_tab
    qtbot.waitUntil(generate.generate_button.isEnabled, timeout=20_000)
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        if index == ATTENTION_TAB_INDEX:  # it captures once shown
            qtbot.waitUntil(window.attention_tab.export_png.isEnabled, timeout=20_000)
        show_at(window, size)
        check_fits(window, size, window.tabs.tabText(index))


@pytest.mark.parametrize("size", SIZES)
def test_every_generate_mode_fits_with_a_pinned_token(qtbot, real_window, trained_run, size):
    window, tab = real_window, real_window.generate_tab
    window.runs_browser.select_run(trained_run)
    window.tabs.setCurrentWidget(window.tabs.widget(1))
    qtbot.waitUntil(tab.generate_button.isEnabled, timeout=20_000)
    tab.controls.max_tokens_spin.setValue(40)
    tab.prompt_edit.setPlainText("ROMEO:")
    qtbot.mouseClick(tab.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.generate_button.isEnabled() and len(tab.session.outputs[GENERATE].tokens) > 5,
                    timeout=20_000)
    tab.inspector.show_token(tab.session.outputs[GENERATE].tokens[5], 5, pinned=True)  # bars and Unpin shown
    show_at(window, size)
    check_fits(window, size, "Generate, a token pinned")
    qtbot.mouseClick(tab.side_by_side_check, Qt.MouseButton.LeftButton)
    show_at(window, size)
    check_fits(window, size, "Generate, side by side")
    for mode in (tab.score_mode_button, tab.chat_mode_button):
        qtbot.mouseClick(mode, Qt.MouseButton.LeftButton)
        show_at(window, size)
        check_fits(window, size, f"Generate, {mode.text()}")


@pytest.mark.parametrize("size", SIZES)
def test_every_attention_view_fits(qtbot, real_window, trained_run, size):
    window, tab = real_window, real_window.attention_tab
    window.runs_browser.select_run(trained_run)
    window.tabs.setCurrentIndex(ATTENTION_TAB_INDEX)
    qtbot.waitUntil(lambda: tab.export_png.isEnabled(), timeout=20_000)  # a snapshot captured and shown
    for view in range(tab.views.count()):
        tab.views.setCurrentIndex(view)
        show_at(window, size)
        check_fits(window, size, f"Attention, {tab.views.tabText(view)}")


OPEN_AT_SCALE_2 = """
import json, sys
from PySide6.QtCore import QStandardPaths, QTimer, Qt
QStandardPaths.setTestModeEnabled(True)  # no settings read or written where the user's are
from PySide6.QtWidgets import QApplication, QScrollBar
from app.main import open_window
app, window = open_window(["--runs-dir", sys.argv[1]])
window.resize(1024, 700)
tabs = []
for index in range(window.tabs.count()):
    window.tabs.setCurrentIndex(index)
    for _ in range(3):
        QApplication.processEvents()
    bars = [bar for bar in window.findChildren(QScrollBar)
            if bar.orientation() == Qt.Orientation.Horizontal and bar.isVisible()]
    tabs.append({"size": window.size().toTuple(), "minimum": window.minimumSizeHint().toTuple(),
                 "horizontal_bars": len(bars)})
print(json.dumps({"ratio": window.devicePixelRatio(), "tabs": tabs}))
QTimer.singleShot(0, app.quit)  # the app's own way out, which ends its worker threads
app.exec()
"""


def test_the_window_fits_1024_by_700_at_scale_factor_2(tmp_path):
    """A HiDPI screen (Qt scales the window twofold): the same logical size must do. In a process of its own, as
    Qt reads the scale factor once."""
    environment = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": "offscreen"}
    opened = subprocess.run([sys.executable, "-c", OPEN_AT_SCALE_2, str(tmp_path / "runs")], env=environment,
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert opened.returncode == 0, opened.stderr
    result = json.loads(opened.stdout.splitlines()[-1])
    assert result["ratio"] == 2
    for tab in result["tabs"]:
        assert tab["size"] == [1024, 700]
        assert tab["minimum"][0] <= 1024 and tab["minimum"][1] <= 700
        assert tab["horizontal_bars"] == 0
