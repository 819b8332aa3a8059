"""The status bar shows the live run's MFU next to its tokens/s, from the peak FLOP/s its Started event carries."""
from lmcore import events as ev
from lmcore.config import RunConfig
from lmcore.runs import RunFolder


def test_the_status_bar_shows_mfu_next_to_tokens_per_second(make_window, tmp_path):
    window = make_window()
    tab = window.train_tab
    folder = RunFolder.create(tmp_path / "runs", "mfu")
    folder.save_config(RunConfig())
    tab.speed_changed.emit(20_000.0)
    assert window.speed_label.text() == "20,000 tokens/s"  # no run has said its peak
    tab._on_started(ev.Started(folder.path, "CPU (2 threads)", 1000, 100, 0, 1024, 3e6, 2e11))
    tab.speed_changed.emit(20_000.0)
    assert window.speed_label.text() == "20,000 tokens/s · MFU 30.0%"
    assert window.speed_label.sizeHint().width() <= window.speed_label.width()  # fits its fixed size
    tab._on_started(ev.Started(folder.path, "?", 1000, 100, 0, 1024, 0.0))  # a followed run: FLOPs unknown
    tab.speed_changed.emit(20_000.0)
    assert window.speed_label.text() == "20,000 tokens/s"
