"""Training from a notebook, or any Python: one call, with a progress bar and no subscribing by hand.

    import lmcore
    trainer = lmcore.train(text=my_string)                          # RunConfig's defaults; a run folder in ./runs
    trainer = lmcore.train("resources/presets/baby-gpt-char.toml")  # a config file (or a RunConfig)
    trainer = lmcore.train(config, text=my_string, progress=False)  # the config's settings, trained on the string

The bar is tqdm's (tqdm.auto: a widget in Jupyter, text elsewhere) when tqdm is installed, else lmcore's own line,
the one `lmcore train` draws. A string to train on is written into the new run folder (Trainer.from_text), so the
folder holds all the run learned from. Interrupting the kernel stops the run with a checkpoint, as Ctrl-C does.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from .config import RunConfig, load_config
from .progress import ProgressBar, ending_text, eval_text, started_text, step_readout

if TYPE_CHECKING:
    from .trainer import Trainer


def train(config: RunConfig | str | Path | None = None, *, text: str | None = None, progress: bool = True,
          runs_dir: str | Path | None = None) -> Trainer:
    """Train a new run to its end and return its trainer (trainer.model, trainer.tokenizer, trainer.folder.path;
    its status is trainer.folder.read_status()["status"]). `config` is a RunConfig, a TOML file, or None for
    RunConfig's defaults; with `text` the run trains on that string instead of config.data.train. `progress` shows a
    progress bar; train.tensorboard = true writes TensorBoard files too, as `lmcore train` does."""
    from . import tensorboard
    from .trainer import Trainer

    if isinstance(config, (str, Path)):
        config = load_config(config)
    config = config or RunConfig()
    tensorboard.check(config)
    trainer = Trainer.new(config, runs_dir) if text is None else Trainer.from_text(text, config, runs_dir)
    tensorboard.attach(trainer)
    if progress:
        trainer.subscribe(progress_bar())
    trainer.run()
    return trainer


def progress_bar() -> Callable[[object], None]:
    """A subscriber that draws a run's progress: tqdm's notebook-aware bar where tqdm is installed, else lmcore's
    own line (redrawn in place in a Jupyter notebook, which understands a carriage return)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return ProgressBar(overwrite=True if "ipykernel" in sys.modules else None)
    return TqdmProgress(tqdm)


class TqdmProgress:
    """A run's progress as a tqdm bar of steps, with loss, tokens/s and MFU beside it; preparation, evaluations and
    the run's end as lines above it."""

    def __init__(self, tqdm: Any):
        self.tqdm, self.bar = tqdm, None
        self.flops_per_token = 0.0
        self.peak_flops: float | None = None

    def __call__(self, event: object) -> None:
        if isinstance(event, ev.Preparing) and event.fraction is None:  # not every percent of a long encoding
            self.tqdm.write(event.message)
        elif isinstance(event, ev.Started):
            self.flops_per_token, self.peak_flops = event.flops_per_token, event.peak_flops
            self.tqdm.write(started_text(event))
            self.bar = self.tqdm(total=event.max_steps, initial=event.start_step, unit="step",
                                 desc=Path(event.run_dir).name)
        elif isinstance(event, ev.StepMetrics) and self.bar is not None:
            self.bar.set_postfix_str(step_readout(event, self.flops_per_token, self.peak_flops), refresh=False)
            self.bar.update(event.step - self.bar.n)
        elif isinstance(event, ev.EvalMetrics):
            self.tqdm.write(eval_text(event))
        elif isinstance(event, (ev.Finished, ev.Failed)):
            if self.bar is not None:
                self.bar.close()
            self.tqdm.write(ending_text(event))
