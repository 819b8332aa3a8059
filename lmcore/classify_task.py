"""What a classifier's run (task = "classify") adds to the Trainer: the labelled data, the classifier around the
body, its batches, its evaluation (accuracy, macro-F1, per-label precision and recall, the confusion matrix), the
best checkpoint by classify.metric, and early stopping. The Trainer delegates to it and keeps its loop.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

from . import events as ev
from .classify import Classifier, classification_report, classifier_logits, encode_text, pad
from .config import RunConfig
from .corpus import CorpusText
from .evaluation import EvalResult
from .fileio import write_atomic
from .labelled import label_ids, load_labelled
from .models import LanguageModel
from .models.classifier import TextClassifier
from .tokenizers import Tokenizer

TEST_REPORT = "test.json"  # in the run folder: classify.test scored with the best checkpoint when the run ends


class LabelledBatches:
    """Shuffled passes over the training texts, a new seeded order each pass; a batch is padded to its longest text.

    As RandomWindows, every rank draws the whole global batch and keeps its block. The state is the generator's at
    the start of the current pass and the position in it, so a resumed run replays the same order."""

    new_sequence = True  # nothing is carried from batch to batch

    def __init__(self, rows: list[list[int]], labels: list[int], batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1):
        self.rows, self.labels = rows, labels
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self._new_pass()

    def _new_pass(self) -> None:
        self.pass_start = self.generator.get_state()
        self.order = torch.randperm(len(self.rows), generator=self.generator).tolist()
        self.position = 0

    def next_batch(self) -> tuple[Tensor, Tensor]:
        picked = []
        for _ in range(self.batch_size * self.world_size):
            if self.position == len(self.order):
                self._new_pass()
            picked.append(self.order[self.position])
            self.position += 1
        mine = picked[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        return pad([self.rows[i] for i in mine]), torch.tensor([self.labels[i] for i in mine])

    def state_dict(self) -> dict:
        return {"generator": self.pass_start, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self._new_pass()
        self.position = state["position"]


class ClassifyTask:
    def __init__(self, config: RunConfig):
        self.settings = c = config.classify
        self.data = load_labelled(config.data, c, config.train.seed)
        train, val = (" \n".join(row.text for row in rows) for rows in (self.data.train, self.data.val))
        digest = hashlib.sha256(json.dumps([train, val, self.data.labels]).encode()).hexdigest()
        # the texts, for the tokenizer (trained on them, or checked against them) and its cache key
        self.corpus = CorpusText(train, val, [], digest)
        self.best_score: float | None = None
        self.evals_since_best = 0

    def build(self, body: LanguageModel, tokenizer: Tokenizer, context: int) -> TextClassifier:
        """The classifier around `body`, and the texts encoded for it (at most `context` tokens, or the body's
        context_length if shorter)."""
        c, data = self.settings, self.data
        model = TextClassifier(body, len(data.labels), c.pooling)
        self.pooling = model.pooling
        self.max_tokens = min(context, getattr(body.config, "context_length", context))
        self.encoded = {name: [encode_text(tokenizer, row.text, body.family, self.max_tokens) for row in rows]
                        for name, rows in (("train", data.train), ("val", data.val))}
        self.train_labels = label_ids(data.train, data.labels)
        self.val_labels = torch.tensor(label_ids(data.val, data.labels))
        if c.freeze_body:
            model.freeze_body()
        model.body_lr_scale = c.body_lr_scale
        if c.class_weights:  # balanced: n / (labels x count), so every label weighs the same in total
            counts = torch.bincount(torch.tensor(self.train_labels), minlength=len(data.labels)).clamp(min=1)
            model.class_weights = len(self.train_labels) / (len(data.labels) * counts.float())
        return model

    @property
    def tokens_per_text(self) -> int:
        """Real tokens in a training text, on average: a batch's padding is not counted as throughput."""
        rows = self.encoded["train"]
        return max(1, round(sum(map(len, rows)) / len(rows)))

    def batches(self, batch_size: int, seed: int, rank: int, world_size: int) -> LabelledBatches:
        return LabelledBatches(self.encoded["train"], self.train_labels, batch_size, seed, rank, world_size)

    def evaluate(self, model: TextClassifier, step: int, device: torch.device,
                 autocast: torch.dtype | None) -> tuple[EvalResult, ev.ClassifyMetrics]:
        """The validation loss and accuracy, and the classifier's metrics. Every rank scores the whole split."""
        report = classification_report(classifier_logits(model, self.encoded["val"], device, autocast),
                                       self.val_labels)
        metrics = ev.ClassifyMetrics(step, report.accuracy, report.macro_f1, list(self.data.labels),
                                     report.precision, report.recall, report.confusion)
        return EvalResult(report.loss, len(self.val_labels), report.accuracy), metrics

    def observe(self, metrics: ev.ClassifyMetrics) -> bool:
        """Whether this evaluation is the best so far by classify.metric (and counts those that were not)."""
        score = metrics.accuracy if self.settings.metric == "accuracy" else metrics.macro_f1
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score, self.evals_since_best = score, 0
        else:
            self.evals_since_best += 1
        return improved

    @property
    def early_stop_message(self) -> str:
        """Why early stopping ends the run now, or "" to go on."""
        patience = self.settings.early_stopping
        if not patience or self.evals_since_best < patience:
            return ""
        return (f"Stopped early: no better validation {self.settings.metric} than {self.best_score:.4f} in "
                f"{patience} evaluations (classify.early_stopping).")

    def header(self) -> dict:
        """What a checkpoint needs, beside its body's config, to be loaded as a Classifier."""
        return {"labels": list(self.data.labels), "pooling": self.pooling, "max_tokens": self.max_tokens}

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "evals_since_best": self.evals_since_best}

    def load_state_dict(self, state: dict) -> None:
        self.best_score, self.evals_since_best = state["best_score"], state["evals_since_best"]

    def score_test(self, run_dir: Path, device: torch.device) -> Path | None:
        """classify.test scored with the run's best checkpoint, written to RUN/test.json; None without test files."""
        if not self.data.test:
            return None
        report = Classifier.load(run_dir, device).evaluate(self.data.test)
        path = run_dir / TEST_REPORT
        write_atomic(path, json.dumps({"rows": len(self.data.test), "labels": self.data.labels,
                                       **report.__dict__}, indent=2).encode("utf-8"))
        return path
