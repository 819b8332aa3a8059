"""Errors a user can act on. Each message names the file, field or value at fault and says what to do."""


class LMCoreError(Exception):
    """A problem with the user's input, files or settings (not a bug in lmcore)."""


class ConfigError(LMCoreError):
    """A setting is missing, has the wrong type or is out of range."""


class CorpusError(LMCoreError):
    """A corpus file or folder cannot be used for training."""


class TokenizerError(LMCoreError):
    """Text cannot be tokenized, or a tokenizer cannot be built or loaded."""


class CheckpointError(LMCoreError):
    """A checkpoint or run folder is missing, corrupt, or not one of ours."""


class TrainingError(LMCoreError):
    """Training had to stop: the loss diverged, memory ran out, or the disk is full."""
