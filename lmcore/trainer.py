"""The training loop, the one the CLI, the GUI worker, the tests and torchrun all drive.

    trainer = Trainer.new(config)          # or Trainer.resume(run_dir)
    trainer.subscribe(print)               # plain dataclass events from lmcore.events
    trainer.run()                          # blocks; call request_stop() from any thread

The model's family picks the objective: next-token prediction for the Transformer and the RNN, masked-token
prediction (lmcore.masking: batches from MaskedWindows, evaluation by evaluate_masked) for the encoder, whose
tokenizer gains the special tokens [CLS], [SEP], [MASK] and [PAD] when its run starts.

Under torchrun (WORLD_SIZE > 1) every process builds its Trainer the same way. The model is wrapped in
DistributedDataParallel, each rank trains on its own share of every batch (train.batch_size is per rank), and
rank 0 alone writes the run folder and emits events. See lmcore/distributed.py and docs/multi-node.md.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import sys
import threading
import time
import traceback
import warnings
from dataclasses import asdict
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from . import events as ev
from .batches import ContiguousStreams, MaskedWindows, RandomWindows, evaluation_batches, rank_windows
from .checkpoint import (Checkpoint, build_checkpoint_model, check_fits, checkpoint_meta, load_checkpoint,
                         optimizer_from_tensors, optimizer_to_tensors, resolve_checkpoint, save_checkpoint)
from .config import RunConfig, apply_override, config_from_dict, config_to_dict
from .corpus import encode_cached, load_corpus
from .classify_task import ClassifyTask, LabelledBatches
from .distill import Teacher
from .device import describe_device, device_features, host_threads, pick_device, run_peak_flops
from .evaluation import EvalResult, eval_batch_size, evaluate_ids
from .errors import CheckpointError, ConfigError, LMCoreError, TokenizerError, TrainingError
from .fileio import remove_temp_files
from .masking import MaskedLM
from .metrics import metric_record
from .models import LanguageModel, build_model, model_config_to_dict
from .models.classifier import TextClassifier
from .runs import RunFolder, liveness
from .schedule import LRSchedule
from .tokenizers import UNKNOWN_SHARE_LIMIT, load_tokenizer, tokenizer_file, train_tokenizer

# What --set may change when a run resumes: how long it trains and how often it evaluates and logs. Anything else
# would make it another run than the one its checkpoint continues.
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # train.dtype, when not "auto"
RESUMABLE_SETTINGS = ("train.max_steps", "train.eval_interval", "train.log_interval", "train.eval_batches")
# A run has diverged when its training loss, smoothed over about 10 steps, grows past
# max(DIVERGED_FACTOR x its first loss, its first loss + DIVERGED_NATS): far beyond any noise of a healthy run.
LOSS_SMOOTHING = 0.9
DIVERGED_FACTOR, DIVERGED_NATS = 10.0, 10.0


class Trainer:
    def __init__(self, config: RunConfig, folder: RunFolder, resume: bool = False):
        config.validate()
        self.config, self.folder, self.resuming = config, folder, resume
        self.dist = distributed.setup(config.train.device)
        self._subscribers: list[Callable[[object], None]] = []
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self.step = 0
        self.tokens_seen = 0
        self.elapsed = 0.0
        self.best_val_loss: float | None = None
        self.first_loss: float | None = None  # the run's first training loss, the yardstick of divergence
        self.smoothed_loss: float | None = None
        self.changed_settings: list[str] = []  # --set on resume, in words (see resume)
        self._status_before_resume: dict | None = None  # until a resume has loaded its checkpoint
        self._periodic: dict[int, tuple[int, Callable[[Trainer], object | None]]] = {}

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def new(cls, config: RunConfig, runs_dir: str | Path | None = None) -> Trainer:
        # Every setting, the device included, is checked before the run folder exists: a config error leaves no
        # failed run behind.
        config.validate()
        pick_device(config.train.device)

        def create() -> Path:
            folder = RunFolder.create(Path(runs_dir or config.runs_dir), config.name)
            folder.save_config(config)
            folder.write_status("running", "preparing", **liveness())
            return folder.path

        return cls(config, RunFolder(distributed.setup(config.train.device).on_main(create)))

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: Sequence[str] = ()) -> Trainer:
        """Every rank reads the run folder, so a run on several machines resumes from a folder all of them see.
        `overrides` ("train.max_steps=5000", ...) may change the RESUMABLE_SETTINGS; the changes are listed in
        words in `changed_settings`, and written to the run's config.toml once its checkpoint has loaded."""
        folder = RunFolder(Path(run_dir))
        config = folder.load_config()
        if not any(folder.checkpoint_path(which).is_file() for which in ("last", "best")):
            raise CheckpointError(f"{run_dir} has no checkpoint to resume from; start a new run instead.")
        changed, changes = _resume_settings(config, overrides)
        trainer = cls(changed, folder, resume=True)
        trainer.changed_settings = changes
        return trainer

    @classmethod
    def from_text(cls, text: str, config: RunConfig | None = None, runs_dir: str | Path | None = None) -> Trainer:
        """A new run that trains on `text` (a string, e.g. in a notebook) with `config`'s other settings (RunConfig's
        defaults without one). The text is written to corpus.txt in the new run folder, which config.toml names as
        data.train, so the folder holds all the run learned from and resumes as any other. One process only."""
        import copy

        from .errors import CorpusError
        from .fileio import write_atomic

        if not text.strip():
            raise CorpusError("The text to train on is empty; give it some text (a few thousand characters at least).")
        config = copy.deepcopy(config or RunConfig())
        config.data.train, config.data.val = ["corpus.txt"], []  # checked as any config is; the real path follows
        trainer = cls.new(config, runs_dir)
        corpus = trainer.folder.path / "corpus.txt"
        write_atomic(corpus, text.encode("utf-8"))
        config.data.train = [str(corpus)]
        trainer.folder.save_config(config)
        return trainer

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

    def add_periodic(self, every: int, task: Callable[[Trainer], object | None]) -> int:
        """Run `task(trainer)` on the training thread after every `every`-th step (e.g. an attention probe);
        a non-None result is emitted as an event. Returns a handle for remove_periodic. Thread-safe."""
        handle = id(task)
        self._periodic = {**self._periodic, handle: (every, task)}
        return handle

    def remove_periodic(self, handle: int) -> None:
        self._periodic = {k: v for k, v in self._periodic.items() if k != handle}

    def _emit(self, event: object) -> None:
        if self.dist.is_main:  # one progress report per run, however many processes train it
            for callback in self._subscribers:
                callback(event)

    def _status(self, status: str, message: str = "", **fields) -> None:
        if self.dist.is_main:
            self.folder.write_status(status, message, **fields)

    # ---- the run ------------------------------------------------------------------------------
    def run(self) -> str:
        """Train to the end or until stopped; returns the final status. Never raises for user errors:
        they arrive as a Failed event and the run folder is marked failed, keeping its last checkpoint.
        Meanwhile rank 0 keeps status.json's pid, host and heartbeat current (lmcore.runs.is_alive)."""
        with self.folder.heartbeat() if self.dist.is_main else contextlib.nullcontext():
            try:
                if self.resuming and self.dist.is_main:
                    self._status_before_resume = self.folder.read_status()
                self._status("running", "preparing", **liveness())  # a resumed run is live again from here on
                self._prepare()
                return self._train()
            except KeyboardInterrupt:  # a notebook's interrupted kernel (the CLI turns Ctrl-C into request_stop)
                return self._stop_now()
            except LMCoreError as exc:
                return self._fail(str(exc))
            except torch.OutOfMemoryError:
                return self._fail("Out of memory. Lower train.batch_size or train.context, or use a smaller "
                                  "model, then resume from the last checkpoint.")
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    return self._fail(f"The disk is full ({exc.filename or self.folder.path}). Free some space, "
                                      "then resume the run from its last checkpoint.")
                return self._fail(f"{exc}", with_traceback=True)
            except Exception as exc:  # a bug: keep the details for the report, tell the user where they are
                return self._fail(f"Unexpected error: {exc!r}", with_traceback=True)

    def _stop_now(self) -> str:
        """Stopped where it stood: saved and marked stopped as a requested stop is, so the run can resume, rather
        than left 'running' with nothing saved. The step in flight, if any, is lost."""
        if self._status_before_resume is not None or (self.step == 0 and not self.resuming):
            return self._fail("Interrupted before training began; nothing was saved. Start (or resume) it again.")
        self._save("last")
        self._status("stopped", "", step=self.step, best_val_loss=self.best_val_loss)
        self._emit(ev.Finished(self.step, "stopped", self.best_val_loss, self.folder.path))
        return "stopped"

    def _fail(self, message: str, with_traceback: bool = False) -> str:
        if with_traceback and self.dist.is_main:
            log = self.folder.path / "error.log"
            log.write_text(traceback.format_exc(), encoding="utf-8")
            message += f" Details are in {log}."
        elif with_traceback:  # only rank 0 writes the run folder; torchrun shows the other ranks' stderr
            sys.stderr.write(f"rank {self.dist.rank}: {traceback.format_exc()}")
        before, step = self._status_before_resume, self.step
        with contextlib.suppress(OSError):  # a full disk: the Failed event still says what happened
            if before is not None:  # a resume that failed before loading its checkpoint changed nothing: keep it
                step = before.get("step", 0)
                self.folder.update_status(**{"status": "failed", **before, "message": f"Resume failed: {message}"})
            else:
                self._status("failed", message, step=step, best_val_loss=self.best_val_loss)
        self._emit(ev.Failed(step, message, self.folder.path))
        return "failed"

    def _prepare(self) -> None:
        cfg, dist = self.config, self.dist
        # Each rank its own dropout masks; DistributedDataParallel gives every rank rank 0's initial weights.
        torch.manual_seed(cfg.train.seed + dist.rank)
        self.device = dist.place(pick_device(cfg.train.device))
        self.features = device_features(self.device)
        self.autocast = self.features.autocast if cfg.train.dtype == "auto" else AUTOCAST[cfg.train.dtype]
        # fp16's narrow range flushes small gradients to zero: the loss is scaled up, the gradients back down
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast == torch.float16)
        self._emit(ev.Preparing("Reading corpus"))
        data, t = cfg.data, cfg.train
        # a classifier's labelled texts, whose texts stand in for the corpus (None: a language model)
        self.classify = ClassifyTask(cfg) if cfg.task == "classify" else None
        self.corpus = (self.classify.corpus if self.classify else
                       load_corpus(data.train, data.val, data.val_fraction, data.encoding_errors))
        source = dist.on_main(self._fine_tune_source)
        self.tokenizer = dist.on_main(lambda: self._tokenizer(source))
        if not self.classify:
            with dist.main_first():  # rank 0 fills the encoding cache; the other ranks of its machine read it
                self.train_ids, self.val_ids, self.val_chars = self._encode()
        body = build_checkpoint_model(source) if source else build_model(cfg.model_for(self.tokenizer.vocab_size))
        self.model: LanguageModel = (self.classify.build(body, self.tokenizer, t.context) if self.classify
                                     else body).to(self.device)
        self.optimizer = self._optimizer()
        per_step = t.batch_size * t.grad_accum * dist.world_size  # sequences (a classifier's: texts) per step
        self.tokens_per_step = per_step * (self.classify.tokens_per_text if self.classify else t.context)
        self.max_steps = t.max_steps
        if t.epochs > 0:
            sequences = len(self.classify.data.train) if self.classify else len(self.train_ids) / t.context
            self.max_steps = max(1, math.ceil(t.epochs * sequences / per_step))
        self.schedule = LRSchedule(cfg.schedule, cfg.optim.lr, self.max_steps)
        # a masked LM's special token ids (None for the next-token families): its objective, in training and evaluation
        self.mlm = MaskedLM.of(self.tokenizer) if self.model.family == "encoder" else None
        self.batches: ContiguousStreams | RandomWindows | LabelledBatches
        if self.classify:
            self.batches = self.classify.batches(t.batch_size, t.seed, dist.rank, dist.world_size)
        elif self.model.family == "rnn":
            self.batches = ContiguousStreams(self.train_ids, t.batch_size, t.context, dist.rank, dist.world_size)
        elif self.mlm is not None:
            self.batches = MaskedWindows(self.mlm, self.train_ids, t.batch_size, t.context, t.seed, dist.rank,
                                         dist.world_size)
        else:
            self.batches = RandomWindows(self.train_ids, t.batch_size, t.context, t.seed, dist.rank, dist.world_size)
        self.hidden: Tensor | tuple[Tensor, ...] | None = None  # an RNN's state, carried from batch to batch
        self.teacher = (Teacher.load(cfg.distill, self.model, self.tokenizer, t.context, self.device, cfg.name)
                        if cfg.distill.teacher else None)
        if not self.classify:  # fail now, not at the first evaluation, when the validation split cannot fill a batch
            evaluation_batches(self.val_ids, self.model.family, t.context, eval_batch_size(self.model.family))
            self._validation_ids(t.eval_batches)
        # torch.compile of a module is a module (OptimizedModule), though its signature promises only a callable
        self.forward = self._wrap(cast(torch.nn.Module, torch.compile(self.model)) if t.compile else self.model)
        if self.resuming:
            if dist.is_main:
                remove_temp_files(self.folder.path)  # what a process killed mid-write left; none writes here now
            self._load_state(self._resume_checkpoint())
            self._status_before_resume = None
            if dist.is_main:
                self.folder.truncate_metrics(self.step)
                if self.changed_settings:
                    self.folder.save_config(self.config)

    def _resume_checkpoint(self) -> Checkpoint:
        """The last checkpoint, or the best one when the last cannot be read or does not fit the run's model (a
        damaged disk, a copy cut short); each is checked before anything is loaded into the model."""
        def fitting(which: str) -> Checkpoint:
            checkpoint = load_checkpoint(self.folder.checkpoint_path(which))
            check_fits(checkpoint, self.model, "this run's model (config.toml)")
            return checkpoint

        try:
            return fitting("last")
        except CheckpointError as last_error:
            if not self.folder.checkpoint_path("best").is_file():
                raise
            try:
                checkpoint = fitting("best")
            except CheckpointError as best_error:
                message = f"{last_error} The best checkpoint cannot be used either: {best_error}"
                raise CheckpointError(message) from None
            self._emit(ev.Preparing(f"The last checkpoint cannot be used, so the run goes back to its best "
                                    f"checkpoint, at step {checkpoint.meta['step']}. ({last_error})"))
            return checkpoint

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training steps call: DistributedDataParallel around the model when several ranks train."""
        if self.dist.world_size == 1:
            return model
        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                       find_unused_parameters=not self.model.uses_every_parameter)

    def _fine_tune_source(self) -> Checkpoint | None:
        if not self.config.init_from:
            return None
        path = resolve_checkpoint(Path(self.config.init_from), "best")
        return load_checkpoint(path)

    def _tokenizer(self, source: Checkpoint | None):
        """The run's own tokenizer on resume; the source run's when fine-tuning; else train one (cached)."""
        if self.resuming:
            return load_tokenizer(self.folder.tokenizer_dir)
        if source:
            tokenizer = load_tokenizer(resolve_checkpoint(Path(self.config.init_from)).parent.parent / "tokenizer")
            share = tokenizer.unknown_share(self.corpus.train)
            if share > UNKNOWN_SHARE_LIMIT:  # the run would mostly learn to predict <unk>; say so, do not refuse
                warnings.warn(f"{share:.1%} of the new text is unknown to the model's tokenizer and becomes <unk>; "
                              "the fine-tuned model will mostly learn to predict <unk>.", stacklevel=2)
        else:
            tokenizer = self._cached_tokenizer()
            if self.config.family == "encoder":  # a masked LM's special tokens, after the text's own
                tokenizer = tokenizer.with_special_tokens()
        tokenizer.save(self.folder.tokenizer_dir)
        return tokenizer

    def _cached_tokenizer(self):
        from .corpus import default_cache_dir

        settings = json.dumps(asdict(self.config.tokenizer), sort_keys=True)
        key = hashlib.sha256((self.corpus.digest + settings).encode()).hexdigest()[:24]
        cached = default_cache_dir() / "tokenizers" / key
        if tokenizer_file(cached).is_file():
            with contextlib.suppress(LMCoreError):
                return load_tokenizer(cached)
        self._emit(ev.Preparing(f"Training {self.config.tokenizer.kind} tokenizer"))
        tokenizer = train_tokenizer(self.config.tokenizer, self.corpus.train,
                                    progress=lambda message: self._emit(ev.Preparing(message)))
        try:
            tokenizer.save(cached)
        except TokenizerError as exc:  # a cache is worth a warning, not the run (as the encoding cache)
            warnings.warn(f"{exc} Training goes on without caching the tokenizer.", stacklevel=2)
        return tokenizer

    def _encode(self):
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
        betas = (o.betas[0], o.betas[1])  # validate() made sure there are two
        try:  # the fused kernel is the fastest where this build has it (CUDA, and recent CPU builds)
            return kind(groups, lr=o.lr, betas=betas, fused=True)
        except (RuntimeError, TypeError):
            return kind(groups, lr=o.lr, betas=betas, foreach=True)

    # ---- checkpoints --------------------------------------------------------------------------
    def _save(self, which: str) -> Path | None:
        """Rank 0 writes the checkpoint; every rank must call this, as it gathers their RNG and RNN states."""
        extra = self._checkpoint_extras()
        if not self.dist.is_main:
            return None
        optim_tensors, optim_hyper = optimizer_to_tensors(self.optimizer)
        batch_state = self.batches.state_dict()
        if "generator" in batch_state:  # the same on every rank (see RandomWindows)
            extra["rng.batches"] = batch_state.pop("generator")
        meta = {
            "model": model_config_to_dict(self.model.config), "step": self.step, "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed, "best_val_loss": self.best_val_loss, "schedule": self.schedule.state_dict(),
            "batches": batch_state, "optimizer": optim_hyper, "tokenizer_fingerprint": self.tokenizer.fingerprint(),
            "world_size": self.dist.world_size, "first_loss": self.first_loss,
            "grad_scaler": self.scaler.state_dict(),
        }
        if self.classify:  # what Classifier.load needs, and where early stopping stands
            meta["classifier"] = self.classify.header()
            meta["classify_progress"] = self.classify.state_dict()
        summary = {"step": self.step, "tokens_seen": self.tokens_seen, "best_val_loss": self.best_val_loss,
                   "model": meta["model"], "parameters": self.model.num_parameters()}
        path = self.folder.checkpoint_path(which)
        # self.model, not the compiled or DDP wrapper: plain parameter names, no "module." prefix
        save_checkpoint(path, Checkpoint(meta, self.model.state_dict(), optim_tensors, extra), summary)
        self._emit(ev.CheckpointSaved(self.step, path, which))
        return path

    def _rank_state(self) -> dict[str, torch.Tensor]:
        """What differs between ranks: RNG states (dropout masks) and the RNN state of this rank's streams."""
        state = {"rng.torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if self.hidden is not None:
            hidden = self.hidden if isinstance(self.hidden, tuple) else (self.hidden,)
            state.update({f"hidden.{i}": h.cpu() for i, h in enumerate(hidden)})
        return state

    def _checkpoint_extras(self) -> dict[str, torch.Tensor]:
        """Rank 0's RNG states under their own names, rank r's under "rank<r>.", and the RNN state of every
        stream (the ranks' slices joined in rank order): the state one process of the global batch would hold."""
        states = self.dist.all_gather_object(self._rank_state())
        extra = {}
        for rank, state in enumerate(states):
            extra.update({(f"rank{rank}." if rank else "") + k: v for k, v in state.items() if k.startswith("rng.")})
        extra.update({k: torch.cat([s[k] for s in states], dim=1) for k in states[0] if k.startswith("hidden.")})
        return extra

    def _load_state(self, checkpoint: Checkpoint) -> None:
        meta, extra, rank, world_size = checkpoint.meta, checkpoint.extra, self.dist.rank, self.dist.world_size
        if self.model.family == "rnn" and meta.get("world_size", 1) != world_size:
            raise CheckpointError(
                f"This RNN run was trained by {meta.get('world_size', 1)} process(es) and is resumed by {world_size}; "
                "its text streams are split between the processes, so resume it with the same number.")
        self.model.load_state_dict(checkpoint.model)
        optimizer_from_tensors(self.optimizer, checkpoint.optimizer, meta["optimizer"])
        self.step, self.tokens_seen, self.elapsed = meta["step"], meta["tokens_seen"], meta["elapsed"]
        self.best_val_loss, self.first_loss = meta["best_val_loss"], meta.get("first_loss")
        if meta.get("grad_scaler"):  # an fp16 run's loss scale, learnt over its steps
            self.scaler.load_state_dict(meta["grad_scaler"])
        self.schedule.load_state_dict(meta["schedule"])
        if self.classify:
            self.classify.load_state_dict(meta["classify_progress"])
        batch_state = dict(meta["batches"])
        if "rng.batches" in checkpoint.extra:
            batch_state["generator"] = checkpoint.extra["rng.batches"]
        self.batches.load_state_dict(batch_state)
        mine = f"rank{rank}." if rank else ""  # a rank the checkpoint did not know takes rank 0's states
        torch.set_rng_state(extra.get(mine + "rng.torch", extra["rng.torch"]))
        if "rng.cuda" in extra and self.device.type == "cuda":
            torch.cuda.set_rng_state(extra.get(mine + "rng.cuda", extra["rng.cuda"]), self.device)
        hidden = [extra[k].chunk(world_size, dim=1)[rank].to(self.device)
                  for k in sorted(extra) if k.startswith("hidden.")]
        self.hidden = None if not hidden else (tuple(hidden) if len(hidden) > 1 else hidden[0])

    # ---- the loop -----------------------------------------------------------------------------
    def _train(self) -> str:
        cfg = self.config.train
        device = describe_device(self.device) + (f" x {self.dist.world_size} processes"
                                                 if self.dist.world_size > 1 else "")
        self._status("running", "", parameters=self.model.num_parameters(), step=self.step,
                     max_steps=self.max_steps, tokens_per_step=self.tokens_per_step, device=device)
        self._emit(ev.Started(self.folder.path, device, self.model.num_parameters(), self.max_steps, self.step,
                              self.tokens_per_step, self.model.flops_per_token(),
                              run_peak_flops(self.device, self.dist.world_size),
                              host_threads(self.device, self.dist.world_size)))
        # Reading a metric back makes the host wait for the GPU's queue: batch them, except on the CPU.
        read_every = 1 if self.features.cheap_readback else cfg.log_interval
        pending: list[tuple[int, float, Tensor, Tensor, Tensor | None]] = []  # step, lr, loss, grad norm, parts
        last_read = time.perf_counter()
        with (self.folder.metrics_path.open("a", encoding="utf-8") if self.dist.is_main
              else contextlib.nullcontext()) as metrics:
            while self.step < self.max_steps:
                if not self._running.is_set():
                    self._status("paused", "", step=self.step)  # on disk before subscribers hear of it
                    self._emit(ev.Paused(self.step))
                    paused_at = time.perf_counter()
                    self._running.wait()
                    last_read += time.perf_counter() - paused_at
                    self._status("running", "", step=self.step)
                    self._emit(ev.Resumed(self.step))
                if self._stop_agreed(just_read=not pending):
                    break
                lr = self.schedule.lr_at(self.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)  # a classifier's body learns slower than its head
                loss, grad_norm = self._step()
                self.step += 1
                self.tokens_seen += self.tokens_per_step
                pending.append((self.step, lr, loss, grad_norm, self.teacher.parts() if self.teacher else None))
                if len(pending) >= read_every or self.step == self.max_steps:
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
                    if self.classify and self.classify.early_stop_message:
                        break
            self._publish(pending, metrics, last_read)
        early_stop = self.classify.early_stop_message if self.classify else ""
        status = "finished" if self.step >= self.max_steps or early_stop else "stopped"
        self._save("last")
        if self.classify and status == "finished" and self.dist.is_main:
            self.classify.score_test(self.folder.path, self.device)
        self._status(status, early_stop, step=self.step, best_val_loss=self.best_val_loss)
        self._emit(ev.Finished(self.step, status, self.best_val_loss, self.folder.path))
        self.dist.barrier()  # no rank returns before rank 0 has written the final checkpoint
        return status

    def _stop_agreed(self, just_read: bool) -> bool:
        """Whether to stop before the next step. Every rank must stop at the same step, so several ranks agree
        on it (one tiny all-reduce) right after a metrics read-back, when the host has waited for the GPU anyway."""
        if self.dist.world_size == 1:
            return self._stop.is_set()
        return just_read and self.dist.any(self._stop.is_set())

    def _step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step over grad_accum micro-batches; returns (loss, grad norm) still on the device."""
        cfg = self.config
        accum = cfg.train.grad_accum
        self.model.train()
        total = torch.zeros((), device=self.device)
        for micro in range(accum):
            fresh = self.model.family != "rnn" or self.hidden is None or self.batches.new_sequence
            if self.model.family == "rnn" and fresh:
                self.hidden = self.model.init_state(cfg.train.batch_size, self.device)
            x, y = self.batches.next_batch()
            x, y = self._to_device(x), self._to_device(y)
            with self._gradient_sync(micro == accum - 1):
                with self._autocast():
                    out = self.forward(x, targets=y, state=self.hidden)
                    loss = out.loss if self.teacher is None else self.teacher.loss(out, x, fresh)
                self.scaler.scale(loss / accum).backward()
            if self.model.family == "rnn":
                self.hidden = _detach(out.state)
            total += loss.detach()
        max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
        self.scaler.unscale_(self.optimizer)  # clip the true gradients
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.scaler.step(self.optimizer)  # skipped, and the scale lowered, when fp16 gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return total / accum, grad_norm

    def _gradient_sync(self, last_micro_step: bool):
        """DDP all-reduces gradients during backward; with accumulation only the last micro-step needs it."""
        if last_micro_step or not isinstance(self.forward, DistributedDataParallel):
            return contextlib.nullcontext()
        return self.forward.no_sync()

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.features.pin_memory:  # page-locked, so the copy overlaps the GPU's work instead of waiting for it
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _publish(self, pending, metrics, since: float) -> float:
        """Read a batch of step metrics back from the device (one sync; the loss averaged over ranks), check them,
        log and emit them."""
        if not pending:
            return since
        # Each row: loss, grad norm (already the same on every rank), and a distilled run's two loss parts
        stacked = torch.stack([torch.stack([loss.float(), norm.float(), *(() if parts is None else parts.float())])
                               for _, _, loss, norm, parts in pending])
        rows = self.dist.mean(stacked).tolist()
        values, parts = [row[:2] for row in rows], [row[2:] for row in rows]
        now = time.perf_counter()
        self.elapsed += now - since
        rate = len(pending) * self.tokens_per_step / max(now - since, 1e-9)
        first_tokens = self.tokens_seen - (len(pending) - 1) * self.tokens_per_step
        bad = next((i for i, (loss, _) in enumerate(values) if not math.isfinite(loss)), None)
        events = [ev.StepMetrics(step, first_tokens + i * self.tokens_per_step, loss, lr, norm, rate, self.elapsed,
                                 *parts[i])
                  for i, ((step, lr, *_), (loss, norm)) in enumerate(zip(pending[:bad], values[:bad], strict=True))]
        self._record(metrics, events)
        if bad is not None:
            raise TrainingError(f"The training loss became {values[bad][0]} at step {pending[bad][0]}. "
                                + self._what_is_kept())
        for event in events:
            if self._diverged(event.loss):
                raise TrainingError(
                    f"The training loss diverged: smoothed, it reached {self.smoothed_loss:.4g} at step {event.step}, "
                    f"up from {self.first_loss:.4g} at the start. " + self._what_is_kept())
        return now

    def _diverged(self, loss: float) -> bool:
        """Whether the smoothed training loss, with `loss` just in, has grown far past the run's first loss."""
        if self.first_loss is None:
            self.first_loss = loss
        smoothed = self.smoothed_loss
        self.smoothed_loss = loss if smoothed is None else LOSS_SMOOTHING * smoothed + (1 - LOSS_SMOOTHING) * loss
        return self.smoothed_loss > max(DIVERGED_FACTOR * self.first_loss, self.first_loss + DIVERGED_NATS)

    def _what_is_kept(self) -> str:
        """For a run stopped by a bad loss: the checkpoint that is really there, and what to do."""
        o = self.config.optim
        advice = (f"lower optim.lr (this run had {o.lr:g}) or set optim.grad_clip (this run had {o.grad_clip:g}; "
                  "0 is off)")
        try:
            step = checkpoint_meta(self.folder.checkpoint_path("last"))["step"]
        except (CheckpointError, KeyError):
            return (f"The run stopped before its first checkpoint (one is saved every train.eval_interval = "
                    f"{self.config.train.eval_interval} steps), so there is nothing to resume: {advice} and "
                    "start again.")
        return (f"The run stopped and keeps its last good checkpoint (step {step}). To go on, {advice} in a new "
                f'run; init_from = "{self.folder.path}" begins it from this run\'s best weights.')

    def _record(self, metrics, events: list) -> None:
        """Append events to metrics.jsonl and hand them to the subscribers (rank 0's job)."""
        if metrics is not None:
            metrics.writelines(json.dumps(metric_record(e)) + "\n" for e in events)
            metrics.flush()
        for event in events:
            self._emit(event)

    def evaluate(self, max_batches: int | None = None) -> EvalResult:
        """Validation loss over the whole split, or over `max_batches` (default train.eval_batches).
        With several ranks each evaluates its share and the sums are added up: every rank must call this."""
        if self.classify:  # every rank scores the whole validation split
            return self._evaluate_classifier(self.classify)[0]
        limit = self.config.train.eval_batches if max_batches is None else max_batches
        ids = self._validation_ids(limit)
        rnn = self.model.family == "rnn"
        result = evaluate_ids(self.model, ids, self.config.train.context, self.device, self.autocast,
                              limit if rnn else 0, self.mlm)
        if self.dist.world_size == 1 or rnn:
            return result
        right = (result.accuracy or 0.0) * result.tokens
        loss_sum, tokens, right = self.dist.sum([result.loss * result.tokens, result.tokens, right])
        return EvalResult(loss_sum / tokens, int(tokens), None if result.accuracy is None else right / tokens)

    def _validation_ids(self, max_batches: int):
        """This rank's part of the validation split: its share of a Transformer's windows (of the first
        `max_batches` batches, if > 0). An RNN's carried state ties its result to one layout of streams, so every
        rank evaluates the whole split."""
        if self.model.family == "rnn":
            return self.val_ids
        return rank_windows(self.val_ids, self.config.train.context, self.dist.rank, self.dist.world_size,
                            max_batches * eval_batch_size("transformer"), self.model.family)

    def _evaluate_classifier(self, task: ClassifyTask) -> tuple[EvalResult, ev.ClassifyMetrics]:
        return task.evaluate(cast(TextClassifier, self.model), self.step, self.device, self.autocast)

    def _evaluate(self, metrics) -> None:
        result, scores = self._evaluate_classifier(self.classify) if self.classify else (self.evaluate(), None)
        val_loss = result.loss
        if not math.isfinite(val_loss):
            raise TrainingError(f"The validation loss became {val_loss} at step {self.step}; "
                                "lower optim.lr or set optim.grad_clip, then start again.")
        # bits/char: for next-token models only
        whole = self.config.train.eval_batches == 0 and self.mlm is None and scores is None
        bpc = result.bits_per_char(self.val_chars / len(self.val_ids)) if whole else None
        # a classifier's best checkpoint is the best by classify.metric, and best_val_loss that checkpoint's loss
        improved = (self.classify.observe(scores) if self.classify and scores else
                    self.best_val_loss is None or val_loss < self.best_val_loss)
        self.schedule.observe_validation(val_loss)
        if improved:
            self.best_val_loss = val_loss
        event = ev.EvalMetrics(self.step, self.tokens_seen, self.elapsed, val_loss, result.perplexity, bpc, improved,
                               result.accuracy)
        self._record(metrics, [event] if scores is None else [event, scores])
        if improved:
            self._save("best")
        self._save("last")
        self._status("running", "", step=self.step, best_val_loss=self.best_val_loss)


def _detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def _resume_settings(config: RunConfig, overrides: Sequence[str]) -> tuple[RunConfig, list[str]]:
    """`config` with `--set` overrides applied for a resumed run, and the changes in words. ConfigError for a
    setting a resume cannot change."""
    raw = config_to_dict(config)
    for override in overrides:
        key = override.partition("=")[0].strip()
        if key not in RESUMABLE_SETTINGS:
            raise ConfigError(
                f"--set {key} cannot change when a run resumes: the run would no longer be the one its checkpoint "
                f"continues. Only {', '.join(RESUMABLE_SETTINGS)} can; for other changes start a new run (with "
                'init_from = "RUN_FOLDER" it begins from this run\'s best weights).')
        apply_override(raw, override)
    changed = config_from_dict(raw, source="--set")
    old, new = config.train, changed.train
    changes = [f"train.{name} = {getattr(new, name)} (was {getattr(old, name)})"
               for name in (key.removeprefix("train.") for key in RESUMABLE_SETTINGS)
               if getattr(new, name) != getattr(old, name)]
    if new.max_steps != old.max_steps:
        if new.epochs > 0:
            raise ConfigError(f"--set train.max_steps has no effect on this run: its length is set by train.epochs "
                              f"= {new.epochs:g}, which a resume cannot change.")
        if changed.schedule.kind == "cosine" and not changed.schedule.decay_steps:
            changes.append(f"the cosine decay now ends at step {new.max_steps}, as schedule.decay_steps = 0 "
                           "follows train.max_steps")
    return changed, changes
