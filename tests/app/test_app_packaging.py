"""The `lm-workbench` command without its GUI extra says what to install, in one line and without a traceback."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_window_without_qt_says_to_install_the_gui_extra():
    code = "import sys; sys.modules['PySide6'] = None; import app; sys.exit(app.main())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert "lm-workbench[gui]" in result.stderr and "PySide6" in result.stderr
    assert "Traceback" not in result.stderr
