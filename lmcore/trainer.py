"""The training loop, the one the CLI, the GUI worker, the tests and torchrun all drive.

    trainer = Trainer.new(config)          # or Trainer.resume(run_dir)
    trainer.subscribe(print)               # plain dataclass events from lmcore.events
    trainer.run()                          # blocks; call request_stop() from any thread
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from . import events as ev
from .checkpoint import Checkpoint, load_checkpoint, optimizer_from_tensors, optimizer_to_tensors, save_checkpoint
from .config import RunConfig
from .corpus import ContiguousStreams, RandomWindows, encode_cached, evaluation_batches, load_corpus
from .device import autocast_dtype, describe_device, pick_device
from .evaluation import EvalResult, eval_batch_size, evaluate_ids
from .errors import CheckpointError, LMCoreError, TrainingError
from .models import build_model, model_config_from_dict, model_config_to_dict
from .runs import RunFolder, resolve_checkpoint
from .schedule import LRSchedule
from .tokenizers import load_tokenizer, train_tokenizer



class Trainer:
    def __init__(self, config: RunConfig, folder: RunFolder, resume: bool = False):
        config.validate()
        self.config, self.folder, self.resuming = config, folder, resume
        self._subscribers: list[Callable[[object], None]] = []
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self.step = 0
        self.tokens_seen = 0
        self.elapsed = 0.0
        self.best_val_loss: float | None = None
        self._periodic: dict[int, tuple[int, Callable[["Trainer"], object | None]]] = {}

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def new(cls, config: RunConfig, runs_dir: str | Path | None = None) -> "Trainer":
        config.validate()
        folder = RunFolder.create(Path(runs_dir or config.runs_dir), config.name)
        folder.save_config(config)
        folder.write_status("running", "preparing")
        return cls(config, folder)

    @classmethod
    def resume(cls, run_dir: str | Path) -> "Trainer":
        folder = RunFolder(Path(run_dir))
        config = folder.load_config()
        if not folder.checkpoint_path("last").is_file():
            raise CheckpointError(f"{run_dir} has no last checkpoint to resume from; start a new run instead.")
        return cls(config, folder, resume=True)

    # ---- control, from any thread -------------------------------------------------------------
    def subscribe(self, callback: Callable[[object], None]) -> None:
        self._subscribers.append(callback)

    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def request_pause(self) -> None:
        self._running.clear()

    def request_resume(self) -> None:
        self._running.set()

    def add_periodic(self, every: int, task: Callable[["Trainer"], object | None]) -> int:
        """Run `task(trainer)` on the training thread after every `every`-th step (e.g. an attention probe);
        a non-None result is emitted as an event. Returns a handle for remove_periodic. Thread-safe."""
        handle = id(task)
        self._periodic = {**self._periodic, handle: (every, task)}
        return handle

    def remove_periodic(self, handle: int) -> None:
        self._periodic = {k: v for k, v in self._periodic.items() if k != handle}

    def _emit(self, event: object) -> None:
        for callback in self._subscribers:
            callback(event)

    # ---- the run ------------------------------------------------------------------------------
    def run(self) -> str:
        """Train to the end or until stopped; returns the final status. Never raises for user errors:
        they arrive as a Failed event and the run folder is marked failed, keeping its last checkpoint."""
        try:
            self._prepare()
            status = self._train()
        except LMCoreError as exc:
            return self._fail(str(exc))
        except torch.OutOfMemoryError:
            return self._fail("Out of memory. Lower train.batch_size or train.context, or use a smaller model, "
                              "then resume from the last checkpoint.")
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                return self._fail(f"The disk is full ({exc.filename or self.folder.path}). Free some space, "
                                  "then resume the run from its last checkpoint.")
            return self._fail(f"{exc}", with_traceback=True)
        except Exception as exc:  # a bug: keep the details for the report, tell the user where they are
            return self._fail(f"Unexpected error: {exc!r}", with_traceback=True)
        return status

    def _fail(self, message: str, with_traceback: bool = False) -> str:
        if with_traceback:
            log = self.folder.path / "error.log"
            log.write_text(traceback.format_exc(), encoding="utf-8")
            message += f" Details are in {log}."
        self.folder.write_status("failed", message, step=self.step, best_val_loss=self.best_val_loss)
        self._emit(ev.Failed(self.step, message, self.folder.path))
        return "failed"

    def _prepare(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.train.seed)
        self.device = pick_device(cfg.train.device)
        self.autocast = autocast_dtype(self.device) if cfg.train.dtype == "auto" else (
            torch.bfloat16 if cfg.train.dtype == "bf16" else None)
        source = self._fine_tune_source()
        self.tokenizer = self._tokenizer(source)
        self.train_ids, self.val_ids, self.val_chars = self._encode()
        model_fields = (source.meta["model"] if source else cfg.model_fields(self.tokenizer.vocab_size))
        self.model = build_model(model_config_from_dict(model_fields)).to(self.device)
        if source:
            self.model.load_state_dict(source.model)
        self.optimizer = self._optimizer()
        self.tokens_per_step = cfg.train.batch_size * cfg.train.context * cfg.train.grad_accum
        self.max_steps = cfg.train.max_steps
        if cfg.train.epochs > 0:
            self.max_steps = max(1, math.ceil(cfg.train.epochs * len(self.train_ids) / self.tokens_per_step))
        self.schedule = LRSchedule(cfg.schedule, cfg.optim.lr, self.max_steps)
        if self.model.family == "rnn":
            self.batches = ContiguousStreams(self.train_ids, cfg.train.batch_size, cfg.train.context)
        else:
            self.batches = RandomWindows(self.train_ids, cfg.train.batch_size, cfg.train.context, cfg.train.seed)
        self.hidden = None
        # fail now, not at the first evaluation, when the validation split cannot fill one batch
        evaluation_batches(self.val_ids, self.model.family, cfg.train.context, eval_batch_size(self.model.family))
        self.forward = torch.compile(self.model) if cfg.train.compile else self.model
        if self.resuming:
            self._load_state(load_checkpoint(self.folder.checkpoint_path("last")))
            self.folder.truncate_metrics(self.step)

    def _fine_tune_source(self) -> Checkpoint | None:
        if not self.config.init_from:
            return None
        path = resolve_checkpoint(Path(self.config.init_from), "best")
        return load_checkpoint(path)

    def _tokenizer(self, source: Checkpoint | None):
        """The run's own tokenizer on resume; the source run's when fine-tuning; else train one (cached)."""
        if self.resuming:
            return load_tokenizer(self.folder.tokenizer_dir)
        self._emit(ev.Preparing("Reading corpus"))
        data = self.config.data
        self.corpus = load_corpus(data.train, data.val, data.val_fraction, data.encoding_errors)
        if source:
            tokenizer = load_tokenizer(resolve_checkpoint(Path(self.config.init_from)).parent.parent / "tokenizer")
        else:
            tokenizer = self._cached_tokenizer()
        tokenizer.save(self.folder.tokenizer_dir)
        return tokenizer

    def _cached_tokenizer(self):
        from .corpus import default_cache_dir

        settings = json.dumps(asdict(self.config.tokenizer), sort_keys=True)
        key = hashlib.sha256((self.corpus.digest + settings).encode()).hexdigest()[:24]
        cached = default_cache_dir() / "tokenizers" / key
        if (cached / "tokenizer.json").is_file():
            with contextlib.suppress(LMCoreError):
                return load_tokenizer(cached)
        self._emit(ev.Preparing(f"Training {self.config.tokenizer.kind} tokenizer"))
        tokenizer = train_tokenizer(self.config.tokenizer, self.corpus.train,
                                    progress=lambda message: self._emit(ev.Preparing(message)))
        tokenizer.save(cached)
        return tokenizer

    def _encode(self):
        if self.resuming:
            data = self.config.data
            self.corpus = load_corpus(data.train, data.val, data.val_fraction, data.encoding_errors)
        key = self.corpus.digest[:24]
        progress = lambda name: (lambda f: self._emit(ev.Preparing(f"Encoding {name} split", f)))  # noqa: E731
        train = encode_cached(self.tokenizer, self.corpus.train, key + "-train", progress=progress("training"))
        val = encode_cached(self.tokenizer, self.corpus.val, key + "-val", progress=progress("validation"))
        return train, val, len(self.corpus.val)

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.config.optim
        groups = self.model.optim_groups(o.weight_decay)
        if o.name == "sgd":
            return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
        kind = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        betas = tuple(o.betas)
        try:  # the fused kernel is the fastest where this build has it (CUDA, and recent CPU builds)
            return kind(groups, lr=o.lr, betas=betas, fused=True)
        except (RuntimeError, TypeError):
            return kind(groups, lr=o.lr, betas=betas, foreach=True)

    # ---- checkpoints --------------------------------------------------------------------------
    def _save(self, which: str) -> Path:
        optim_tensors, optim_hyper = optimizer_to_tensors(self.optimizer)
        extra = {"rng.torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            extra["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        batch_state = self.batches.state_dict()
        if "generator" in batch_state:
            extra["rng.batches"] = batch_state.pop("generator")
        if self.hidden is not None:
            hidden = self.hidden if isinstance(self.hidden, tuple) else (self.hidden,)
            extra.update({f"hidden.{i}": h for i, h in enumerate(hidden)})
        meta = {
            "model": model_config_to_dict(self.model.config), "step": self.step, "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed, "best_val_loss": self.best_val_loss, "schedule": self.schedule.state_dict(),
            "batches": batch_state, "optimizer": optim_hyper, "tokenizer_fingerprint": self.tokenizer.fingerprint(),
        }
        summary = {"step": self.step, "tokens_seen": self.tokens_seen, "best_val_loss": self.best_val_loss,
                   "model": meta["model"], "parameters": self.model.num_parameters()}
        path = self.folder.checkpoint_path(which)
        model_state = self.model.state_dict()
        save_checkpoint(path, Checkpoint(meta, model_state, optim_tensors, extra), summary)
        self._emit(ev.CheckpointSaved(self.step, path, which))
        return path

    def _load_state(self, checkpoint: Checkpoint) -> None:
        meta = checkpoint.meta
        self.model.load_state_dict(checkpoint.model)
        optimizer_from_tensors(self.optimizer, checkpoint.optimizer, meta["optimizer"])
        self.step, self.tokens_seen, self.elapsed = meta["step"], meta["tokens_seen"], meta["elapsed"]
        self.best_val_loss = meta["best_val_loss"]
        self.schedule.load_state_dict(meta["schedule"])
        batch_state = dict(meta["batches"])
        if "rng.batches" in checkpoint.extra:
            batch_state["generator"] = checkpoint.extra["rng.batches"]
        self.batches.load_state_dict(batch_state)
        torch.set_rng_state(checkpoint.extra["rng.torch"])
        if "rng.cuda" in checkpoint.extra and self.device.type == "cuda":
            torch.cuda.set_rng_state(checkpoint.extra["rng.cuda"], self.device)
        hidden = [checkpoint.extra[k].to(self.device) for k in sorted(checkpoint.extra) if k.startswith("hidden.")]
        self.hidden = None if not hidden else (tuple(hidden) if len(hidden) > 1 else hidden[0])

    # ---- the loop -----------------------------------------------------------------------------
    def _train(self) -> str:
        cfg = self.config.train
        self.folder.write_status("running", "", parameters=self.model.num_parameters(), step=self.step,
                                 max_steps=self.max_steps, device=describe_device(self.device))
        self._emit(ev.Started(self.folder.path, describe_device(self.device), self.model.num_parameters(),
                              self.max_steps, self.step, self.tokens_per_step, self.model.flops_per_token()))
        pending: list[tuple[int, float, torch.Tensor, torch.Tensor]] = []
        last_read = time.perf_counter()
        with self.folder.metrics_path.open("a", encoding="utf-8") as metrics:
            while self.step < self.max_steps:
                if not self._running.is_set():
                    self._emit(ev.Paused(self.step))
                    self.folder.write_status("paused", "", step=self.step)
                    paused_at = time.perf_counter()
                    self._running.wait()
                    last_read += time.perf_counter() - paused_at
                    self.folder.write_status("running", "", step=self.step)
                    self._emit(ev.Resumed(self.step))
                if self._stop.is_set():
                    break
                lr = self.schedule.lr_at(self.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss, grad_norm = self._step()
                self.step += 1
                self.tokens_seen += self.tokens_per_step
                pending.append((self.step, lr, loss, grad_norm))
                if len(pending) >= cfg.log_interval or self.device.type == "cpu" or self.step == self.max_steps:
                    last_read = self._publish(pending, metrics, last_read)
                    pending = []
                for every, task in self._periodic.values():
                    if self.step % every == 0 and (result := task(self)) is not None:
                        self._emit(result)
                if self.step % cfg.eval_interval == 0 or self.step == self.max_steps:
                    self._publish(pending, metrics, last_read)
                    pending = []
                    self._evaluate(metrics)
                    last_read = time.perf_counter()  # evaluation time is not training throughput
            self._publish(pending, metrics, last_read)
        status = "stopped" if self.step < self.max_steps else "finished"
        self._save("last")
        self.folder.write_status(status, "", step=self.step, best_val_loss=self.best_val_loss)
        self._emit(ev.Finished(self.step, status, self.best_val_loss, self.folder.path))
        return status

    def _step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step over grad_accum micro-batches; returns (loss, grad norm) still on the device."""
        cfg = self.config
        self.model.train()
        total = torch.zeros((), device=self.device)
        for _ in range(cfg.train.grad_accum):
            if self.model.family == "rnn" and (self.hidden is None or self.batches.new_sequence):
                self.hidden = self.model.init_state(cfg.train.batch_size, self.device)
            x, y = self.batches.next_batch()
            x, y = self._to_device(x), self._to_device(y)
            with self._autocast():
                out = self.forward(x, targets=y, state=self.hidden)
            if self.model.family == "rnn":
                self.hidden = _detach(out.state)
            (out.loss / cfg.train.grad_accum).backward()
            total += out.loss.detach()
        if cfg.optim.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), math.inf)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / cfg.train.grad_accum, grad_norm

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _publish(self, pending, metrics, since: float) -> float:
        """Read a batch of step metrics back from the device (one sync), check them, log and emit them."""
        if not pending:
            return since
        values = torch.stack([torch.stack([loss.float(), norm.float()]) for _, _, loss, norm in pending]).tolist()
        now = time.perf_counter()
        self.elapsed += now - since
        rate = len(pending) * self.tokens_per_step / max(now - since, 1e-9)
        first_tokens = self.tokens_seen - (len(pending) - 1) * self.tokens_per_step
        for i, ((step, lr, _, _), (loss, norm)) in enumerate(zip(pending, values)):
            if not math.isfinite(loss):
                raise TrainingError(
                    f"The training loss became {loss} at step {step}. The run stopped and keeps its last good "
                    f"checkpoint (step {self._last_checkpoint_step()}). Lower optim.lr or set optim.grad_clip, "
                    "then resume or start again."
                )
            event = ev.StepMetrics(step, first_tokens + i * self.tokens_per_step, loss, lr, norm, rate, self.elapsed)
            metrics.write(json.dumps({"kind": "step", **asdict(event)}) + "\n")
            self._emit(event)
        metrics.flush()
        return now

    def _last_checkpoint_step(self) -> int:
        path = self.folder.checkpoint_path("last").with_suffix(".json")
        try:
            return json.loads(path.read_text())["step"]
        except (OSError, ValueError, KeyError):
            return 0

    def evaluate(self, max_batches: int | None = None) -> EvalResult:
        """Validation loss over the whole split, or over `max_batches` (default train.eval_batches)."""
        limit = self.config.train.eval_batches if max_batches is None else max_batches
        return evaluate_ids(self.model, self.val_ids, self.config.train.context, self.device, self.autocast, limit)

    def _evaluate(self, metrics) -> None:
        result = self.evaluate()
        val_loss = result.loss
        if not math.isfinite(val_loss):
            raise TrainingError(f"The validation loss became {val_loss} at step {self.step}; "
                                "lower optim.lr or set optim.grad_clip, then start again.")
        whole = self.config.train.eval_batches == 0
        bpc = result.bits_per_char(self.val_chars / len(self.val_ids)) if whole else None
        improved = self.best_val_loss is None or val_loss < self.best_val_loss
        self.schedule.observe_validation(val_loss)
        if improved:
            self.best_val_loss = val_loss
        event = ev.EvalMetrics(self.step, self.tokens_seen, self.elapsed, val_loss, result.perplexity, bpc, improved)
        metrics.write(json.dumps({"kind": "eval", **asdict(event)}) + "\n")
        metrics.flush()
        self._emit(event)
        if improved:
            self._save("best")
        self._save("last")
        self.folder.write_status("running", "", step=self.step, best_val_loss=self.best_val_loss)


def _detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
