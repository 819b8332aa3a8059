"""An imported model as a run folder like any other: config.toml, tokenizer/, one checkpoint and a finished
status, so the runs browser lists it, and it generates, evaluates, shows its attention and fine-tunes (init_from)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..checkpoint import Checkpoint, save_checkpoint
from ..config import RunConfig, TrainConfig
from ..models import LanguageModel, model_config_to_dict
from ..runs import RunFolder
from ..tokenizers import Tokenizer, TokenizerConfig


def save_imported_run(model: LanguageModel, tokenizer: Tokenizer, name: str, runs_dir: str | Path, source: str,
                      corpus: list[str] | None = None) -> Path:
    """Write `model` and `tokenizer` as a new run `name` in `runs_dir`; `source` says where they came from (the
    status message), `corpus` the text it was trained on, when known (the fine-tune form starts from it)."""
    config = RunConfig(name=name, runs_dir=str(runs_dir), tokenizer=TokenizerConfig(kind=tokenizer.kind),
                       model=dataclasses.replace(model.config),
                       train=TrainConfig(context=getattr(model.config, "context_length", TrainConfig().context)))
    config.data.train = list(corpus or [])
    folder = RunFolder.create(Path(runs_dir), name)
    folder.save_config(config)
    tokenizer.save(folder.tokenizer_dir)
    meta = {"model": model_config_to_dict(model.config), "step": 0, "tokens_seen": 0, "best_val_loss": None,
            "tokenizer_fingerprint": tokenizer.fingerprint(), "imported_from": source}
    summary = {"step": 0, "tokens_seen": 0, "best_val_loss": None, "model": meta["model"],
               "parameters": model.num_parameters(), "imported_from": source}
    save_checkpoint(folder.checkpoint_path("last"), Checkpoint(meta, model.state_dict()), summary)
    folder.write_status("finished", f"imported from {source}", parameters=model.num_parameters(), step=0)
    return folder.path
