"""Make the README's screenshots: the app, offscreen at 1280x800, training on the bundled Tiny Shakespeare.

    python docs/make_screenshots.py [--steps 300]

1. Trains a small character-level LSTM to the end (the run to compare against).
2. Starts the baby-gpt-char preset and, at --steps, saves docs/screenshots/main-window-training.png.
3. Ticks the LSTM in the runs browser and saves docs/screenshots/compare-runs.png (both runs overlaid).
4. Trains the sentiment-classifier preset (as the preset has it, or for --classifier-steps) and saves docs/screenshots/classifier-training.png
   (its accuracy and F1 curves and confusion matrix), then docs/screenshots/classify-tab.png (a review classified,
   its tokens coloured by how they pushed the decision).
5. Trains the baby-bert-char preset (--bert-steps) and saves docs/screenshots/generate-fill-mask.png (the Generate
   tab filling in four blanks of a line of the corpus).
Runs go to a temporary folder; nothing outside docs/screenshots/ is written. --only picks one part.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.main import start_application  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.common.resources import SAMPLE_CORPUS  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
# A one-layer character LSTM with the Transformer's batch, context and optimizer: a fair race on the same text.
LSTM_SETTINGS = {"name": "lstm-char", "model.family": "rnn", "model.cell": "lstm", "model.n_layer": 1,
                 "model.n_embd": 192, "model.n_hidden": 192, "model.dropout": "0", "optim.lr": "0.002",
                 "schedule.warmup_steps": 50, "schedule.min_lr": "0.0002"}


def set_fields(form, settings: dict) -> None:
    """Type into the form's widgets, as a user would."""
    for key, value in settings.items():
        editor = form.editors[key]
        if hasattr(editor, "setValue"):
            editor.setValue(value)
        elif hasattr(editor, "findData"):
            editor.setCurrentIndex(editor.findData(value))
        else:
            editor.setText(str(value))


def wait_until(condition, poll_ms: int = 200) -> None:
    """Run the event loop (the GUI stays live) until condition() holds."""
    loop = QEventLoop()
    timer = QTimer(interval=poll_ms)
    timer.timeout.connect(lambda: condition() and loop.quit())
    timer.start()
    loop.exec()
    timer.stop()


def live_step(tab) -> int:
    series = tab.plots.series.get(tab.plots.pinned)
    return int(series.steps["step"][-1]) if series is not None and series.steps.size else 0


def save(window, name: str) -> None:
    window.train_tab.plots.refresh()
    QApplication.processEvents()
    path = OUT / name
    window.grab().save(str(path))
    print(f"saved {path.relative_to(ROOT)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps of each run before its screenshot")
    parser.add_argument("--classifier-steps", type=int, help="steps the classifier trains for (default: its preset's)")
    parser.add_argument("--bert-steps", type=int, default=300, help="steps the masked language model trains for")
    parser.add_argument("--only", choices=("language-models", "classifier", "fill-mask"),
                        help="make these screenshots alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lm-workbench-screenshots-"))
    os.environ.setdefault("LMCORE_CACHE_DIR", str(work / "cache"))
    OUT.mkdir(parents=True, exist_ok=True)

    _app = start_application()  # as lm-workbench starts; kept while it runs
    window = MainWindow(work / "runs", corpus=SAMPLE_CORPUS,
                        settings=QSettings(str(work / "settings.ini"), QSettings.IniFormat),
                        user_presets_dir=work / "presets")
    window.resize(1280, 800)
    window.show()
    if args.only in (None, "language-models"):
        language_model_shots(window, args.steps)
    if args.only in (None, "classifier"):
        classifier_shots(window, args.classifier_steps)
    if args.only in (None, "fill-mask"):
        fill_mask_shot(window, args.bert_steps)
    window.close()


def language_model_shots(window, steps: int) -> None:
    tab, form, browser = window.train_tab, window.train_tab.form, window.runs_browser
    eval_every = max(steps // 6, 10)

    set_fields(form, {**LSTM_SETTINGS, "train.max_steps": steps, "train.eval_interval": eval_every})
    tab.start_button.click()
    wait_until(lambda: not tab.is_training())
    lstm_run = tab.plots.pinned
    print(f"trained {lstm_run.name}", flush=True)

    form.preset.setCurrentIndex(form.preset.findText("lstm-word"))  # any other, then back: a fresh load
    form.preset.setCurrentIndex(form.preset.findText("baby-gpt-char"))
    set_fields(form, {"train.eval_interval": eval_every})
    form.sections["Tokenizer"].header.setChecked(False)
    tab.start_button.click()
    # the finished LSTM stays pinned until the new run's process has started
    wait_until(lambda: tab.plots.pinned not in (None, lstm_run) and live_step(tab) >= steps)
    save(window, "main-window-training.png")

    browser.set_checked(lstm_run, True)
    wait_until(lambda: live_step(tab) >= steps + 10)
    save(window, "compare-runs.png")
    tab.stop()
    wait_until(lambda: not tab.is_training())
    browser.set_checked(lstm_run, False)


def classifier_shots(window, steps: int | None) -> None:
    """The sentiment classifier trained from the form, its plots, then a review in the Classify tab."""
    tab, form = window.train_tab, window.train_tab.form
    form.preset.setCurrentIndex(form.preset.findText("sentiment-classifier"))  # its labelled files come with it
    if steps:
        set_fields(form, {"train.max_steps": steps, "train.eval_interval": max(steps // 6, 10)})
    for title in ("Corpus", "Model", "Training"):  # the task and the classifier's settings in view
        form.sections[title].header.setChecked(False)
    tab.start_button.click()
    wait_until(lambda: not tab.is_training())
    run = tab.plots.pinned
    print(f"trained {run.name}", flush=True)
    save(window, "classifier-training.png")

    window.runs_browser.refresh()
    window.runs_browser.select_run(run)
    window.tabs.setCurrentWidget(window.tabs.widget(window.tabs.count() - 1))
    classify = window.classify_tab
    wait_until(lambda: classify.summary is not None or classify.message.isVisible())
    classify.text_edit.setPlainText("Great screen, but the battery died in a week.")
    classify.classify()
    wait_until(lambda: classify.result is not None)
    save(window, "classify-tab.png")


def fill_mask_shot(window, steps: int) -> None:
    """baby-bert-char trained from the form, then the Generate tab filling in the blanks of a line of the corpus."""
    tab, form = window.train_tab, window.train_tab.form
    form.preset.setCurrentIndex(form.preset.findText("baby-bert-char"))
    # few evaluations: each reads the whole validation split (the preset's choice), long on a CPU
    set_fields(form, {"train.max_steps": steps, "train.eval_interval": max(steps // 2, 10)})
    tab.start_button.click()
    wait_until(lambda: not tab.is_training())
    run = tab.plots.pinned
    print(f"trained {run.name}", flush=True)

    window.runs_browser.refresh()
    window.runs_browser.select_run(run)
    window.tabs.setCurrentIndex(next(i for i in range(window.tabs.count()) if window.tabs.tabText(i) == "Generate"))
    view = window.generate_tab.fill_view
    wait_until(view.fill_button.isEnabled)
    view.editor.setPlainText("First Citizen:\nBefore we proceed any further, hear me speak.")
    for chip in (47, 42, 27, 11):  # from the end, so that each mask leaves the chips before it where they were
        view.toggle(chip)
    view.request_fill()
    wait_until(lambda: view.results_text == view.text())
    save(window, "generate-fill-mask.png")


if __name__ == "__main__":
    main()
