"""lmcore: the LM Workbench engine. Headless (no Qt): tokenizers, corpora, models, trainer, checkpoints,
generation and attention capture, driven the same way by the GUI, the `lmcore` CLI, the tests and torchrun.

    from lmcore import Trainer, load_config
    trainer = Trainer.new(load_config("resources/presets/baby-gpt-char.toml"))
    trainer.subscribe(print)
    trainer.run()

or, with a progress bar (tqdm's in a notebook, where installed), on a file's settings or a string of text:

    trainer = lmcore.train("resources/presets/baby-gpt-char.toml")
    trainer = lmcore.train(text=my_string)
"""
from importlib.metadata import PackageNotFoundError, version

from .checkpoint import load_trained_model
from .config import RunConfig, load_config
from .errors import LMCoreError
from .generation import SamplingSettings, generate, generate_batch, score_text
from .notebook import train
from .runs import list_runs

try:
    __version__ = version("lm-workbench")  # one place for the version: pyproject.toml, through the package metadata
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
__all__ = ["RunConfig", "load_config", "LMCoreError", "SamplingSettings", "generate", "generate_batch", "score_text",
           "list_runs", "load_trained_model", "Trainer", "train", "__version__"]


def __getattr__(name: str):
    """Trainer on first use: a program that only supervises training (the app) never loads the trainer and
    torch.distributed with it."""
    if name == "Trainer":
        from .trainer import Trainer
        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
