"""`lm-workbench`: the desktop app. Opens on the sample corpus with the baby-gpt-char preset, ready to Start."""
from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSocketNotifier, QTimer
from PySide6.QtWidgets import QApplication

from lmcore import __version__

from .main_window import MainWindow
from .common.pyside_fix import keep_none_alive
from .common.style import apply_theme

DEFAULT_RUNS_DIR = Path.home() / "LM Workbench" / "runs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lm-workbench", description="Train your own language models, watch "
                                     "them learn, and compare runs.")
    parser.add_argument("--version", action="version", version=f"lm-workbench {__version__}")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR,
                        help=f"where run folders are kept (default: {DEFAULT_RUNS_DIR})")
    parser.add_argument("--corpus", type=Path, help="a .txt file or folder to train on (default: the last one "
                        "used, or the bundled Tiny Shakespeare)")
    return parser


def keep_painting_on_the_gui_thread() -> None:
    """Before the QApplication paints: Qt's raster engine hands each fill or picture it draws over 96 rows or more
    to a pool of threads, one per core, and waits for them. Beside a training process, every repaint of a plot's
    strip woke threads that took cores from training, and cost more than it saved: a refresh of the window took
    1.08 ms of CPU with the pool, 0.73 ms without (docs/performance.md, sixth look). Qt reads this once."""
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")


def collect_garbage_on_the_gui_thread():
    """Python's cyclic GC may run on whichever thread allocates (the training or generation worker) and then
    free Qt objects off the GUI thread, which crashes Qt: switch automatic collection off and collect on a
    GUI-thread timer instead. Keep the returned object for as long as the application runs."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    return GarbageCollector(interval=1.0)


def leave_startup_objects_out_of_collections() -> None:
    """Once the window is built: what exists by then (PyTorch's modules, Qt's wrappers, the window) lives as long as
    the application. Frozen, it is left out of every later collection; the collector's full pass, every couple of
    minutes while a run trains, went through all of it (340,000 objects) on the GUI thread in 170-190 ms."""
    gc.freeze()


def start_application(argv: list[str] | None = None, qt_thread_pool: bool = False) -> QApplication:
    """The process's start-up, the same for lm-workbench, the benches and docs/make_screenshots.py: painting on the
    GUI thread (set before the QApplication exists: Qt reads it once; `qt_thread_pool` leaves Qt its pool, a
    bench's diagnostic), the application's names (where QSettings keeps its settings), the QApplication (`argv`:
    Qt's arguments, by default the program's name alone), the guard against PySide6's reference-count bug (before
    the first repaint), the theme, and the garbage collection on the GUI thread, kept alive on the application.
    Returns the QApplication; an existing one is reused and keeps its collector."""
    if not qt_thread_pool:
        keep_painting_on_the_gui_thread()
    QCoreApplication.setOrganizationName("LM Workbench")
    QCoreApplication.setApplicationName("LM Workbench")
    app = QApplication.instance() or QApplication(sys.argv[:1] if argv is None else argv)
    keep_none_alive()
    apply_theme(app)
    if getattr(app, "garbage_collector", None) is None:
        app.garbage_collector = collect_garbage_on_the_gui_thread()
    return app


def open_window(argv: list[str] | None = None):
    """Set the application up from the command line and show the main window; returns (app, window)."""
    args = build_parser().parse_args(argv)
    app = start_application()
    window = MainWindow(args.runs_dir.expanduser(), corpus=args.corpus)
    window.show()
    leave_startup_objects_out_of_collections()
    return app, window


def close_on_ctrl_c(window) -> tuple:
    """Ctrl-C in the terminal closes the window as its close button does (asking first while a run trains),
    instead of a KeyboardInterrupt traceback. Python runs a signal handler only once the interpreter gets control,
    never while Qt's loop waits for events: the signal also writes a byte to a socket that Qt watches, which wakes
    the loop (no timer polling, which would take a core from training). Keep the returned objects for as long as
    the application runs."""
    wake_read, wake_write = socket.socketpair()
    for end in (wake_read, wake_write):
        end.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    notifier = QSocketNotifier(wake_read.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(lambda: wake_read.recv(64))  # Python code runs: the handler below runs with it
    signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(0, window.close))
    return notifier, wake_read, wake_write


def main(argv: list[str] | None = None) -> int:
    app, window = open_window(argv)
    _ctrl_c = close_on_ctrl_c(window)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
