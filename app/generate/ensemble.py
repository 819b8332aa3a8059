"""Ensembles in the Generate tab: the chosen run predicts together with other runs that share its tokenizer
(lmcore.ensemble), for generation, chat and scoring alike.

Ensemble… opens EnsembleDialog, which offers the runs of the chosen run's runs folder that can join (the run itself
included: an ensemble of a run with itself is the run) and the mean that mixes their next-token distributions. The
worker loads the ensemble (load_ensemble, which refuses a run with another tokenizer, naming both) and, when it
scores a text, scores it under each member too: ScoreTable shows each member's loss, perplexity and bits per
character beside the ensemble's.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QHeaderView, QLabel,
                               QListWidget, QListWidgetItem, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from lmcore.checkpoint import checkpoint_meta, model_device, resolve_checkpoint
from lmcore.device import describe_device
from lmcore.ensemble import MEANS, Ensemble
from lmcore.errors import LMCoreError
from lmcore.generation import ScoreResult
from lmcore.runs import list_runs

from ..common.text import run_label
from ..common.widgets import row
from .session import ModelSummary

MEAN_LABELS = dict(zip(MEANS, ("mean of probabilities", "mean of log-probabilities"), strict=True))


def ensemble_candidates(first: Path, fingerprint: str, which: str) -> list[Path]:
    """The runs of `first`'s runs folder that can join its ensemble, newest first: language models that predict
    the next token (no encoder, no classifier), with a checkpoint, whose checkpoint records the tokenizer of
    `fingerprint`. One that records none (written before checkpoints did) is offered: loading checks it."""
    found = []
    for info in list_runs(first.parent):
        try:
            meta = checkpoint_meta(resolve_checkpoint(info.path, which))
        except LMCoreError:  # no checkpoint yet, or a damaged one
            continue
        recorded = meta.get("tokenizer_fingerprint")
        if "classifier" not in meta and meta["model"].get("family") != "encoder" and recorded in (None, fingerprint):
            found.append(info.path)
    return found


def summarize_ensemble(runs: Sequence[Path], which: str, ensemble: Ensemble, tokenizer, metas: list[dict],
                       mean: str) -> ModelSummary:
    millions = sum(p.numel() for p in ensemble.parameters()) / 1e6
    steps = ", ".join(str(meta.get("step", "?")) for meta in metas)
    return ModelSummary(
        run_dir=Path(runs[0]), checkpoint=which, family="ensemble",
        description=(f"Ensemble of {len(runs)} runs ({MEAN_LABELS[mean]}): "
                     f"{', '.join(run_label(Path(run).name) for run in runs)} · {millions:.2f} M parameters"),
        checkpoint_line=f"{which} checkpoints · steps {steps} · on {describe_device(model_device(ensemble))}",
        tokenizer_line=f"{tokenizer.kind} tokenizer · {tokenizer.vocab_size:,} tokens",
        context_length=ensemble.config.context_length, tokenizer=tokenizer, members=list(runs), mean=mean)


def score_rows(summary: ModelSummary, members: list[ScoreResult], result: ScoreResult) -> list[tuple[str, ScoreResult]]:
    """The score table's rows: each member's score, then the ensemble's; none for a single run."""
    if not members:
        return []
    return [*((run_label(run.name), score) for run, score in zip(summary.members, members, strict=True)),
            (f"ensemble ({MEAN_LABELS[summary.mean]})", result)]


class EnsembleDialog(QDialog):
    """Which runs predict together with the chosen one, and how their distributions are mixed."""

    def __init__(self, parent: QWidget, first: Path, candidates: list[Path], chosen: list[Path], mean: str):
        super().__init__(parent)
        self.setWindowTitle("Ensemble")
        self.resize(440, 320)  # room for run names
        intro = QLabel(f"Runs that share the tokenizer of {run_label(first.name)}: tick those that predict with it "
                       "(none: the run alone). Each next token is drawn from their mixed distribution.")
        intro.setWordWrap(True)
        self.runs = QListWidget()
        for run in candidates:
            item = QListWidgetItem(run_label(run.name) + (" (itself)" if run == first else ""))
            item.setData(Qt.ItemDataRole.UserRole, str(run))
            item.setToolTip(str(run))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if run in chosen else Qt.CheckState.Unchecked)
            self.runs.addItem(item)
        self.mean = QComboBox()
        for key, label in MEAN_LABELS.items():
            self.mean.addItem(label.capitalize(), key)
        self.mean.setCurrentIndex(self.mean.findData(mean))
        self.mean.setToolTip("Mean of probabilities: the members' next-token probabilities averaged (its loss is "
                             "never above the members' mean loss). Mean of log-probabilities: their log-probabilities "
                             "averaged and renormalised (a geometric mean: tokens every member finds likely).")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.runs, 1)
        layout.addLayout(row(QLabel("Mix by"), (self.mean, 1)))
        layout.addWidget(buttons)

    def chosen(self) -> list[Path]:
        """The runs ticked, in the order listed."""
        items = [self.runs.item(i) for i in range(self.runs.count())]
        return [Path(item.data(Qt.ItemDataRole.UserRole)) for item in items
                if item.checkState() == Qt.CheckState.Checked]

    def chosen_mean(self) -> str:
        return self.mean.currentData()


class ScoreTable(QTableWidget):
    """Under an ensemble's scored text: each member's loss, perplexity and bits per character, and the ensemble's."""

    HEADERS = ("Run", "Loss", "Perplexity", "Bits/char")

    def __init__(self):
        super().__init__(0, len(self.HEADERS))
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # a long run name is cut, not the figures
        self.setToolTip("The text scored under each member alone, and under the ensemble (its row last); loss in "
                        "nats per token")
        self.hide()

    def show_rows(self, rows: list[tuple[str, ScoreResult]]) -> None:
        """Fill the table with these (label, score) rows, fitting its height to them; none hides it."""
        self.setRowCount(len(rows))
        for i, (label, score) in enumerate(rows):
            cells = (label, f"{score.mean_loss:.4f}", f"{score.perplexity:.3f}", f"{score.bits_per_char:.4f}")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(i, column, item)
        self.setFixedHeight(self.horizontalHeader().height() + sum(self.rowHeight(i) for i in range(len(rows)))
                            + 2 * self.frameWidth())
        self.setVisible(bool(rows))
