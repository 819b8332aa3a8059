"""The app tests' setup: the PySide6 guard the app installs at start-up, and garbage collected on the main
thread only, as the app does. Widgets, pyqtgraph and the app come with the fixtures that need them."""
from __future__ import annotations

import gc

import pytest

from app.common.pyside_fix import keep_none_alive

keep_none_alive()  # else a long session of Qt tests can abort with "deallocating None" (see app/common/pyside_fix.py)


@pytest.fixture
def stub_tabs(monkeypatch):
    """Stand-ins for the Generate, Attention and Classify tabs (app_helpers.RecordingTab) that record what the main
    window tells them, and keep these tests independent of those tabs' own work."""
    from app_helpers import RecordingTab
    import app.main_window

    monkeypatch.setattr(app.main_window, "GenerateTab", RecordingTab)
    monkeypatch.setattr(app.main_window, "AttentionTab", RecordingTab)
    monkeypatch.setattr(app.main_window, "ClassifyTab", RecordingTab)


@pytest.fixture
def themed_app(qapp):
    """The application with the app's theme, put back afterwards: the theme changes the session-wide
    application (style, font, palette, pyqtgraph colours), which other tests must not inherit."""
    import pyqtgraph as pg
    from PySide6.QtGui import QFont, QPalette

    from app.common.style import apply_theme

    saved = (qapp.style().name(), QFont(qapp.font()), QPalette(qapp.palette()), qapp.styleSheet(),
             {key: pg.getConfigOption(key) for key in ("background", "foreground", "antialias")})
    apply_theme(qapp)
    yield qapp
    style, font, palette, sheet, plot_options = saved
    qapp.setStyleSheet(sheet)
    qapp.setStyle(style)
    qapp.setFont(font)
    qapp.setPalette(palette)
    pg.setConfigOptions(**plot_options)


@pytest.fixture
def make_window(qtbot, themed_app, tmp_path, stub_tabs):
    """Build a MainWindow over tmp_path (runs, settings, presets), shown at 1280x800. Call it again to reopen
    with the same settings. Any run still training at the end is stopped, so no thread outlives its test."""
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    windows = []

    def make(corpus=None):
        settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
        window = MainWindow(tmp_path / "runs", corpus=corpus, settings=settings,
                            user_presets_dir=tmp_path / "presets")
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    # Not left to qtbot, which closes widgets before fixtures end: closing while training would ask a question.
    for window in windows:
        tab = window.train_tab
        if tab.is_training():
            tab.stop()
            qtbot.waitUntil(lambda tab=tab: not tab.is_training(), timeout=60_000)
        window.close()
        window.deleteLater()


@pytest.fixture
def train_tab(qtbot, tmp_path, small_corpus):
    """The Train tab on the baby-gpt-char preset and a small corpus, shown, ready to Start."""
    from app.common.resources import PRESETS_DIR
    from app.train.tab import TrainTab

    widget = TrainTab(tmp_path / "runs", [PRESETS_DIR], tmp_path / "presets")
    qtbot.addWidget(widget)
    widget.form.load_preset(PRESETS_DIR / "baby-gpt-char.toml")
    widget.form.set_corpus([str(small_corpus)])
    widget.resize(1000, 760)
    widget.show()
    qtbot.waitUntil(widget.start_button.isEnabled, timeout=5000)
    return widget


@pytest.fixture
def plots(qtbot):
    """The training plots alone, shown at 900x600, with no run yet."""
    from app.train.plots import TrainingPlots

    widget = TrainingPlots()
    qtbot.addWidget(widget)
    widget.resize(900, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def attention_tab(qtbot):
    """The Attention tab alone, shown at 1000x800."""
    from app.attention.tab import AttentionTab

    widget = AttentionTab()
    qtbot.addWidget(widget)
    widget.resize(1000, 800)
    widget.show()
    return widget


@pytest.fixture(autouse=True, scope="module")
def collect_garbage_on_the_main_thread_only():
    """Qt crashes when Python's cyclic GC, triggered on a worker thread, frees Qt objects there. As the app does
    (app/main.py), switch automatic collection off and collect on the main thread, after every test. Per module,
    so that the engine tests, collected in the same session, keep Python's normal collection."""
    gc.disable()
    yield
    gc.enable()


@pytest.fixture(autouse=True)
def _collect_after_each_test():
    yield
    gc.collect()
