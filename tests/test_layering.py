"""The layers: lmcore is a headless library (no Qt, and the app never trains); in app/, each panel is a folder
that imports no other panel (only app/main_window.py wires them) and app/common imports none; the engine's
tests import neither the app nor Qt."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LMCORE, APP = ROOT / "lmcore", ROOT / "app"
PANELS = ("train", "generate", "attention", "runs")
QT_PACKAGES = ("PySide6", "pyqtgraph", "shiboken6")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, relative imports made absolute."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            found.add(".".join(base + ([node.module] if node.module else [])))
    return found


def test_no_lmcore_module_imports_qt():
    modules = sorted(module_name(p) for p in LMCORE.rglob("*.py") if p.name != "__init__.py")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT_PACKAGES!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert len(modules) >= 10 and result.stdout.strip() == "[]"


def test_the_app_never_imports_the_trainer():
    """The window supervises training in a process of its own (`lmcore train --events -`); it never trains."""
    modules = sorted(module_name(p) for p in APP.rglob("*.py") if p.name != "__init__.py")
    code = ("import importlib, os, sys\n"
            "os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m in ('lmcore.trainer', 'lmcore.distributed')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert len(modules) >= 10 and result.stdout.strip() == "[]"


def test_relative_imports_are_resolved():
    """The checks below stand on imported_modules; a relative import must come out as the module it names."""
    assert "app.common.style" in imported_modules(APP / "train" / "tab.py")
    assert "app.train.plots" in imported_modules(APP / "train" / "tab.py")
    assert "app.train.tab" in imported_modules(APP / "main_window.py")


def test_no_panel_imports_another():
    offences = []
    for panel in (*PANELS, "common"):
        assert (APP / panel / "__init__.py").exists(), f"app/{panel} is not a package"
        for path in (APP / panel).rglob("*.py"):
            for name in imported_modules(path):
                parts = name.split(".")
                if parts[0] == "app" and len(parts) > 1 and parts[1] != panel and parts[1] != "common":
                    offences.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offences == [], "a panel may import app.common only; the main window wires panels together"


def test_every_app_module_belongs_to_a_panel_or_is_the_wiring():
    loose = sorted(p.name for p in APP.glob("*.py"))
    assert loose == ["__init__.py", "main.py", "main_window.py"]


def test_engine_tests_import_neither_the_app_nor_qt():
    offences = [f"{path.relative_to(ROOT)} imports {name}"
                for path in (ROOT / "tests" / "engine").rglob("*.py") for name in imported_modules(path)
                if name.split(".")[0] in ("app", "bench", *QT_PACKAGES)]
    assert offences == []
