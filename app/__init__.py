"""LM Workbench's window: PySide6 views over the lmcore engine. Installed with the GUI extra."""
import sys

GUI_EXTRA = "pip install 'lm-workbench[gui]'"


def main() -> int:
    """The `lm-workbench` command: the window, or one clear line when the GUI extra is not installed."""
    try:
        import PySide6  # noqa: F401
        import pyqtgraph  # noqa: F401
    except ImportError as exc:
        sys.exit(f"lm-workbench: the window needs {exc.name}, which is not installed. Install the GUI extra: "
                 f"{GUI_EXTRA}. (The engine and its command line, lmcore, work without it.)")
    from .main import main as run_window

    return run_window()
