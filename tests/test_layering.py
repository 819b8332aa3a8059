"""lmcore is a headless library: importing every one of its modules must not pull in Qt."""
import subprocess
import sys
from pathlib import Path

LMCORE = Path(__file__).resolve().parent.parent / "lmcore"


def test_no_lmcore_module_imports_qt():
    modules = sorted("lmcore." + ".".join(p.relative_to(LMCORE).with_suffix("").parts)
                     for p in LMCORE.rglob("*.py") if p.name != "__init__.py")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(modules) >= 10 and result.stdout.strip() == "[]"


APP = LMCORE.parent / "app"


def test_the_app_never_imports_the_trainer():
    """The window supervises training in a process of its own (`lmcore train --events -`); it never trains."""
    modules = sorted("app." + p.stem for p in APP.glob("*.py") if p.name != "__init__.py")
    code = ("import importlib, os, sys\n"
            "os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m in ('lmcore.trainer', 'lmcore.distributed')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=LMCORE.parent)
    assert result.returncode == 0, result.stderr
    assert len(modules) >= 10 and result.stdout.strip() == "[]"
