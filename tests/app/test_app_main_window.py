"""The main window: how it opens, what it remembers, its tabs, and the command line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QObject, QSettings, QStandardPaths, Qt
from PySide6.QtGui import QColor, QKeySequence
from PySide6.QtWidgets import QApplication, QWidget

from lmcore.corpus import inspect_corpus
from lmcore.estimate import estimate_run, estimate_vocab_size

from app.main import DEFAULT_RUNS_DIR, build_parser, open_window
from app.common.resources import SAMPLE_CORPUS
from app.common.text import format_count, format_duration
from app_helpers import make_run, set_field


def test_opens_on_the_sample_corpus_with_baby_gpt_char_ready_to_start(make_window):
    window = make_window()
    form = window.train_tab.form
    assert form.corpus.paths() == [str(SAMPLE_CORPUS)]
    assert form.preset.currentText() == "baby-gpt-char"
    assert "1,115,394 characters" in form.corpus.info.text()
    assert window.train_tab.start_button.isEnabled()
    config = form.config()
    expected = estimate_run(config, estimate_vocab_size(config, inspect_corpus(config.data.train)))
    assert form.summary.values["Parameters"].text() == format_count(expected.parameters)
    assert window.device_label.text().startswith("Device: ") and ("CPU" in window.device_label.text()
                                                                   or "GiB" in window.device_label.text())
    assert (window.width(), window.height()) == (1280, 800)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Train", "Generate", "Attention",
                                                                            "Classify"]


def test_remembers_geometry_corpus_and_settings(make_window, small_corpus, tmp_path):
    window = make_window(corpus=small_corpus)
    form = window.train_tab.form
    set_field(form, "model.n_layer", 2)
    set_field(form, "optim.lr", "0.003")
    window.train_tab.plots.smoothing.setValue(80)
    window.resize(1100, 700)
    window.close()
    again = make_window()
    form = again.train_tab.form
    assert form.corpus.paths() == [str(small_corpus)]
    assert form.config().model.n_layer == 2 and form.config().optim.lr == 0.003
    assert again.train_tab.plots.smoothing.value() == 80
    # The offscreen screen is 800 px wide, so the restored width is clamped to the screen (then to the
    # window's minimum); the height shows the geometry came back.
    assert again.height() == 700 and again.settings.value("window/geometry")


def test_selecting_a_run_tells_the_generate_and_attention_tabs(make_window, qtbot, tmp_path):
    run = make_run(tmp_path / "runs", "picked", "finished")
    window = make_window()
    tree = window.runs_browser.tree
    rect = tree.visualItemRect(tree.topLevelItem(0))
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=rect.center())
    assert window.generate_tab.runs[-1] == run and window.attention_tab.runs[-1] == run


def test_training_shortcuts(make_window):
    window = make_window()
    keys = {action.text(): action.shortcut() for action in (window.start_action, window.pause_action,
                                                             window.stop_action)}
    assert list(keys.values()) == [QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+P"), QKeySequence("Ctrl+.")]
    assert "Ctrl+Return" in window.train_tab.start_button.toolTip()


def test_the_real_generate_and_attention_tabs_are_the_window_tabs(qtbot, qapp, tmp_path):
    """Without stand-ins: the tabs the other issues build are the ones the window shows and tells."""
    from PySide6.QtCore import QSettings

    from app.attention.tab import AttentionTab
    from app.generate.tab import GenerateTab
    from app.main_window import MainWindow

    window = MainWindow(tmp_path / "runs", settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat),
                        user_presets_dir=tmp_path / "presets")
    qtbot.addWidget(window)
    assert isinstance(window.generate_tab, GenerateTab) and isinstance(window.attention_tab, AttentionTab)
    assert window.tabs.widget(1).widget() is window.generate_tab  # each in a scroll area: a wide tab scrolls
    assert window.tabs.widget(2).widget() is window.attention_tab
    assert window.minimumSizeHint().width() <= 1024  # tests/app/test_app_layout.py checks each tab at 1024x700
    window.runs_browser.selection_changed.emit(None)  # the tabs accept "no run"


def test_lm_workbench_opens_on_the_sample_corpus(themed_app, stub_tabs, tmp_path):
    """What the console script shows (without running its event loop), its settings in a temporary folder."""
    QStandardPaths.setTestModeEnabled(True)
    QSettings.setPath(QSettings.NativeFormat, QSettings.UserScope, str(tmp_path / "config"))
    try:
        _, window = open_window(["--runs-dir", str(tmp_path / "runs")])
    finally:
        QStandardPaths.setTestModeEnabled(False)
    assert window.isVisible() and window.runs_dir == tmp_path / "runs"
    assert window.train_tab.form.corpus.paths() == [str(SAMPLE_CORPUS)]
    assert window.train_tab.form.preset.currentText() == "baby-gpt-char"
    assert window.train_tab.start_button.isEnabled()
    window.close()
    window.deleteLater()


def test_command_line_arguments(tmp_path):
    args = build_parser().parse_args([])
    assert args.runs_dir == DEFAULT_RUNS_DIR and args.corpus is None
    args = build_parser().parse_args(["--runs-dir", str(tmp_path), "--corpus", "my text.txt"])
    assert args.runs_dir == tmp_path and args.corpus == Path("my text.txt")


def test_the_window_fits_a_1024_by_700_screen(make_window):
    window = make_window()
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    window.resize(1024, 700)
    assert (window.width(), window.height()) == (1024, 700)
    assert window.train_tab.start_button.isVisible()


def test_send_to_attention_shows_the_generated_text_in_the_attention_tab(qtbot, qapp, tmp_path):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    window = MainWindow(tmp_path / "runs", settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat),
                        user_presets_dir=tmp_path / "presets")
    qtbot.addWidget(window)
    shown = []
    window.attention_tab.show_text = shown.append
    window.generate_tab.send_to_attention.emit("ROMEO: hello")
    assert shown == ["ROMEO: hello"] and window.tabs.currentIndex() == 2


class LayoutRequests(QObject):
    """Collects the widgets of a window asked to lay out their children again."""

    def __init__(self, window):
        super().__init__()
        self.window, self.widgets = window, []

    def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
        if event.type() == QEvent.LayoutRequest and isinstance(watched, QWidget) and (
                watched is self.window or self.window.isAncestorOf(watched)):
            self.widgets.append(watched)
        return False

    def none_within(self, qtbot, ms: int) -> bool:
        self.widgets.clear()
        qtbot.wait(ms)
        return not self.widgets


def test_training_readouts_do_not_lay_the_window_out_again(make_window, qtbot):
    """Progress, speed and time per step change twice a second while training. Laying the window out again for
    each would repaint all of it, CPU time taken from training: each readout must repaint only itself."""
    window = make_window()
    tab = window.train_tab
    requests = LayoutRequests(window)
    QApplication.instance().installEventFilter(requests)
    try:
        # the window settled first: its own layouts done, the corpus inspected
        qtbot.waitUntil(lambda: requests.none_within(qtbot, 200), timeout=10_000)
        for i, seconds in enumerate((0.004, 0.062, 1.5, 12.25)):
            tab.form.summary.show_step_time(seconds)
            tab.speed_changed.emit(7.0 * 10 ** i)
            tab.progress.show_progress(i / 4, f"step {i:,} of 4 · {7 * 10 ** i:,} tokens/s · {i} min left")
            qtbot.wait(20)
    finally:
        QApplication.instance().removeEventFilter(requests)
    assert window.speed_label.text() == "7,000 tokens/s"
    assert tab.form.summary.values["Time / step"].text() == format_duration(12.25) == "12.2 s"
    assert requests.widgets == []


PAINT_THE_WINDOW = """
import os, sys
from PySide6.QtCore import QStandardPaths, QTimer
QStandardPaths.setTestModeEnabled(True)  # no settings written where the user's are
from app.main import open_window
app, window = open_window(["--runs-dir", sys.argv[1]])
window.grab()  # paints all of it
threads = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
print(threads.count("Thread (pooled)"))
QTimer.singleShot(0, app.quit)  # the app's own way out, which ends its worker threads
app.exec()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process's threads from /proc")
def test_qt_paints_the_window_on_the_gui_thread_alone(tmp_path):
    """Else Qt's raster engine wakes a thread per core for each large fill, beside training. In a process of its
    own: Qt reads the setting once, and this one's QApplication has painted already."""
    environment = {name: value for name, value in os.environ.items() if name != "QT_NO_GUI_THREADPOOL"}
    painted = subprocess.run([sys.executable, "-c", PAINT_THE_WINDOW, str(tmp_path / "runs")], env=environment,
                             capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert painted.returncode == 0, painted.stderr
    assert painted.stdout.split()[-1] == "0"  # Qt's image threads ("Thread (pooled)") never started


CTRL_C_THE_APP = """
import sys
from PySide6.QtCore import QStandardPaths, QTimer
from PySide6.QtWidgets import QApplication
QStandardPaths.setTestModeEnabled(True)  # no settings written where the user's are
from app.main import main
app = QApplication(sys.argv[:1])  # main() takes it over
QTimer.singleShot(0, lambda: print("shown", flush=True))  # runs once main() has shown the window
sys.exit(main(["--runs-dir", sys.argv[1]]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_in_the_terminal_closes_the_window(tmp_path):
    """Issue 23: Ctrl-C printed a KeyboardInterrupt traceback and the app kept running. It must close the window
    as its close button does; in a process of its own, as the app runs from a terminal."""
    app = subprocess.Popen([sys.executable, "-c", CTRL_C_THE_APP, str(tmp_path / "runs")], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert app.stdout.readline().strip() == "shown"
        app.send_signal(signal.SIGINT)
        out, err = app.communicate(timeout=60)
    finally:
        app.kill()
    assert app.returncode == 0, err
    assert "Traceback" not in err


def test_the_window_wires_the_tabs_through_their_interface(make_window):
    """The stand-ins implement the tabs' real interface: the window has no branches for them."""
    window = make_window()
    window.generate_tab.send_to_attention.emit("To be, or not to be")
    assert window.attention_tab.texts == ["To be, or not to be"] and window.tabs.currentIndex() == 2
    window.close()
    assert window.generate_tab.shut_down and window.attention_tab.shut_down


def test_a_disabled_delete_button_is_not_drawn_red(themed_app, qtbot):
    """Red says "this destroys something": a button that cannot be pressed must not shout it."""
    from PySide6.QtWidgets import QPushButton

    from app.common.style import ERROR

    def reddish_pixels(button) -> int:
        image = button.grab().toImage()
        red = QColor(ERROR)
        return sum(1 for x in range(image.width()) for y in range(image.height())
                   if abs(image.pixelColor(x, y).red() - red.red()) < 40
                   and abs(image.pixelColor(x, y).green() - red.green()) < 40
                   and abs(image.pixelColor(x, y).blue() - red.blue()) < 40)

    button = QPushButton("Delete…")
    button.setObjectName("danger")
    qtbot.addWidget(button)
    button.show()
    assert reddish_pixels(button) > 5  # enabled: red text
    button.setEnabled(False)
    assert reddish_pixels(button) == 0
