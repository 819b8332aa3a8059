"""Errors a user can act on. Each message names the file, field or value at fault and says what to do."""


class LMCoreError(Exception):
    """A problem with the user's input, files or settings (not a bug in lmcore)."""


class ConfigError(LMCoreError):
    """A setting is missing, has the wrong type or is out of range.

    `field` is the setting at fault as "section.name" ("optim.lr", "model.n_head", "name"), or None when the
    problem is no one setting's (a missing file, broken TOML); `also` names the other settings a rule across
    several involves ("model.n_head" when model.n_embd does not divide by it), so a form can mark them too."""

    def __init__(self, message: str, field: str | None = None, also: tuple[str, ...] = ()):
        super().__init__(message)
        self.field = field
        self.also = also

    def __reduce__(self):  # pickled whole, as lmcore.distributed hands rank 0's error to the other ranks
        return type(self), (str(self), self.field, self.also)


class CorpusError(LMCoreError):
    """A corpus file or folder cannot be used for training."""


class TokenizerError(LMCoreError):
    """Text cannot be tokenized, or a tokenizer cannot be built or loaded."""


class CheckpointError(LMCoreError):
    """A checkpoint or run folder is missing, corrupt, or not one of ours."""


class TrainingError(LMCoreError):
    """Training had to stop: the loss diverged, memory ran out, or the disk is full."""


class InteropError(LMCoreError):
    """Another tool's model cannot be imported (its files, its architecture), or a run cannot be exported to the
    format asked for."""
