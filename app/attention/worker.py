"""The Attention tab's worker: loads a run's checkpoint and captures attention (or saliency) off the GUI thread,
and reads the snapshots a training run writes for its live probe.

The worker lives on its own thread (background.py); the tab calls its slots through queued signals and hears
back through its signals. Every request carries an id the answer repeats, so the tab can drop answers to
requests it has since replaced.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from lmcore.attention import capture, load_snapshot
from lmcore.checkpoint import load_trained_model, resolve_checkpoint

from ..common.background import report_errors


class AttentionWorker(QObject):
    captured = Signal(int, object, str)  # request id, AttentionSnapshot, where it comes from (for the header)
    failed = Signal(int, str)  # request id, a message for the user

    def __init__(self):
        super().__init__()
        self._loaded: tuple[tuple[Path, int], tuple] | None = None  # (path, mtime), (model, tokenizer, meta)

    @Slot(int, object, str, str)
    def capture(self, request_id: int, run_dir: Path, which: str, text: str) -> None:
        """Capture `text` with the run's `which` checkpoint ("best" falls back to "last")."""
        def work():
            model, tokenizer, meta = self._model(run_dir, which)
            snapshot = capture(model, tokenizer, text, step=meta.get("step"))
            self.captured.emit(request_id, snapshot, f"{which} checkpoint, step {snapshot.step}")
        report_errors(work, lambda message: self.failed.emit(request_id, message))

    @Slot(int, object)
    def load_snapshot(self, request_id: int, path: Path) -> None:
        """Read a snapshot a training run wrote (the .npy weights beside their .json tokens)."""
        def work():
            snapshot = load_snapshot(path)
            self.captured.emit(request_id, snapshot, f"live, step {snapshot.step}")
        report_errors(work, lambda message: self.failed.emit(request_id, message))

    def _model(self, run_dir: Path, which: str):
        """The checkpoint, loaded once and again only when the file changes (a run still training saves anew)."""
        path = resolve_checkpoint(run_dir, which)
        key = (path, path.stat().st_mtime_ns)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = (key, load_trained_model(path, device="cpu"))
        return self._loaded[1]
