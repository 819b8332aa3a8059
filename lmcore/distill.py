"""Knowledge distillation (Hinton et al., 2015): a student run learns from a trained teacher's predictions as well
as from the text.

    loss = alpha * CE(labels) + (1 - alpha) * T² * KL(teacher_T || student_T)

where _T is a distribution softened by the temperature T (softmax of logits / T); T² keeps the second part's
gradients the size of the first's whatever T is. The teacher is any trained run of a family that predicts the next
token (Transformer or RNN) with the student's tokenizer; it runs frozen, on the student's device and under its
autocast, on the very batch the student trains on.
"""
from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from .checkpoint import load_trained_model
from .config import DistillConfig
from .errors import ConfigError, LMCoreError
from .models import LanguageModel, ModelOutput


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T² · KL(teacher_T || student_T), the mean over positions, in nats; both logits [B, T, V]."""
    student = F.log_softmax(student_logits.float().flatten(0, 1) / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float().flatten(0, 1) / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature ** 2


class Teacher:
    """A frozen teacher model and the distillation loss of a student's step. `parts()` hands over the two halves of
    the loss of the micro-batches since the last call, for the metrics."""

    def __init__(self, model: LanguageModel, config: DistillConfig):
        self.model, self.config = model.eval().requires_grad_(False), config
        self.state: object | None = None  # an RNN teacher's hidden state, carried as the student's is
        self._parts: list[Tensor] = []

    @classmethod
    def load(cls, config: DistillConfig, student: LanguageModel, tokenizer, context: int, device: torch.device,
             run: str) -> Teacher:
        """The teacher that `config` names, on `device`; ConfigError (naming distill.teacher) when it cannot teach
        `student` (whose run is `run`, for messages) on windows of `context` tokens."""
        where = f"distill.teacher = {config.teacher!r}"
        try:
            model, teacher_tokenizer, _ = load_trained_model(Path(config.teacher), "best", device)
        except LMCoreError as exc:
            raise ConfigError(f"{where} cannot be loaded: {exc}", field="distill.teacher") from None
        if teacher_tokenizer.fingerprint() != tokenizer.fingerprint():
            raise ConfigError(
                f"{where} has another tokenizer ({teacher_tokenizer.kind}, {teacher_tokenizer.vocab_size} tokens) "
                f"than run {run!r} ({tokenizer.kind}, {tokenizer.vocab_size} tokens): a teacher can only teach "
                "tokens the student also predicts. Train the student with the teacher's tokenizer settings on the "
                "teacher's corpus, or pick a teacher trained on this text.", field="distill.teacher")
        for who, m in (("The teacher", model), ("The student", student)):
            if m.family == "encoder":
                raise ConfigError(f"{who} ({where}) is a masked-language encoder; distillation here teaches the "
                                  "next token, so both models must be Transformers or RNNs.", field="distill.teacher")
            if getattr(m.config, "adaptive_softmax_cutoffs", None):
                raise ConfigError(f"{who} ({where}) has an adaptive softmax, which gives no full distribution to "
                                  "compare; distil between models with a full softmax.", field="distill.teacher")
        window = getattr(model.config, "context_length", None)
        if window is not None and window < context:
            raise ConfigError(f"{where} reads at most {window} tokens, fewer than train.context = {context}; "
                              f"set train.context to at most {window}.", field="distill.teacher",
                              also=("train.context",))
        return cls(cast(LanguageModel, model), config)

    def loss(self, student: ModelOutput, x: Tensor, fresh: bool) -> Tensor:
        """The distilled loss of a student's forward pass `student` over batch `x` (its loss the CE on the labels).
        `fresh`: the batch starts new sequences (an RNN teacher's state restarts with the student's)."""
        assert student.loss is not None and student.logits is not None  # a training pass with a full softmax
        with torch.no_grad():  # frozen; no_grad, not inference_mode: the loss keeps its logits for backward
            if self.model.family == "rnn":
                if fresh or self.state is None:
                    self.state = self.model.init_state(x.size(0), x.device)
                out = self.model(x, state=self.state)
                self.state = out.state
            else:
                out = self.model(x)
        assert out.logits is not None
        kd = distillation_loss(student.logits, out.logits, self.config.temperature)
        self._parts.append(torch.stack([student.loss.detach().float(), kd.detach()]))
        alpha = self.config.alpha
        return alpha * student.loss + (1 - alpha) * kd

    def parts(self) -> Tensor:
        """[loss on the labels, loss against the teacher], the mean over the micro-batches since the last call."""
        parts, self._parts = torch.stack(self._parts).mean(dim=0), []
        return parts
