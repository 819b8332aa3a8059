"""The README's screenshot of the model families compared: the runs of bench/families.py overlaid in the app
(offscreen, 1280x800), against training time, which every run had the same of.

    python bench/families.py --runs-dir runs/families && python docs/families_screenshot.py runs/families

Saves docs/screenshots/families.png; nothing else is written outside a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from make_screenshots import save, wait_until  # also puts the app on sys.path, offscreen

from PySide6.QtCore import QSettings  # noqa: E402

from app.common.resources import SAMPLE_CORPUS  # noqa: E402
from app.main import start_application  # noqa: E402
from app.main_window import MainWindow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path, help="the runs folder of bench/families.py")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lm-workbench-screenshots-"))
    os.environ.setdefault("LMCORE_CACHE_DIR", str(work / "cache"))
    _app = start_application()  # kept while it runs
    window = MainWindow(args.runs_dir, corpus=SAMPLE_CORPUS,
                        settings=QSettings(str(work / "settings.ini"), QSettings.IniFormat),
                        user_presets_dir=work / "presets")
    window.resize(1280, 800)
    window.show()
    browser, plots = window.runs_browser, window.train_tab.plots
    browser.refresh()
    runs = sorted(path for path in args.runs_dir.iterdir() if path.is_dir())
    for run in runs:
        browser.set_checked(run, True)
    plots.x_axis.setCurrentIndex(plots.x_axis.findData("elapsed"))
    wait_until(lambda: all(run in plots.series and plots.series[run].steps.size for run in runs))
    save(window, "families.png")
    window.close()


if __name__ == "__main__":
    main()
