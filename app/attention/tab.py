"""Attention tab: what each head of a Transformer looks at, for a text the user types, sends from the Generate
tab, or watches change while the run trains. An RNN run gets gradient saliency in the same views instead.

The numbers come from lmcore.attention. The tab only draws: its worker (worker.py, on a thread of its own) loads
the run and captures a snapshot, or reads one the training run wrote for the live probe.
"""
from __future__ import annotations

import contextlib
import html
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QLabel, QSizePolicy, QSpinBox, QTabWidget,
                               QVBoxLayout, QWidget)

from lmcore.attention import SALIENCY_WINDOW, AttentionSnapshot, opening_text
from lmcore.errors import LMCoreError
from lmcore.events import AttentionSaved
from lmcore.runs import RunFolder

from .focus import TokenFocusView
from .head_view import HeadView
from .heatmap import Axis, HeatmapView, ModelGridView, Mosaic, future_mask
from .worker import AttentionWorker, Capture
from ..common.background import WorkerOwner, start_in_background
from ..common.style import set_tone
from ..common.text import FAMILY_NAMES
from ..common.widgets import button, row, text_editor

HEATMAP, HEAD, MODEL, FOCUS = range(4)  # the view tabs
VIEWS_MIN_HEIGHT = 240  # px: the views' least height, about their own least (a map's axes, the head view's rows)
SHOW_TIP = "Capture the attention for this text (Ctrl+Enter)"
NO_RUN_TIP = "Select a run in the runs list first: its checkpoint is what this looks inside"
PROBE_TIP = "Send this text to the live probe of the run training in this window (Ctrl+Enter)"
SALIENCY_NOTICE = (
    "<b>{name} has no attention.</b> {reads}, so there are no weights over earlier tokens to show. Shown instead: "
    "<b>gradient saliency</b>: for each position, how strongly each token so far drives the model's prediction "
    "of the next token (‖gradient × input‖ of the log-probability of its top prediction, as a share of the row).")
HOW_IT_READS = {  # family -> (its name, how it reads the text), for SALIENCY_NOTICE
    "rnn": ("An RNN", "It reads the text one token at a time and carries everything it has seen in its hidden state"),
    "mlp": ("An MLP", "It reads the n - 1 tokens before each position side by side, through its hidden layers"),
    "conv": ("A CNN", "Its convolutions mix a fixed window of tokens before each position, layer by layer"),
}


@dataclass
class Request:
    """What the tab last asked its worker for: only the answer to this one is shown."""
    id: int
    live: AttentionSaved | None = None  # the live snapshot being read; None for a capture of the editor's text
    live_run: Path | None = None  # the training run that wrote it


class AttentionTab(WorkerOwner, QWidget):
    # Requests to the worker thread (queued connections: the GUI thread never waits on the model).
    _capture_requested = Signal(int, object, str, str)  # request id, run dir, checkpoint, text
    _snapshot_requested = Signal(int, object)  # request id, path of a snapshot the training run wrote

    def __init__(self, parent=None):
        super().__init__(parent)
        self._run_dir: Path | None = None
        self._run_family = "rnn"  # whose saliency notice to show
        self._snapshot: AttentionSnapshot | None = None
        self._mosaic: Mosaic | None = None  # the model view's picture of the snapshot, made by the worker
        self._source = ""  # where the snapshot came from, for the header
        self._focus: int | None = None  # the query position of the Token focus view
        self._pending_capture = False  # set_run while hidden: capture when shown
        self._request_ids = itertools.count(1)
        self._request: Request | None = None  # awaiting the worker's answer
        self._training = None  # the training worker followed by the live probe
        self._probe: tuple[str, int] | None = None  # (text, every) last sent to it
        self._build()
        self._start_worker()
        self.set_run(None)

    # ---- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        self.run_label = QLabel()
        self.run_label.setTextFormat(Qt.TextFormat.RichText)
        self.run_label.setWordWrap(True)  # a long run name and source wrap, rather than widening the tab
        self.checkpoint = QComboBox()
        self.checkpoint.addItems(["best", "last"])
        self.checkpoint.setToolTip("Which checkpoint of the run to look inside")
        self.checkpoint.currentTextChanged.connect(lambda _: self.capture_text())
        header = row((self.run_label, 1), QLabel("Checkpoint"), self.checkpoint)

        self.editor = text_editor("Type or paste a text, or send a prompt and its output from the Generate tab.", 84)
        self.show_button = button("Show attention", self._on_show_clicked, name="primary", tooltip=SHOW_TIP)
        self.show_button.setDefault(True)
        QShortcut(QKeySequence("Ctrl+Return"), self.editor, activated=self._on_show_clicked)
        text_row = row((self.editor, 1), (self.show_button, 0, Qt.AlignmentFlag.AlignTop))

        self.live = QCheckBox("Live while training: refresh every")
        self.live.setToolTip("While a run trains in this window, the training process captures this text with "
                             "the model being trained every N steps, so you can watch the heads form.")
        self.live.toggled.connect(self._sync_probe)
        self.every = QSpinBox(minimum=1, maximum=100_000, value=20, suffix=" steps")
        self.every.valueChanged.connect(self._sync_probe)
        self.live_status = QLabel()
        self.live_status.setWordWrap(True)  # "could not read the snapshot of step …" must not widen the tab
        live_row = row(self.live, self.every, (self.live_status, 1))

        self.notice = QLabel(objectName="banner")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.RichText)

        self.layer = QComboBox(sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.head = QComboBox(sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.layer.currentIndexChanged.connect(self._render)
        self.head.currentIndexChanged.connect(self._choose_heads)  # before drawing: the head view shows them
        self.head.currentIndexChanged.connect(self._render)
        self.layer_label, self.head_label = QLabel("Layer"), QLabel("Head")
        self.fit = button("Fit", self._fit, tooltip="Zoom out to the whole map")
        self.export_png = button("Export PNG…", self._on_export_png)
        self.export_npy = button("Export weights (.npy)…", self._on_export_npy,
                                 tooltip="All layers and heads as a [layer, head, query, key] float32 array, "
                                         "with the tokens in a .tokens.json beside it")
        controls = row(self.layer_label, self.layer, self.head_label, self.head, 1,
                       self.fit, self.export_png, self.export_npy)

        self.heatmap = HeatmapView()
        self.heatmap.cell_clicked.connect(lambda query, _key: self._set_focus(query))
        self.grid = ModelGridView()
        self.grid.head_clicked.connect(self._open_head)
        self.focus = TokenFocusView()
        self.focus.token_clicked.connect(self._set_focus)
        self.head_view = HeadView()
        self.views = QTabWidget()
        self.views.addTab(self.heatmap, "Heatmap")
        self.views.addTab(self.head_view, "Head view")
        self.views.addTab(self.grid, "Model view")
        self.views.addTab(self.focus, "Token focus")
        self.views.currentChanged.connect(self._render)
        # The views take the height the tab leaves them. Their preferred height (the size of a whole map) made the
        # tab, whose wrapped labels have it laid out by preferred heights, taller than a 700-pixel window.
        self.views.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.views.setMinimumHeight(VIEWS_MIN_HEIGHT)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addLayout(text_row)
        layout.addLayout(live_row)
        layout.addWidget(self.notice)
        layout.addLayout(controls)
        layout.addWidget(self.views, 1)

    # ---- the worker ----------------------------------------------------------------------------
    def _start_worker(self) -> None:
        self.worker = AttentionWorker()
        self._capture_requested.connect(self.worker.capture)
        self._snapshot_requested.connect(self.worker.load_snapshot)
        self.worker.captured.connect(self._on_captured)
        self.worker.failed.connect(self._on_failed)
        self._thread = start_in_background(self.worker, "attention-worker")

    def is_busy(self) -> bool:
        """Whether an answer from the worker is still to come."""
        return self._request is not None

    def _send(self, live: AttentionSaved | None = None, live_run: Path | None = None) -> int:
        """Start a request, making any earlier one stale; returns its id."""
        self._request = Request(next(self._request_ids), live, live_run)
        return self._request.id

    # ---- the main window's contract ------------------------------------------------------------
    def set_run(self, run_dir: Path | None) -> None:
        """Show the run the user picked in the runs browser (None: no run selected)."""
        self._run_dir = Path(run_dir) if run_dir else None
        self._request = None  # an answer about the previous run is stale
        self._show_notes()  # no longer "Capturing…"
        self._sync_show_button()
        if self._run_dir is None:
            self.run_label.setText("<b>No run selected.</b> Pick a run in the runs browser.")
            self._set_family("transformer")
            self._show_snapshot(None)
            return
        try:
            family = RunFolder(self._run_dir).load_config().family
        except LMCoreError as exc:
            self._fail(str(exc))
            return
        self._run_family = family if family in HOW_IT_READS else "rnn"
        self.run_label.setText(f"<b>{html.escape(self._run_dir.name)}</b> · {FAMILY_NAMES.get(family, family)}")
        self._set_family(family)
        if not self.editor.toPlainText():
            self.editor.setPlainText(opening_text(self._run_dir))
        self._pending_capture = True
        if self.isVisible():
            self.capture_text()

    def show_text(self, text: str) -> None:
        """Look at `text` (the Generate tab sends its prompt and output here)."""
        self.editor.setPlainText(text)
        self._on_show_clicked()

    def attach_worker(self, worker) -> None:
        """Follow a training worker (None when its run ends): the live probe runs in its training process, which
        writes a snapshot every N steps and announces it with `attention_saved`."""
        if self._training is not None:
            with contextlib.suppress(RuntimeError, TypeError):  # the old worker may be gone already
                self._training.attention_saved.disconnect(self._on_attention_saved)
        self._training = worker
        was_live, self._probe = self._probe is not None, None  # a new worker has no probe yet
        if worker is not None:
            worker.attention_saved.connect(self._on_attention_saved)
        self._sync_probe()
        if worker is None and was_live and self._snapshot is not None:
            self.live_status.setText(f"training ended; showing step {self._snapshot.step}")

    # ---- capturing -----------------------------------------------------------------------------
    def capture_text(self) -> None:
        """Ask the worker to capture the editor's text with the selected run's checkpoint; shown when it answers."""
        self._pending_capture = False
        text = self.editor.toPlainText()
        if self._run_dir is None or not text:
            return
        request_id = self._send()
        self._say("Capturing…")  # the snapshot shown stays until the new one comes
        self._capture_requested.emit(request_id, self._run_dir, self.checkpoint.currentText(), text)

    def _sync_show_button(self) -> None:
        """Show needs a run to capture with, or a live probe to send the text to; without either it says so."""
        probing = self.live.isChecked() and self._training is not None
        self.show_button.setEnabled(self._run_dir is not None or probing)
        self.show_button.setToolTip(SHOW_TIP if self._run_dir else PROBE_TIP if probing else NO_RUN_TIP)

    def _on_show_clicked(self) -> None:
        if not self.show_button.isEnabled():  # the shortcut, or the Generate tab's text, comes all the same
            self._say(f"<b>No run selected.</b> {NO_RUN_TIP}.", "warning")
        self.capture_text()
        self._sync_probe()  # a live probe follows the new text

    def _on_captured(self, request_id: int, answer: Capture) -> None:
        request = self._answered(request_id)
        if request is None:
            return
        snapshot = answer.snapshot
        if request.live is not None:
            snapshot.run_dir = request.live_run
            self.live_status.setText(f"refreshed at step {snapshot.step} ({snapshot.run_dir.name})")
        self._source, self._mosaic = answer.source, answer.mosaic
        self._show_snapshot(snapshot)

    def _on_failed(self, request_id: int, message: str) -> None:
        request = self._answered(request_id)
        if request is None:
            return
        if request.live is None:
            self._fail(message)
            return
        # Keep showing the last one: training goes on and the next snapshot will come. Usually the file was
        # rotated away already; the message, with its long path, would only widen the tab.
        self.live_status.setText(f"could not read the snapshot of step {request.live.step}; waiting for the next one")
        self._show_notes()

    def _answered(self, request_id: int) -> Request | None:
        """The request this answers, or None when the tab has asked for something else since."""
        request = self._request
        if request is None or request.id != request_id:
            return None
        self._request = None
        return request

    # ---- live probe ----------------------------------------------------------------------------
    def _sync_probe(self) -> None:
        """Make the training process's probe match the controls: send the text and interval when they change,
        turn it off when Live is unticked."""
        self._sync_show_button()
        text = self.editor.toPlainText()
        wanted = (text, self.every.value()) if self.live.isChecked() and text else None
        if self._training is not None and wanted != self._probe:
            if wanted:
                self._training.set_probe(*wanted)
                self.live_status.setText("waiting for the next refresh…")
            else:
                self._training.clear_probe()
            self._probe = wanted
        if not self.live.isChecked():
            self.live_status.setText("")
        elif self._training is None:
            self.live_status.setText("starts when a run trains in this window")
        elif not text:
            self.live_status.setText("type a probe text first")

    def _on_attention_saved(self, event: AttentionSaved) -> None:
        if self.live.isChecked() and self._training is not None:  # not an event still queued from a detached worker
            # the run folder is known: Launched comes before any snapshot
            self._snapshot_requested.emit(self._send(event, self._training.run_dir), event.path)

    # ---- showing -------------------------------------------------------------------------------
    def _set_family(self, family: str) -> None:
        attention = family in ("transformer", "encoder")
        self.show_button.setText("Show attention" if attention else "Show saliency")
        if not attention and self.views.currentIndex() in (HEAD, MODEL):
            self.views.setCurrentIndex(HEATMAP)  # else disabling it would open the next tab along
        for view, what in ((HEAD, "heads"), (MODEL, "layers × heads")):
            self.views.setTabEnabled(view, attention)
            self.views.setTabToolTip(view, "" if attention else f"This model has no {what} of attention to show")
        for widget in (self.layer_label, self.layer, self.head_label, self.head):
            widget.setVisible(attention)

    def _show_snapshot(self, snapshot: AttentionSnapshot | None) -> None:
        self._snapshot = snapshot
        for widget in (self.export_png, self.export_npy, self.fit):
            widget.setEnabled(snapshot is not None)
        self._show_notes()
        if snapshot is None:
            self.heatmap.clear()
            self.grid.clear()
            self.focus.clear()
            self.head_view.clear()
            return
        n_layer, n_head, T, _ = snapshot.weights.shape
        self._set_family("transformer" if snapshot.kind == "attention" else "rnn")
        _fill_combo(self.layer, [f"layer {i + 1}" for i in range(n_layer)], n_layer - 1)
        _fill_combo(self.head, ["mean over heads"] + [f"head {i + 1}" for i in range(n_head)], 0)
        if self.head_view.n_heads != n_head:
            self._choose_heads()
        if self._focus is None or self._focus >= T:
            self._focus = T - 1
        self._render()

    def _show_notes(self) -> None:
        """What the reader needs to know about the snapshot shown: an RNN's saliency, a text cut to fit."""
        snapshot, notes = self._snapshot, []
        if snapshot is not None and snapshot.kind == "saliency":
            name, reads = HOW_IT_READS[self._run_family]
            notes.append(SALIENCY_NOTICE.format(name=name, reads=reads))
        if snapshot is not None and snapshot.dropped:
            T = len(snapshot.tokens)
            window = (f"the model's context is {T} tokens" if snapshot.kind == "attention"
                      else f"saliency is limited to {SALIENCY_WINDOW} tokens")
            notes.append(f"Showing the last {T} of {T + snapshot.dropped} tokens: {window}.")
        self._say("<br>".join(notes), "info")

    def _render(self) -> None:
        """Draw the snapshot in the visible view only: the others are drawn when they are opened."""
        snapshot = self._snapshot
        if snapshot is None or self.layer.count() == 0:
            return
        name = Path(snapshot.run_dir).name if snapshot.run_dir else self._run_dir.name
        self.run_label.setText(f"<b>{html.escape(name)}</b> · {self._describe_model(snapshot)} · {self._source}")
        view = self.views.currentIndex()
        # the grid shows every layer and head; the focus view every layer; only the maps zoom
        self.layer.setEnabled(view in (HEATMAP, HEAD))
        self.head.setEnabled(view != MODEL)
        self.fit.setEnabled(view in (HEATMAP, FOCUS))
        tokens = snapshot.tokens
        if view == MODEL:
            self.grid.show_mosaic(self._mosaic)
        elif view == HEAD:
            self.head_view.show_layer(snapshot.weights[self.layer.currentIndex()], tokens, causal=snapshot.causal)
        elif view == HEATMAP:
            if snapshot.kind == "attention":
                rows, columns = Axis("query", tokens), Axis("key", tokens)
            else:
                rows = Axis("prediction at", tokens, notes=[f"predicts “{p}”" for p in snapshot.predicted])
                columns = Axis("input token", tokens)
            self.heatmap.show_matrix(self._head_weights()[self.layer.currentIndex()], rows, columns,
                                     mask=future_mask(len(tokens)) if snapshot.causal else None, title=self._title(),
                                     value_name=self._value_name())
        else:
            q = self._focus
            matrix = self._head_weights()[:, q, :q + 1 if snapshot.causal else None]  # an encoder's: every key
            if snapshot.kind == "attention":
                rows, wording = [f"layer {i + 1}" for i in range(len(matrix))], ("layer", "key", "attends most to")
            else:
                rows, wording = ["saliency"], ("", "input token", "predicts the next token mostly from")
            row_title, column_title, verb = wording
            self.focus.show_focus(tokens, q, matrix, rows, row_title=row_title, column_title=column_title,
                                  value_name=self._value_name(), title=self._title(all_layers=True), verb=verb)

    def _choose_heads(self) -> None:
        """The head view overlays the head chosen in the combo, or every head for the mean."""
        n_head, chosen = max(self.head.count() - 1, 0), self.head.currentIndex() - 1
        self.head_view.check_heads(range(n_head) if chosen < 0 else [chosen], n_head)

    def _head_weights(self) -> np.ndarray:
        """[L, T, T]: the chosen head of every layer, or the mean over heads."""
        weights = self._snapshot.weights
        head = self.head.currentIndex() - 1  # item 0 is "mean over heads"
        return weights.mean(axis=1) if head < 0 else weights[:, head]

    def _title(self, all_layers: bool = False) -> str:
        if self._snapshot.kind == "saliency":
            return "Gradient saliency of the next-token prediction"
        head = self.head.currentText() if self.head.currentIndex() else f"mean over {self.head.count() - 1} heads"
        return f"{'All layers' if all_layers else self.layer.currentText().capitalize()} · {head}"

    def _value_name(self) -> str:
        return "attention weight" if self._snapshot.kind == "attention" else "saliency (share of row)"

    def _describe_model(self, snapshot: AttentionSnapshot) -> str:
        n_layer, n_head, T, _ = snapshot.weights.shape
        if snapshot.kind == "saliency":
            return f"{FAMILY_NAMES[self._run_family]}, saliency over {T} tokens"
        both_ways = "" if snapshot.causal else " (an encoder: each attends to all, later ones too)"
        return f"{n_layer} layers × {n_head} heads, {T} tokens{both_ways}"

    def _set_focus(self, position: int) -> None:
        self._focus = position
        if self.views.currentIndex() == FOCUS:
            self._render()

    def _open_head(self, layer: int, head: int) -> None:
        self.layer.setCurrentIndex(layer)
        self.head.setCurrentIndex(head + 1)
        self.views.setCurrentIndex(HEATMAP)

    def _fit(self) -> None:
        view = self.views.currentWidget()
        (self.focus.heatmap if view is self.focus else self.heatmap).reset_zoom()

    def _say(self, text: str, tone: str = "info") -> None:
        self.notice.setText(text)
        set_tone(self.notice, tone)
        self.notice.setVisible(bool(text))

    def _fail(self, message: str) -> None:
        self._show_snapshot(None)
        self._say(f"<b>Nothing to show.</b> {html.escape(message)}", "error")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._pending_capture:
            self.capture_text()

    # ---- export --------------------------------------------------------------------------------
    def _on_export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the heatmap", "attention.png", "PNG image (*.png)")
        self._export(self.export_png_to, path)

    def _on_export_npy(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the weights", "attention.npy", "NumPy array (*.npy)")
        self._export(self.export_npy_to, path)

    def _export(self, write, path: str) -> None:
        if not path:
            return
        try:
            write(Path(path))
        except OSError as exc:
            self._say(f"<b>Could not export.</b> {html.escape(str(exc))}; choose another folder.", "error")

    def export_png_to(self, path: Path) -> None:
        """The current view as it is drawn."""
        view = self.views.currentWidget()
        (view.heatmap if view is self.focus else view).save_png(path)

    def export_npy_to(self, path: Path) -> None:
        """Every layer and head, [L, H, T, T] float32, and the tokens beside it in <name>.tokens.json."""
        snapshot = self._snapshot
        np.save(path, snapshot.weights)
        meta = {"tokens": snapshot.tokens, "kind": snapshot.kind, "step": snapshot.step,
                "axes": ["layer", "head", "query", "key"], "dropped_from_front": snapshot.dropped}
        path.with_suffix(".tokens.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")


def _fill_combo(combo: QComboBox, items: list[str], default: int) -> None:
    """Replace the items, keeping the current choice when it still exists, without a signal per change."""
    if [combo.itemText(i) for i in range(combo.count())] == items:
        return
    keep = combo.currentIndex() if 0 <= combo.currentIndex() < len(items) else default
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    combo.setCurrentIndex(keep)
    combo.blockSignals(False)
    combo.setMinimumWidth(combo.minimumSizeHint().width())  # its choices are never cut: the row's stretch gives way
