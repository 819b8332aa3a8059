"""The Attention tab's worker: loads a run's checkpoint and captures attention (or saliency) off the GUI thread,
and reads the snapshots a training run writes for its live probe.

The worker lives on its own thread (background.py); the tab calls its slots through queued signals and hears
back through its signals. Every request carries an id the answer repeats, so the tab can drop answers to
requests it has since replaced. An answer comes with what the views would otherwise compute on the GUI thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from lmcore.attention import AttentionSnapshot, capture, load_snapshot
from lmcore.checkpoint import load_trained_model, resolve_checkpoint

from .heatmap import Mosaic, grid_mosaic
from ..common.background import report_errors


@dataclass
class Capture:
    """The worker's answer: a snapshot and the model view's picture of it (None for saliency, which has no grid)."""
    snapshot: AttentionSnapshot
    source: str  # where it comes from, for the header
    mosaic: Mosaic | None


def prepared(snapshot: AttentionSnapshot, source: str) -> Capture:
    """The answer to send: the model view's picture is made here, since colouring every layer × head map is too
    much for the GUI thread."""
    mosaic = grid_mosaic(snapshot.weights, snapshot.causal) if snapshot.kind == "attention" else None
    return Capture(snapshot, source, mosaic)


class AttentionWorker(QObject):
    captured = Signal(int, object)  # request id, Capture
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
            self.captured.emit(request_id, prepared(snapshot, f"{which} checkpoint, step {snapshot.step}"))
        report_errors(work, lambda message: self.failed.emit(request_id, message))

    @Slot(int, object)
    def load_snapshot(self, request_id: int, path: Path) -> None:
        """Read a snapshot a training run wrote (the .npy weights beside their .json tokens)."""
        def work():
            snapshot = load_snapshot(path)
            self.captured.emit(request_id, prepared(snapshot, f"live, step {snapshot.step}"))
        report_errors(work, lambda message: self.failed.emit(request_id, message))

    def _model(self, run_dir: Path, which: str):
        """The checkpoint, loaded once and again only when the file changes (a run still training saves anew)."""
        path = resolve_checkpoint(run_dir, which)
        key = (path, path.stat().st_mtime_ns)
        if self._loaded is None or self._loaded[0] != key:
            self._loaded = (key, load_trained_model(path, device="cpu"))
        return self._loaded[1]
