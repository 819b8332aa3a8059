"""One dialect in app/: scoped Qt enums (Qt.AlignmentFlag.AlignLeft, not Qt.AlignLeft) and snake_case signals."""
import enum
import re
from pathlib import Path

import PySide6.QtCore as QtCore
import PySide6.QtGui as QtGui
import PySide6.QtWidgets as QtWidgets

APP = Path(__file__).resolve().parents[2] / "app"
QT_ATTRIBUTE = re.compile(r"\b(Q[A-Za-z]+|Qt)\.([A-Z][A-Za-z0-9_]*)\b(?!\s*\()")
SIGNAL = re.compile(r"^\s+(\w+)\s*=\s*Signal\(", re.MULTILINE)


def unscoped_member(class_name: str, member: str) -> str | None:
    """'Qt.AlignmentFlag.AlignLeft' when `class_name.member` is an enum member reached without its enum."""
    owner = next((getattr(m, class_name) for m in (QtCore, QtGui, QtWidgets) if hasattr(m, class_name)), None)
    value = getattr(owner, member, None) if owner is not None else None
    if isinstance(value, enum.Enum) and type(value).__name__ != member:
        return f"{class_name}.{type(value).__name__}.{member}"
    return None


def test_qt_enums_are_scoped():
    offences = [f"{path.relative_to(APP.parent)}: {m.group(0)} -> {scoped}"
                for path in sorted(APP.rglob("*.py")) for m in QT_ATTRIBUTE.finditer(path.read_text())
                if (scoped := unscoped_member(m.group(1), m.group(2)))]
    assert offences == []


def test_the_check_finds_an_unscoped_enum():
    assert unscoped_member("Qt", "AlignLeft") == "Qt.AlignmentFlag.AlignLeft"
    assert unscoped_member("Qt", "AlignmentFlag") is None and unscoped_member("QPainter", "RenderHint") is None


def test_signals_are_snake_case():
    names = [name for path in APP.rglob("*.py") for name in SIGNAL.findall(path.read_text())]
    assert len(names) > 20 and [n for n in names if n != n.lower()] == []
