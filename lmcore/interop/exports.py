"""A run's model out to other tools: `lmcore export RUN --to hf|onnx|safetensors DIR`.

- hf: a GPT2LMHeadModel or (rotary positions) GPTNeoXForCausalLM folder (huggingface.py);
- onnx: model.onnx mapping input_ids [batch, tokens] to logits [batch, tokens, vocab], checked with onnxruntime
  against our model before the export is reported done;
- safetensors: the weights alone (no optimizer state) with the model config in the file's header and beside it
  as config.json, and the run's tokenizer folder.
Each writes into DIR (made if needed) and returns the files it wrote.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import cast

import torch
from safetensors.torch import save_file

from ..checkpoint import TOKENIZER_DIR, load_trained_model, resolve_checkpoint, unique_tensors
from ..errors import InteropError
from ..models import LanguageModel, model_config_to_dict
from .huggingface import export_huggingface

EXPORT_FORMATS = ("hf", "onnx", "safetensors")
ONNX_FILE = "model.onnx"
ONNX_TOLERANCE = 1e-4  # largest difference in logits between onnxruntime and our model that passes the check
WEIGHTS_FORMAT = "lmcore-weights"


def export_run(run: str | Path, to: str, out: str | Path, which: str = "best") -> list[Path]:
    """Export run folder (or checkpoint file) `run`'s `which` checkpoint to format `to` in folder `out`."""
    if to not in EXPORT_FORMATS:
        raise InteropError(f"--to {to!r} is not a format to export to; choose one of {', '.join(EXPORT_FORMATS)}.")
    checkpoint = resolve_checkpoint(Path(run), which)
    loaded, tokenizer, _ = load_trained_model(checkpoint, which)
    model = cast(LanguageModel, loaded)
    out = Path(out)
    before = set(out.rglob("*")) if out.is_dir() else set()
    if to == "hf":
        export_huggingface(model, tokenizer, out)
    elif to == "onnx":
        export_onnx(model, out / ONNX_FILE)
    else:
        export_weights(model, checkpoint.parent.parent / TOKENIZER_DIR, out)
    return sorted(p for p in out.rglob("*") if p.is_file() and p not in before)


def export_weights(model: LanguageModel, tokenizer_dir: Path, out: Path) -> None:
    """model.safetensors (our tensor names; a tied weight once), config.json and tokenizer/."""
    out.mkdir(parents=True, exist_ok=True)
    config = model_config_to_dict(model.config)
    tensors, tied = unique_tensors(model.state_dict())
    save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, out / "model.safetensors",
              metadata={"format": WEIGHTS_FORMAT, "model": json.dumps(config), "tied": json.dumps(sorted(tied))})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    shutil.copytree(tokenizer_dir, out / TOKENIZER_DIR, dirs_exist_ok=True)


class LogitsOnly(torch.nn.Module):
    """input_ids -> logits: the one tensor an ONNX graph hands back, with no cache or state."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).logits


def export_onnx(model: LanguageModel, path: Path) -> None:
    """Write `path` and check it: onnxruntime's logits for random tokens must equal the model's (ONNX_TOLERANCE)."""
    if model.family not in ("transformer", "rnn"):
        raise InteropError(f"a {model.family} run does not export to ONNX here: GPT (Transformer) and RNN runs do.")
    if getattr(model.config, "adaptive_softmax_cutoffs", None):
        raise InteropError("this run has an adaptive softmax (model.adaptive_softmax_cutoffs), which does not export "
                           "to ONNX; export runs with a full softmax, or use --to safetensors.")
    onnx, onnxruntime = onnx_packages()
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    context = getattr(model.config, "context_length", None)  # None: an RNN reads any length
    # Batch and length 2 and up in the example: torch.export fixes a size of 1 as a constant.
    example = torch.randint(0, model.config.vocab_size, (2, min(8, context or 8)))
    tokens = torch.export.Dim("tokens", min=1, max=context) if context else torch.export.Dim("tokens", min=1)
    with quiet_exporter():
        torch.onnx.export(LogitsOnly(model).eval(), (example,), str(path), dynamo=True, verbose=False,
                          input_names=["input_ids"], output_names=["logits"],
                          dynamic_shapes={"input_ids": {0: torch.export.Dim("batch"), 1: tokens}})
    graph = onnx.load(str(path), load_external_data=False)  # large weights stay in model.onnx.data
    for dim, name in zip(graph.graph.output[0].type.tensor_type.shape.dim, ("batch", "tokens"), strict=False):
        dim.dim_param = name  # an RNN's output length is traced as the example's; it follows the input's
    onnx.save(graph, str(path))
    check_onnx(model, path, onnxruntime)


def check_onnx(model: LanguageModel, path: Path, onnxruntime) -> None:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    length = min(16, getattr(model.config, "context_length", 16))
    ids = torch.randint(0, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
    theirs = session.run(["logits"], {"input_ids": ids.numpy()})[0]
    with torch.no_grad():
        ours = model(ids).logits.numpy()
    worst = float(abs(theirs - ours).max())
    if worst > ONNX_TOLERANCE:
        path.unlink(missing_ok=True)
        raise InteropError(f"the ONNX graph's logits differ from the model's by up to {worst:.2g} (more than "
                           f"{ONNX_TOLERANCE}); {path} was removed. This is a bug in the export: please report it.")


def onnx_packages():
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401 - torch.onnx.export's exporter needs it
    except ImportError as exc:
        raise InteropError(f"ONNX export needs the onnx extra ({exc.name} is missing): "
                           "pip install 'lm-workbench[onnx]'.") from None
    return onnx, onnxruntime


@contextlib.contextmanager
def quiet_exporter():
    """torch.onnx.export's warnings and log lines are for PyTorch developers (deprecations inside the exporter,
    operators of packages we do not use); ours say what matters."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
