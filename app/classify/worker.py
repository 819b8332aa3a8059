"""The Classify tab's worker: loads a classifier run and classifies and explains texts off the GUI thread.

The worker lives on its own thread (background.py); the tab calls its slots through queued signals and hears back
through its signals. Every request carries an id its answer repeats, so the tab drops answers to requests it has
since replaced (another run picked, another text classified).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from lmcore.classify import Classifier, Explanation
from lmcore.device import describe_device, pick_device
from lmcore.errors import LMCoreError

from ..common.background import report_errors


@dataclass
class ClassifierSummary:
    run_dir: Path
    labels: list[str]
    description: str  # one line on the model and where it runs


@dataclass
class Classification:
    text: str
    probabilities: list[float]  # Classifier.probabilities: one per label, in label order
    explanation: Explanation  # the tokens' integrated-gradients scores for explanation.label
    unread: int  # the text's tokens past the most the classifier reads (cut off, as in training)


class ClassifyWorker(QObject):
    loaded = Signal(int, object)  # request id, ClassifierSummary
    classified = Signal(int, object)  # request id, Classification
    failed = Signal(int, str)  # request id, a message for the user

    def __init__(self):
        super().__init__()
        self.device = pick_device("auto")
        self.classifier: Classifier | None = None

    @Slot(int, object)
    def load(self, request_id: int, run_dir: Path) -> None:
        self.classifier = None

        def work():
            self.classifier = Classifier.load(run_dir, device=str(self.device))
            self.loaded.emit(request_id, summarize(self.classifier, run_dir, self.device))
        report_errors(work, lambda message: self.failed.emit(request_id, message))

    @Slot(int, str, int)
    def classify(self, request_id: int, text: str, label: int) -> None:
        """Classify `text` and explain class `label` (-1: the predicted one)."""
        def work():
            if self.classifier is None:
                raise LMCoreError("No classifier is loaded; pick a classifier run in the runs list first.")
            classifier = self.classifier
            probabilities = classifier.probabilities([text])[0]
            explanation = classifier.explain(text, None if label < 0 else label)
            framing = 2 if classifier.model.body.family == "encoder" else 0  # [CLS] and [SEP]
            unread = len(classifier.tokenizer.encode(text, unknown="replace")) - (len(classifier.encode(text)) - framing)
            self.classified.emit(request_id, Classification(text, probabilities, explanation, unread))
        report_errors(work, lambda message: self.failed.emit(request_id, message))


def summarize(classifier: Classifier, run_dir: Path, device) -> ClassifierSummary:
    model, tokenizer = classifier.model, classifier.tokenizer
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    description = (f"{len(classifier.labels)} classes · {millions:.2f} M parameters · {tokenizer.kind} tokenizer · "
                   f"on {describe_device(device)}")
    return ClassifierSummary(run_dir, list(classifier.labels), description)
