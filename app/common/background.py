"""The app's one way to work in the background: a QObject worker living on a QThread of its own.

The GUI thread calls the worker's slots through queued signals (or plain thread-safe methods) and hears back
through the worker's signals, which Qt delivers on the GUI thread. Nothing in the background touches a widget.

    self.worker = GenerationWorker()
    self.thread = start_in_background(self.worker, "generate-worker", interrupt=self.worker.stop_requested.set)
    ...
    stop_background(self.thread)   # on close: cuts the running slot short, ends the thread's event loop, waits
"""
from __future__ import annotations

import traceback
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, QThread

from lmcore.errors import LMCoreError


class BackgroundThread(QThread):
    """A worker's thread, which knows how to cut the worker's running slot short."""

    def __init__(self, name: str, interrupt: Callable[[], None] | None):
        super().__init__()
        self.setObjectName(name)
        self.interrupt = interrupt  # called from the GUI thread, so it must be thread-safe


def start_in_background(worker: QObject, name: str, interrupt: Callable[[], None] | None = None) -> BackgroundThread:
    """Move `worker` to a new thread called `name` and start the thread's event loop. The worker must have no
    parent; its owner keeps a reference to it. `interrupt`, if the worker has long slots, makes the running one
    return early. The thread is ended when the application quits, if nobody has ended it before."""
    thread = BackgroundThread(name, interrupt)
    worker.moveToThread(thread)
    thread.start()
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(lambda: stop_background(thread))
    return thread


def stop_background(thread: BackgroundThread | None) -> None:
    """Interrupt the slot the thread is running, end its event loop once that returns, and wait for it."""
    if thread is not None and thread.isRunning():
        if thread.interrupt is not None:
            thread.interrupt()
        thread.quit()
        thread.wait()


class WorkerOwner:
    """Mixed into a widget whose worker lives on the thread in `self._thread` (start_in_background's): shutdown()
    ends that thread, and so does closing the widget."""

    _thread: BackgroundThread | None

    def shutdown(self) -> None:
        """End the worker thread (on close; start_in_background does it when the application quits)."""
        stop_background(self._thread)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)  # type: ignore[misc]  # the widget's, after this mixin in its bases


def report_errors(work: Callable[[], None], report: Callable[[str], None]) -> None:
    """Run `work` on the worker's thread, turning any error into a message for `report`: a worker must outlive
    bad input and bugs. Engine and file errors are the user's to fix; anything else is a bug."""
    try:
        work()
    except (LMCoreError, OSError) as exc:  # OSError: a file went away or could not be read
        report(str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug: report it inline, keep the details for the console
        traceback.print_exc()
        report(f"Unexpected error ({type(exc).__name__}: {exc}). Details were printed to the console.")
