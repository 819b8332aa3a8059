"""Learning-rate schedules: warmup, then constant, cosine decay, or cut-on-plateau."""
from __future__ import annotations

import math

from .config import ScheduleConfig


class LRSchedule:
    def __init__(self, config: ScheduleConfig, base_lr: float, max_steps: int):
        self.config, self.base_lr = config, base_lr
        self.decay_steps = config.decay_steps or max_steps
        self.plateau_scale = 1.0  # plateau: multiplied by plateau_factor at each cut
        self.best_val_loss = math.inf
        self.evals_without_improvement = 0

    def lr_at(self, step: int) -> float:
        """The learning rate for optimizer step `step` (0-based)."""
        c = self.config
        if step < c.warmup_steps:
            return self.base_lr * (step + 1) / (c.warmup_steps + 1)
        if c.kind == "cosine":
            if step >= self.decay_steps:
                return c.min_lr
            progress = (step - c.warmup_steps) / max(1, self.decay_steps - c.warmup_steps)
            return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.base_lr - c.min_lr)
        if c.kind == "plateau":
            return self.base_lr * self.plateau_scale
        return self.base_lr

    def observe_validation(self, val_loss: float) -> None:
        """Plateau: cut the rate when validation loss has not improved for more than `patience` evaluations."""
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.evals_without_improvement = val_loss, 0
            return
        self.evals_without_improvement += 1
        if self.config.kind == "plateau" and self.evals_without_improvement > self.config.plateau_patience:
            self.plateau_scale *= self.config.plateau_factor
            self.evals_without_improvement = 0

    def state_dict(self) -> dict:
        best = self.best_val_loss if math.isfinite(self.best_val_loss) else None
        return {"plateau_scale": self.plateau_scale, "best_val_loss": best,
                "evals_without_improvement": self.evals_without_improvement}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        best = state.get("best_val_loss")
        self.best_val_loss = math.inf if best is None else float(best)
        self.evals_without_improvement = int(state["evals_without_improvement"])
