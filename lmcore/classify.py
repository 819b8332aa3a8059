"""Using a trained text classifier (a run with task = "classify"): probabilities, explanations, and the metrics
of labelled data. What `lmcore classify`, `lmcore eval` and the app's Classify view all call.

    classifier = Classifier.load("runs/sentiment-20261201-120000")
    classifier.probabilities(["Great phone.", "It broke."])   # [[p(label 0), p(label 1)], ...], label order
    classifier.explain("Great phone.").scores                 # integrated gradients, one score per token

An explanation scores each token by integrated gradients (Sundararajan et al., 2017): the gradient of the chosen
label's logit with respect to the token's input embedding, averaged along the straight path from a baseline to the
token's embedding, times the step from the baseline to it, summed over its width. The baseline is the <unk> token's
embedding (a token the model does not know; a zero embedding for a tokenizer without <unk>), so the scores add up
to the logit of the text less that of as many <unk> tokens, and a positive score means the token pushed the text
towards the label more than an unknown one would have. Plain gradient x input would be near zero for a
Transformer, whose layer norms make it almost blind to the scale of its input; the path does not depend on scale.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .checkpoint import build_checkpoint_classifier, checkpoint_tokenizer, load_checkpoint, resolve_checkpoint
from .errors import LMCoreError
from .evaluation import evaluating
from .labelled import LabelledRow, label_ids
from .models.classifier import PAD, TextClassifier
from .tokenizers import Tokenizer

BATCH_SIZE = 64  # texts per forward pass when scoring many
PATH_STEPS = 32  # points on integrated gradients' path, one forward pass together: the scores' sum is then within
                 # a few percent of its exact value


@dataclass(frozen=True)
class Explanation:
    tokens: list[str]  # each token's text as it reads in the decoded text, the spaces before it included
    scores: list[float]  # integrated gradients per token; positive pushed the text towards `label`
    label: int  # the label explained (by default the predicted one)
    probabilities: list[float]  # of every label, in label order


@dataclass(frozen=True)
class ClassificationReport:
    loss: float  # mean cross-entropy, nats per text
    accuracy: float
    macro_f1: float  # the mean of the labels' F1 scores
    precision: list[float]  # per label; 0 for a label never predicted
    recall: list[float]  # per label; 0 for a label that never occurs
    confusion: list[list[int]]  # confusion[i][j]: texts of label i predicted as j


def classification_report(logits: Tensor, targets: Tensor) -> ClassificationReport:
    """Loss, accuracy, macro-F1, per-label precision and recall and the confusion matrix of logits [N, C] against
    label indices [N]."""
    n_labels = logits.size(1)
    predicted = logits.argmax(dim=1)
    confusion = torch.zeros(n_labels, n_labels, dtype=torch.long)
    confusion.index_put_((targets.cpu(), predicted.cpu()), torch.ones_like(targets.cpu()), accumulate=True)
    right = confusion.diag().double()
    precision = right / confusion.sum(0).clamp(min=1)
    recall = right / confusion.sum(1).clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return ClassificationReport(F.cross_entropy(logits.float(), targets).item(), right.sum().item() / len(targets),
                                f1.mean().item(), precision.tolist(), recall.tolist(), confusion.tolist())


def token_texts(tokenizer: Tokenizer, ids: Sequence[int]) -> list[str]:
    """What each token adds to the decoded text. A word decoded alone has no space before it (the word tokenizer
    puts spaces between words), so each is the difference of two decoded prefixes; where a prefix ends inside a
    multi-byte character, the token is decoded alone."""
    texts, before = [], ""
    for i in range(len(ids)):
        text = tokenizer.decode(list(ids[:i + 1]))
        texts.append(text[len(before):] if text.startswith(before) else tokenizer.decode([ids[i]]))
        before = text
    return texts


def encode_text(tokenizer: Tokenizer, text: str, family: str, max_tokens: int) -> list[int]:
    """The ids a classifier reads for `text`: its tokens (unknown ones as <unk>), the first that fit in
    `max_tokens`, framed as [CLS] text [SEP] for an encoder body."""
    ids = tokenizer.encode(text, unknown="replace")
    if not ids:
        raise LMCoreError(f"The text {text[:40]!r} has no tokens to classify; give it some words.")
    if family != "encoder":
        return ids[:max_tokens]
    cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id
    if cls_id is None or sep_id is None:
        raise LMCoreError("This encoder's tokenizer has no [CLS] and [SEP] tokens; use the tokenizer/ folder of "
                          "the encoder's own run.")
    return [cls_id, *ids[:max_tokens - 2], sep_id]


def pad(rows: Sequence[Sequence[int]]) -> Tensor:
    """Id lists of any lengths -> [B, longest], each row followed by PAD."""
    ids = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


@torch.no_grad()
def classifier_logits(model: TextClassifier, rows: Sequence[Sequence[int]], device: torch.device | str,
                      autocast: torch.dtype | None = None) -> Tensor:
    """Logits [N, n_labels] (fp32, on the CPU) of encoded texts, in batches of BATCH_SIZE, in eval mode."""
    out = []
    with evaluating(model, device, autocast):
        for start in range(0, len(rows), BATCH_SIZE):
            out.append(model(pad(rows[start:start + BATCH_SIZE]).to(device)).logits.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.n_labels)


class Classifier:
    """A trained classifier with its tokenizer and labels, ready to classify and explain texts."""

    def __init__(self, model: TextClassifier, tokenizer: Tokenizer, labels: list[str], max_tokens: int,
                 run_dir: Path, device: torch.device):
        self.model, self.tokenizer, self.labels = model.eval(), tokenizer, labels
        self.max_tokens, self.run_dir, self.device = max_tokens, run_dir, device

    @classmethod
    def load(cls, run_dir_or_checkpoint: str | Path, device: str | torch.device = "cpu",
             which: str = "best") -> Classifier:
        """The classifier of a run folder (its best checkpoint, else its last) or of a checkpoint file.
        CheckpointError for a language model's run, saying so."""
        checkpoint = load_checkpoint(resolve_checkpoint(Path(run_dir_or_checkpoint), which))
        model = build_checkpoint_classifier(checkpoint)
        head = checkpoint.meta["classifier"]
        device = torch.device(device)
        return cls(model.to(device), checkpoint_tokenizer(checkpoint), list(head["labels"]), int(head["max_tokens"]),
                   Path(str(checkpoint.path)).parent.parent, device)

    def encode(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text, self.model.body.family, self.max_tokens)

    def logits(self, texts: Sequence[str]) -> Tensor:
        return classifier_logits(self.model, [self.encode(text) for text in texts], self.device)

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """One row per text: the probability of each label, in label order."""
        return self.logits(texts).softmax(dim=-1).tolist() if texts else []

    def evaluate(self, rows: Sequence[LabelledRow]) -> ClassificationReport:
        """The metrics of labelled rows (their labels must be this classifier's: lmcore.labelled.check_labels)."""
        targets = torch.tensor(label_ids(list(rows), self.labels), dtype=torch.long)
        return classification_report(self.logits([row.text for row in rows]), targets)

    def explain(self, text: str, label: int | None = None) -> Explanation:
        """Integrated gradients of `label`'s logit (default: the predicted label) for each token of `text`, from
        the <unk> embedding to the token's: the midpoint rule over PATH_STEPS points, taken as one batch. An
        encoder's [CLS] and [SEP] keep their embeddings all along the path, being no part of the text: their
        scores are zero and are left out."""
        ids = self.encode(text)
        logits = classifier_logits(self.model, [ids], self.device)[0]
        chosen = int(logits.argmax()) if label is None else label
        if not 0 <= chosen < len(self.labels):
            raise LMCoreError(f"label {label} is not one of this classifier's {len(self.labels)} labels (0 to "
                              f"{len(self.labels) - 1}).")
        framed = self.model.body.family == "encoder"
        is_text = torch.ones(len(ids), 1, device=self.device)
        if framed:
            is_text[[0, -1]] = 0.0
        table = self.model.token_embedding.weight.detach()
        unk = self.tokenizer.unk_id
        baseline = table[unk] if unk is not None else torch.zeros_like(table[0])
        alphas = (torch.arange(PATH_STEPS, device=self.device)[:, None, None] + 0.5) / PATH_STEPS
        captured: list[Tensor] = []  # the step from the baseline to each token [T, H], then the path [steps, T, H]

        def along_the_path(module, inputs, embedded: Tensor) -> Tensor:
            step = (embedded[0].detach() - baseline) * is_text
            # a leaf of its own, so the gradient stops here whether or not the body's weights are trainable
            path = (embedded.detach() - step + alphas * step).requires_grad_()
            captured.extend((step, path))
            return path

        hook = self.model.token_embedding.register_forward_hook(along_the_path)
        try:
            # cuDNN runs an RNN's backward pass only in training mode, and the model stays in eval mode
            with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
                batch = torch.tensor([ids], device=self.device).expand(PATH_STEPS, -1)
                path_logits = self.model(batch).logits[:, chosen].float()
                (gradients,) = torch.autograd.grad(path_logits.sum(), captured[1])
        finally:
            hook.remove()
        scores = (gradients.mean(0) * captured[0]).sum(-1).tolist()
        if framed:
            ids, scores = ids[1:-1], scores[1:-1]
        return Explanation(token_texts(self.tokenizer, ids), scores, chosen, logits.softmax(dim=-1).tolist())

    def describe(self, probabilities: Sequence[float]) -> str:
        """'positive 0.93 (negative 0.07, ...)': the top label first, for the command line."""
        ranked = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
        parts = [f"{self.labels[i]} {probabilities[i]:.3f}" for i in ranked]
        return parts[0] + (f"  ({', '.join(parts[1:])})" if len(parts) > 1 else "")
