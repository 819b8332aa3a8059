"""A guard against a PySide6 reference-count bug that aborts long sessions on Python 3.11.

Some PySide6 builds (seen with 6.12 on CPython 3.11) hand back None from Qt's void methods without taking a new
reference to it. Each call (QPainter.drawLine, QLabel.setText, QWidget.update, ...) lowers None's reference
count by one; pyqtgraph makes dozens of them per repaint, so after a few minutes of live plots the count reaches
zero and Python aborts with "Fatal Python error: none_dealloc". True and False leak the same way, more slowly
("bool_dealloc" after twenty minutes of training). Python 3.12 made these singletons immortal (PEP 683), which
these builds appear to assume. Where the bug is present, they get reference counts too large to drain.
"""
from __future__ import annotations

import ctypes
import sys

_RESERVE = 1 << 48  # ~2.8e14 leaked references: centuries of repaints


def void_calls_leak_none() -> bool:
    """Whether a void Qt call costs None a reference (it must not)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(100):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - 50


def keep_none_alive() -> None:
    """Call once, before the GUI starts; does nothing where the bug is absent or cannot bite."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12) or not void_calls_leak_none():
        return
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object: raising it is Py_INCREF done _RESERVE times.
        refcount = ctypes.c_ssize_t.from_address(id(singleton))
        if refcount.value < _RESERVE:
            refcount.value += _RESERVE
