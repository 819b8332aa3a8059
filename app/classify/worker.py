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
    labels: list[str]
    description: str  # one line on the model and where it runs


@dataclass
class Classification:
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
            self.loaded.emit(request_id, summarize(self.classifier, self.device))
        report_errors(work, lambda message: self.failed.emit(request_id, message))

    @Slot(int, str, int)
    def classify(self, request_id: int, text: str, label: int) -> None:
        """Classify `text` and explain class `label` (-1: the predicted one)."""
        def work():
            if self.classifier is None:
                raise LMCoreError("No classifier is loaded; pick a classifier run in the runs list first.")
            explanation = self.classifier.explain(text, None if label < 0 else label)
            unread = len(self.classifier.tokenizer.encode(text, unknown="replace")) - len(explanation.tokens)
            self.classified.emit(request_id, Classification(explanation.probabilities, explanation, unread))
        report_errors(work, lambda message: self.failed.emit(request_id, message))


def summarize(classifier: Classifier, device) -> ClassifierSummary:
    model, tokenizer = classifier.model, classifier.tokenizer
    millions = model.num_parameters() / 1e6
    description = (f"{len(classifier.labels)} classes · {millions:.2f} M parameters · {tokenizer.kind} tokenizer · "
                   f"on {describe_device(device)}")
    return ClassifierSummary(list(classifier.labels), description)
