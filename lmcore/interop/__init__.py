"""Models in and out: GPT-2 from a Hugging Face folder and nanoGPT checkpoints become run folders of ours
(import_huggingface, import_nanogpt); a run becomes a Hugging Face folder, an ONNX graph or plain safetensors
(export_run). Everything reads and writes files on disk; nothing is downloaded."""
from __future__ import annotations

from .exports import EXPORT_FORMATS, export_run
from .huggingface import import_huggingface
from .nanogpt import import_nanogpt

__all__ = ["EXPORT_FORMATS", "export_run", "import_huggingface", "import_nanogpt"]
