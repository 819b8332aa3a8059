"""TensorBoard event files for a run, in its own folder: RUN/tensorboard/.

With train.tensorboard = true, `lmcore train` (so also the window, whose training process is `lmcore train --events
-`) and `lmcore.train(...)` attach a TensorBoardLogger to the trainer: the scalars of every step and evaluation, at
the run's end its config as hparams with the final results, and at each evaluation a sample of text (causal models:
the Transformer and the RNN). `lmcore export tensorboard RUN...` writes the same from a run's metrics.jsonl and
config.toml, without samples. Then:

    tensorboard --logdir runs

TensorBoard is an optional extra (pip install 'lm-workbench[tensorboard]'): lmcore imports without it, and the
setting asks for it by name.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from .config import RunConfig, config_to_dict
from .errors import ConfigError, LMCoreError
from .metrics import read_metric_events
from .runs import RunFolder

if TYPE_CHECKING:
    from .trainer import Trainer

EXTRA = "pip install 'lm-workbench[tensorboard]'"
FOLDER = "tensorboard"  # in the run folder
STEP_TAGS = {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm",
             "tokens_per_s": "train/tokens_per_s"}
EVAL_TAGS = {"val_loss": "val/loss", "val_perplexity": "val/perplexity", "val_bits_per_char": "val/bits_per_char",
             "val_accuracy": "val/accuracy"}
BEST_TAG, STEP_TAG = "final/best_val_loss", "final/step"  # the hparams' metrics, also written as scalars
SAMPLE_TAG = "samples"
SAMPLE_FAMILIES = ("transformer", "rnn", "mlp", "conv")  # causal models, which continue a prompt
SAMPLE_PROMPT_TOKENS = 16  # the prompt: the validation text's first tokens, the same at every evaluation
SAMPLE_TOKENS = 200
EXPORT_NOTE = ("Exported by `lmcore export tensorboard` from metrics.jsonl and config.toml: no text samples, which "
               "only a run trained with train.tensorboard = true has.")


def summary_writer_class() -> Any:
    """torch's SummaryWriter; a ConfigError naming the extra when the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401 - torch.utils.tensorboard may be imported already; the package must be there
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(f"train.tensorboard = true needs the tensorboard package, which is not installed: {EXTRA} "
                          "(or pip install tensorboard), or set train.tensorboard = false.",
                          field="train.tensorboard") from None
    return SummaryWriter


def check(config: RunConfig) -> None:
    """Before a run folder is made: ConfigError when the config asks for TensorBoard and it is not installed."""
    if config.train.tensorboard:
        summary_writer_class()


def flat_config(config: RunConfig) -> dict[str, bool | int | float | str]:
    """The config as TensorBoard hparams: "section.key" -> a number, text or bool (a list as its JSON)."""
    flat: dict[str, bool | int | float | str] = {}
    for name, value in config_to_dict(config).items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        for key, item in items:
            flat[f"{name}.{key}" if key else name] = (item if isinstance(item, (bool, int, float, str))
                                                      else json.dumps(item))
    return flat


class EventWriter:
    """A run's tensorboard/ folder, written through torch's SummaryWriter. `purge_step` (a resumed run's first
    step) hides what an earlier writer logged from that step on: the steps a resume trains again."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.writer = summary_writer_class()(str(Path(run_dir) / FOLDER), purge_step=purge_step, flush_secs=10)

    def metrics(self, event: ev.StepMetrics | ev.EvalMetrics, walltime: float | None = None) -> None:
        tags = STEP_TAGS if isinstance(event, ev.StepMetrics) else EVAL_TAGS
        for name, tag in tags.items():
            value = getattr(event, name)
            if value is not None:  # bits per character: only over the whole validation split; accuracy: masked LMs'
                self.writer.add_scalar(tag, value, event.step, walltime=walltime)

    def results(self, config: RunConfig, best_val_loss: float | None, step: int) -> None:
        """The config as hparams, with the run's results as their metrics (TensorBoard's HParams tab)."""
        from torch.utils.tensorboard.summary import hparams

        final = {STEP_TAG: float(step)}
        if best_val_loss is not None:
            final[BEST_TAG] = best_val_loss
        for summary in hparams(flat_config(config), final):
            self.writer._get_file_writer().add_summary(summary, step)
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def code_block(text: str) -> str:
    """Text as TensorBoard shows it verbatim (its text tab reads Markdown): indented four spaces a line."""
    return "\n".join("    " + line for line in text.split("\n"))


def sample_text(trainer: Trainer) -> str:
    """A short continuation of a fixed prompt (the validation text's first tokens) by the model as it is now, with
    the run's seed, so samples at successive evaluations differ only by what the model has learned."""
    from .generation import SamplingSettings, generate

    ids = [int(i) for i in trainer.val_ids[:SAMPLE_PROMPT_TOKENS]]
    settings = SamplingSettings(max_new_tokens=SAMPLE_TOKENS, seed=trainer.config.train.seed)
    continuation = "".join(token.text for token in generate(trainer.model, trainer.tokenizer, ids, settings,
                                                            trainer.device))
    return code_block(trainer.tokenizer.decode(ids) + continuation)


class TensorBoardLogger:
    """A trainer's subscriber that writes its TensorBoard files; `sample` is its periodic task (every
    train.eval_interval steps), which writes a sample of text. See attach()."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.writer: EventWriter | None = None
        self.sampled_step: int | None = None

    def __call__(self, event: object) -> None:
        if isinstance(event, ev.Started):
            self.writer = EventWriter(event.run_dir, purge_step=event.start_step + 1 if event.start_step else None)
            return
        if self.writer is None:
            return
        if isinstance(event, (ev.StepMetrics, ev.EvalMetrics)):
            self.writer.metrics(event)
            if isinstance(event, ev.EvalMetrics):
                self.writer.flush()
        elif isinstance(event, ev.Finished):
            if event.status == "finished" and self.sampled_step != event.step:  # the last evaluation's sample
                self.sample(self.trainer)
            self.writer.results(self.trainer.config, event.best_val_loss, event.step)
            self.writer.close()
        elif isinstance(event, ev.Failed):
            self.writer.close()

    def sample(self, trainer: Trainer) -> None:
        if self.writer is None or trainer.model.family not in SAMPLE_FAMILIES:
            return
        try:
            text = sample_text(trainer)
        except LMCoreError as exc:  # a sample is worth a note, not the run
            text = f"No sample: {exc}"
        self.writer.text(SAMPLE_TAG, text, trainer.step)
        self.sampled_step = trainer.step


def attach(trainer: Trainer) -> TensorBoardLogger | None:
    """When the run's config says train.tensorboard = true, have it write its TensorBoard files as it trains (rank 0
    alone under torchrun); a ConfigError naming the extra when the package is missing. Call it before run()."""
    if not trainer.config.train.tensorboard or not trainer.dist.is_main:
        return None
    summary_writer_class()
    logger = TensorBoardLogger(trainer)
    trainer.subscribe(logger)
    trainer.add_periodic(trainer.config.train.eval_interval, logger.sample)
    return logger


def export_run(run_dir: Path, replace: bool = False) -> Path:
    """Write RUN/tensorboard/ from a run's metrics.jsonl and config.toml: the scalars and hparams a run trained with
    train.tensorboard = true has, without its text samples. Refuses to add to TensorBoard files already there
    unless `replace`, which deletes them first. Returns the folder written."""
    folder = RunFolder(Path(run_dir))
    config = folder.load_config()
    # a classifier's per-label metrics have no scalar tags; its accuracy comes with each EvalMetrics
    events = [e for e in read_metric_events(folder.metrics_path) if not isinstance(e, ev.ClassifyMetrics)]
    if not events:
        raise LMCoreError(f"{run_dir} has no metrics to export: its metrics.jsonl is missing or empty.")
    out = folder.path / FOLDER
    existing = sorted(out.glob("events.out.tfevents.*"))
    if existing and not replace:
        raise LMCoreError(f"{out} already holds TensorBoard files (the run was trained with train.tensorboard = "
                          "true, or exported before); add --replace to write them afresh.")
    for path in existing:
        path.unlink()
    writer = EventWriter(folder.path)
    origin = folder.metrics_path.stat().st_mtime - events[-1].elapsed  # when training began, near enough
    for event in events:
        writer.metrics(event, walltime=origin + event.elapsed)
    best = folder.read_status().get("best_val_loss")
    if not isinstance(best, (int, float)) or not math.isfinite(best):
        best = min((e.val_loss for e in events if isinstance(e, ev.EvalMetrics)), default=None)
    writer.text("note", EXPORT_NOTE, events[-1].step)
    writer.results(config, best, events[-1].step)
    writer.close()
    return out
