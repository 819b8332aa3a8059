"""`lm-workbench`: the desktop app. Opens on the sample corpus with the baby-gpt-char preset, ready to Start."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication

DEFAULT_RUNS_DIR = Path.home() / "LM Workbench" / "runs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lm-workbench", description="Train your own language models, watch "
                                     "them learn, and compare runs.")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR,
                        help=f"where run folders are kept (default: {DEFAULT_RUNS_DIR})")
    parser.add_argument("--corpus", type=Path, help="a .txt file or folder to train on (default: the last one "
                        "used, or the bundled Tiny Shakespeare)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    QCoreApplication.setOrganizationName("LM Workbench")
    QCoreApplication.setApplicationName("LM Workbench")
    app = QApplication.instance() or QApplication(sys.argv[:1])

    from .main_window import MainWindow  # after QApplication: widgets (and pyqtgraph) need it
    from .style import apply_theme

    apply_theme(app)
    window = MainWindow(args.runs_dir.expanduser(), corpus=args.corpus)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
