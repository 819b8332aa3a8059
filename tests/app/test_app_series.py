"""The plots' data model (app/train/series.py) without a widget: runs' columns, what is stale, their bounds; and the
crosshair's reading of it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmcore import events as ev
from lmcore.config import config_from_dict, config_to_dict
from lmcore.runs import RunFolder

from app.train.series import CURVES, DETAIL_CURVES, STEP_CURVES, RunSeries, ShownRuns, load_series, metric_events
from app_helpers import fake_metrics, make_run

ROOT = Path(__file__).resolve().parents[2]
EVERY_CURVE = frozenset(CURVES)


def steps(first: int, count: int, loss: float = 2.0):
    return [ev.StepMetrics(i, 100 * i, loss + i % 2, 1e-3, 0.5, 900.0, 0.1 * i) for i in range(first, first + count)]


def evaluation(step: int, val_loss: float):
    return ev.EvalMetrics(step, 100 * step, 0.1 * step, val_loss, 10.0, None, True)


def taken(runs: ShownRuns, due=EVERY_CURVE) -> dict[Path, dict[str, bool]]:
    return {path: dict(changed) for path, _, changed in runs.take_stale(due)}


def test_the_data_model_imports_no_qt():
    code = ("import sys\nimport app.train.series\n"
            "print([m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_shown_run_is_drawn_afresh_once_then_only_its_new_points():
    runs, a = ShownRuns(), Path("runs/a")
    runs.show(a, steps(1, 5) + [evaluation(5, 2.5)])
    assert list(runs) == [a] and runs[a].steps.size == 5 and runs[a].evals.size == 1
    assert taken(runs) == {a: dict.fromkeys(CURVES, False)}  # all drawn afresh
    assert taken(runs) == {}  # drawn: nothing stale
    runs.add_steps(a, steps(6, 3))
    assert taken(runs) == {a: dict.fromkeys(STEP_CURVES, True)}  # only grown; not the validation markers
    runs.add_evals(a, [evaluation(8, 2.4)])
    assert taken(runs) == {a: {"val_loss": True, "val_accuracy": True}}  # the evaluations' curves


def test_curves_not_due_stay_stale_until_a_refresh_that_draws_them():
    runs, a = ShownRuns(), Path("runs/a")
    runs.show(a, [])
    taken(runs)
    runs.add_steps(a, steps(1, 3))
    loss_only = EVERY_CURVE - set(DETAIL_CURVES)
    loss = {"raw_loss": True, "smoothed_loss": True, "text_loss": True, "teacher_loss": True}  # parts: if any
    assert taken(runs, loss_only) == {a: loss}
    runs.add_steps(a, steps(4, 3))
    runs.mark_all_stale(curves=("lr",))  # e.g. a zoom in on the learning rate's plot
    assert taken(runs) == {a: {**loss, "lr": False, "grad_norm": True, "tokens_per_s": True}}


def test_runs_keep_the_order_they_were_shown_in_and_a_removed_run_is_forgotten():
    runs = ShownRuns()
    a, b = Path("runs/a"), Path("runs/b")
    runs.show(b, steps(1, 2))
    runs.show(a, steps(1, 2))
    runs.show(b, steps(1, 4))  # shown again: in its place
    assert list(runs) == [b, a] and runs[b].steps.size == 4
    assert list(taken(runs)) == [b, a]
    runs.remove(b)
    runs.remove(Path("runs/never-shown"))
    assert list(runs) == [a] and b not in runs and taken(runs) == {}


def test_new_smoothing_smooths_every_run_again_and_applies_to_runs_shown_later():
    runs, a = ShownRuns(smoothing=0.6), Path("runs/a")
    runs.show(a, steps(1, 10))
    taken(runs)
    runs.set_smoothing(0.0)
    assert np.allclose(runs[a].smoothed.values["loss"], runs[a].steps["loss"])  # 0: the raw loss
    assert taken(runs) == {a: dict.fromkeys(CURVES, False)}
    runs.show(Path("runs/b"), steps(1, 3))
    assert runs[Path("runs/b")].smoothed.weight == 0.0


def test_bounds_cover_every_run_on_the_chosen_x_axis_and_a_log_axis_skips_values_below_zero():
    runs = ShownRuns()
    runs.show(Path("runs/a"), steps(1, 10, loss=2.0))  # losses 2 and 3
    runs.show(Path("runs/b"), steps(5, 20, loss=-0.5) + [evaluation(24, 4.0)])  # -0.5 and 0.5
    assert runs.bounds(("raw_loss",), "step") == (1, 24, -0.5, 3.0)
    assert runs.bounds(("raw_loss", "val_loss"), "tokens") == (100, 2400, -0.5, 4.0)
    assert runs.bounds(("raw_loss",), "step", log_y=True) == pytest.approx((1, 24, np.log10(0.5), np.log10(3.0)))
    assert ShownRuns().bounds(CURVES, "step") is None
    empty = ShownRuns()
    empty.show(Path("runs/c"), [])
    assert empty.bounds(("raw_loss",), "step") is None


def test_a_run_is_loaded_from_its_metrics_file(tmp_path):
    run = make_run(tmp_path, "gpt", "finished", metrics=fake_metrics(30, eval_every=10))
    runs = ShownRuns()
    runs.load(run)
    assert runs[run].name == run.name and runs[run].steps.size == 30 and list(runs[run].evals["step"]) == [10, 20, 30]
    assert taken(runs) == {run: dict.fromkeys(CURVES, False)}


def test_each_curve_takes_its_points_from_its_columns():
    series = RunSeries.from_events("a", steps(1, 4) + [evaluation(4, 2.2)], smoothing=0.5)
    sources = series.sources()
    assert set(sources) == set(CURVES)
    x_columns, y_columns, field = sources["smoothed_loss"]
    assert list(x_columns["tokens"]) == [100, 200, 300, 400] and y_columns is series.smoothed.values
    x_columns, y_columns, field = sources["val_loss"]
    assert list(x_columns["elapsed"]) == pytest.approx([0.4]) and list(y_columns[field]) == [2.2]


def test_the_crosshair_reads_each_run_at_the_step_nearest_to_x():
    from app.train.plot_readout import nearest, values_at
    from app.train.plots import CURVE_PLOTS

    assert tuple(CURVE_PLOTS) == CURVES  # the plots draw every curve of the model, in its order
    runs = ShownRuns(smoothing=0.0)
    a, b, c = Path("runs/a"), Path("runs/<b>"), Path("runs/c")
    runs.show(a, steps(1, 10) + [evaluation(4, 2.25), evaluation(8, 2.125)])
    runs.show(b, steps(20, 5))
    runs.show(c, [])  # no steps yet: not read
    pieces = values_at(6.4, "step", runs, {a: "#111111", b: "#222222", c: "#333333"})
    assert pieces[0] == "Step 6"
    assert pieces[1].startswith("<span style='color:#111111'>■</span> ")
    assert pieces[1].endswith(": loss 2.000 (smoothed 2.000), lr 1.00e-03, val 2.125")  # step 6, eval at step 8
    assert "&lt;b&gt;" in pieces[2] and "loss 2.000" in pieces[2]  # the nearest is its first step, 20
    assert len(pieces) == 3
    assert [nearest(np.array([1.0, 2.0, 4.0]), x) for x in (0, 1.4, 1.6, 3.5, 9)] == [0, 0, 1, 2, 2]


def evaluation_in_bits(step: int, val_loss: float, bits: float | None):
    return ev.EvalMetrics(step, 100 * step, 0.1 * step, val_loss, 10.0, bits, True)


def test_the_validation_curve_can_show_bits_per_character_where_an_evaluation_has_them():
    runs, a = ShownRuns(), Path("runs/a")
    runs.show(a, steps(1, 30) + [evaluation_in_bits(10, 2.0, None), evaluation_in_bits(20, 1.8, 2.6),
                                 evaluation_in_bits(30, 1.7, 2.45)])
    taken(runs)
    assert runs.bounds(("val_loss",), "step") == (10, 30, 1.7, 2.0)
    runs.set_val_field("val_bits_per_char")
    assert taken(runs) == {a: {"val_loss": False}}  # the validation curve alone is drawn afresh
    x_columns, y_columns, field = runs[a].sources(runs.val_field)["val_loss"]
    assert field == "val_bits_per_char" and np.isnan(y_columns[field][0]) and list(y_columns[field][1:]) == [2.6, 2.45]
    assert runs.bounds(("val_loss",), "step") == (10, 30, 2.45, 2.6)  # the missing value counts for nothing
    assert runs[a].evals_without("val_bits_per_char") == 1 and runs[a].evals_without("val_loss") == 0


def test_tokenizers_differ_only_between_known_tokenizers_of_other_pieces(tmp_path):
    from app.train.series import tokenizer_of

    def run(name, **tokenizer):
        config = config_from_dict({**config_to_dict(config_from_dict({})), "name": name, "tokenizer": tokenizer})
        folder = RunFolder.create(tmp_path, name)
        folder.save_config(config)
        return folder.path

    char, word = run("c", kind="char"), run("w", kind="word", lowercase=True)
    small, large = (run(f"s{n}", kind="sentencepiece", vocab_size=n) for n in (1000, 4000))
    assert [tokenizer_of(p) for p in (char, word, small)] == ["char", "word", "sentencepiece bpe 1000"]
    assert tokenizer_of(tmp_path / "not-a-run") is None

    runs = ShownRuns()
    for path in (char, tmp_path / "not-a-run"):
        runs.put(path, load_series(path))
    assert not runs.tokenizers_differ()  # an unknown tokenizer differs from none
    runs.put(word, load_series(word))
    assert runs.tokenizers_differ()
    runs.remove(word)
    runs.put(small, load_series(small))
    runs.remove(char)
    runs.put(large, load_series(large))
    assert runs.tokenizers_differ()  # subwords of another vocabulary are other pieces
    runs.set_tokenizer(large, "sentencepiece bpe 1000")
    assert not runs.tokenizers_differ()


def test_a_metrics_file_is_read_one_event_at_a_time_and_what_cannot_be_read_is_skipped(tmp_path):
    run = make_run(tmp_path, "gpt", "finished", metrics=fake_metrics(3, eval_every=3))
    metrics = RunFolder(run).metrics_path
    lines = metrics.read_text(encoding="utf-8").splitlines()
    torn = '{"kind": "step", "step": 4, "tok'
    metrics.write_text("\n".join([lines[0], "{garbled", "", *lines[1:]]) + "\n" + torn, encoding="utf-8")
    with pytest.warns(UserWarning, match="line 2: not a metrics record"):
        events = list(metric_events(metrics))
    assert [(type(e).__name__, e.step) for e in events] == [("StepMetrics", 1), ("StepMetrics", 2),
                                                           ("StepMetrics", 3), ("EvalMetrics", 3)]
    assert list(metric_events(tmp_path / "none.jsonl")) == []
    with pytest.warns(UserWarning, match="line 2"):
        series = load_series(run, smoothing=0.0)
    assert series.steps.size == 3 and series.evals.size == 1 and series.tokenizer == "char"
    assert series.smoothed.weight == 0.0
    assert load_series(run, metrics=False).steps.size == 0


def test_a_series_read_with_other_smoothing_is_smoothed_again_when_shown(tmp_path):
    run = make_run(tmp_path, "gpt", "finished", metrics=fake_metrics(30))
    runs = ShownRuns(smoothing=0.0)
    runs.put(run, load_series(run, smoothing=0.9))  # the slider moved while it was read
    assert np.allclose(runs[run].smoothed.values["loss"], runs[run].steps["loss"])


def test_the_crosshair_reads_bits_per_character_where_an_evaluation_has_them():
    from app.train.plot_readout import values_at

    runs, a, b = ShownRuns(), Path("runs/a"), Path("runs/b")
    runs.show(a, steps(1, 10) + [evaluation_in_bits(10, 1.5, 2.164)])
    runs.show(b, steps(1, 10) + [evaluation_in_bits(10, 6.5, None)])
    pieces = values_at(9, "step", runs, {a: "#111111", b: "#222222"})
    assert pieces[1].endswith(", val 1.500 (2.164 bits/char)")
    assert pieces[2].endswith(", val 6.500")  # none rather than nan or 0
