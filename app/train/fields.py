"""The settings the Train form shows: each names the RunConfig key it edits, its label, its editor and when it
applies. What a setting does, its unit and its range are lmcore's (the config dataclasses' field metadata, read with
lmcore.config.setting_field): the tooltips and the spin boxes' ranges come from there. The form is built from this
table, so adding a setting is one entry."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QLineEdit, QSpinBox, QStyle

import torch

from lmcore.config import setting_field
from lmcore.device import DEVICE_CHOICES, pick_device
from lmcore.errors import ConfigError

from .corpus_picker import LABELLED_FILES

BY_STEPS, BY_EPOCHS = "steps", "epochs"
TRAIN_BY = "train.by"  # a form-only choice: whether train.max_steps or train.epochs sets the length
GPUS = "launch.gpus"  # a form-only choice: how many processes (one per GPU) torchrun starts
# A form-only choice: what the model learns. A masked language model is task "lm" with an encoder, offered as a
# task of its own since that is how people name it
TASK = "run.task"
LANGUAGE_MODEL, MASKED_LM, CLASSIFIER = "lm", "masked", "classify"
FORM_ONLY = (TRAIN_BY, GPUS, TASK)
WIDE = 1_000_000_000  # a spin box's top where a setting has no upper bound


@dataclass(frozen=True)
class Field:
    key: str  # "section.name" in RunConfig (model.* are the model table's keys)
    label: str
    editor: str = "int"  # "int" | "number" | "choice" | "bool" | "text" | "list" | "file"
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) for "choice"
    show_if: tuple[str, tuple[str, ...]] | None = None  # (key, values): shown while that field holds one
    thousands: bool = True  # "int": show 2,000 rather than 2000 (not for a seed, which is a name)
    tip: str = ""  # a form-only choice's help; a setting's is lmcore's
    high: int = WIDE  # a form-only count's largest value; a setting's range is lmcore's
    files: str = ""  # "file": the file dialog's filter


def field_tip(field: Field, family: str = "transformer") -> str:
    """What the field does and its sensible values: the setting's help in lmcore (the family's, for model.*)."""
    spec = setting_field(field.key, family)
    return spec.metadata["help"] if spec is not None else field.tip


def int_range(field: Field) -> tuple[int, int]:
    """The whole numbers a spin box offers: the setting's range in lmcore."""
    spec = setting_field(field.key)
    meta = spec.metadata if spec is not None else {"at_least": 1, "at_most": field.high}
    low = meta["at_least"] if "at_least" in meta else math.floor(meta["above"]) + 1 if "above" in meta else 0
    high = meta["at_most"] if "at_most" in meta else math.ceil(meta["below"]) - 1 if "below" in meta else WIDE
    return int(low), int(high)


def available_devices() -> tuple[tuple[str, str], ...]:
    labels = {"auto": "Auto (best available)", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (MPS)"}
    usable = []
    for choice in DEVICE_CHOICES:
        try:
            pick_device(choice)
        except ConfigError:
            continue
        usable.append((choice, labels[choice]))
    return tuple(usable)


def gpu_fields() -> tuple[Field, ...]:
    """With several CUDA GPUs visible, how many to train on: one process each, through torchrun (DDP)."""
    count = torch.cuda.device_count()
    if count < 2:
        return ()
    return (Field(GPUS, "GPUs", show_if=("train.device", ("auto", "cuda")), high=count,
                  tip=f"How many of the {count} GPUs to train on, one process each (DistributedDataParallel); the "
                      "batch size is per GPU."),)


WORD = ("tokenizer.kind", ("word",))
SPM = ("tokenizer.kind", ("sentencepiece",))
TRANSFORMER = ("model.family", ("transformer", "encoder"))  # an encoder is built of the same blocks
RNN = ("model.family", ("rnn",))
MLP = ("model.family", ("mlp",))
CONV = ("model.family", ("conv",))
HIDDEN_LAYERS = ("model.family", ("rnn", "mlp"))
TIED = ("model.family", ("transformer", "encoder", "rnn", "conv"))  # the MLP's output reads no embedding table
CLASSIFYING = (TASK, (CLASSIFIER,))

SECTIONS: tuple[tuple[str, bool, tuple[Field, ...]], ...] = (  # (title, expanded at start, fields)
    ("Run", True, (
        Field("name", "Name", "text"),
        Field(TASK, "Task", "choice", ((LANGUAGE_MODEL, "Language model"), (MASKED_LM, "Masked language model"),
                                       (CLASSIFIER, "Classifier")),
              tip="What the model learns: to continue text (a GPT or an RNN), to fill in masked tokens (an encoder, "
                  "BERT-style), or to label texts (a classifier, trained on a labelled .tsv, .csv or .jsonl file; "
                  "its body is new, or a trained run's: select that run and press Fine-tune)."),
    )),
    ("Corpus", True, (  # the corpus picker itself is placed above these
        Field("data.encoding_errors", "Bad bytes", "choice", (("strict", "Stop and explain"),
                                                              ("replace", "Replace with �"))),
        Field("data.val_fraction", "Validation share", "number"),
        Field("data.val", "Validation file", "file", show_if=CLASSIFYING, files=LABELLED_FILES),
    )),
    ("Classifier", True, (
        Field("classify.pooling", "Pooling", "choice", (("auto", "Auto"), ("cls", "[CLS] token"),
                                                        ("last", "Last token"), ("mean", "Mean of tokens"),
                                                        ("final", "Final state (RNN)")), show_if=CLASSIFYING),
        Field("classify.freeze_body", "Freeze body", "bool", show_if=CLASSIFYING),
        Field("classify.body_lr_scale", "Body LR scale", "number", show_if=CLASSIFYING),
        Field("classify.class_weights", "Balance classes", "bool", show_if=CLASSIFYING),
        Field("classify.early_stopping", "Early stopping", show_if=CLASSIFYING),
        Field("classify.metric", "Best by", "choice", (("accuracy", "Accuracy"), ("macro_f1", "Macro-F1")),
              show_if=CLASSIFYING),
        Field("classify.labels", "Labels", "list", show_if=CLASSIFYING),
        Field("classify.text_field", "Text column", "text", show_if=CLASSIFYING),
        Field("classify.label_field", "Label column", "text", show_if=CLASSIFYING),
        Field("classify.test", "Test file", "file", show_if=CLASSIFYING, files=LABELLED_FILES),
    )),
    ("Tokenizer", False, (
        Field("tokenizer.kind", "Tokens", "choice",
              (("char", "Characters"), ("word", "Words"), ("sentencepiece", "Subwords (SentencePiece)"),
               ("huggingface", "Imported (Hugging Face)"))),
        Field("tokenizer.lowercase", "Lower-case", "bool", show_if=WORD),
        Field("tokenizer.max_vocab", "Max words", show_if=WORD),
        Field("tokenizer.min_count", "Min count", show_if=WORD),
        Field("tokenizer.segmenter", "Split at", "choice", (("whitespace", "Spaces"), ("jieba", "Chinese words (jieba)")),
              show_if=WORD),
        Field("tokenizer.vocab_size", "Vocabulary", show_if=SPM),
        Field("tokenizer.model_type", "Algorithm", "choice", (("bpe", "BPE"), ("unigram", "Unigram")), show_if=SPM),
        Field("tokenizer.character_coverage", "Coverage", "number", show_if=SPM),
    )),
    ("Model", True, (
        Field("model.family", "Family", "choice", (("transformer", "Transformer (GPT)"),
                                                   ("rnn", "Recurrent (LSTM, GRU)"),
                                                   ("encoder", "Encoder (BERT, masked LM)"),
                                                   ("mlp", "Feed-forward n-gram (MLP)"),
                                                   ("conv", "Convolutional (gated CNN)")),
              show_if=(TASK, (LANGUAGE_MODEL, CLASSIFIER))),  # a masked LM is an encoder
        Field("model.cell", "Cell", "choice",
              (("lstm", "LSTM"), ("gru", "GRU"), ("rnn_tanh", "RNN (tanh)"), ("rnn_relu", "RNN (ReLU)")),
              show_if=RNN),
        Field("model.n_gram", "n-gram", show_if=MLP),
        Field("model.n_layer", "Layers"),
        Field("model.n_head", "Heads", show_if=TRANSFORMER),
        Field("model.n_embd", "Embedding"),
        Field("model.n_hidden", "Hidden size", show_if=HIDDEN_LAYERS),
        Field("model.kernel_size", "Kernel", show_if=CONV),
        Field("model.dilation_cycle", "Dilation cycle", show_if=CONV),
        Field("model.dropout", "Dropout", "number"),
        Field("model.positional", "Positions", "choice",
              (("learned", "Learned"), ("sinusoidal", "Sinusoidal"), ("rotary", "Rotary (RoPE)")),
              show_if=TRANSFORMER),
        Field("model.bias", "Biases", "bool", show_if=TRANSFORMER),
        Field("model.direct", "Direct links", "bool", show_if=MLP),
        Field("model.tie_embeddings", "Tie embeddings", "bool", show_if=TIED),
    )),
    ("Optimizer", False, (
        Field("optim.name", "Optimizer", "choice", (("adamw", "AdamW"), ("adam", "Adam"), ("sgd", "SGD"))),
        Field("optim.lr", "Learning rate", "number"),
        Field("optim.momentum", "Momentum", "number", show_if=("optim.name", ("sgd",))),
        Field("optim.weight_decay", "Weight decay", "number"),
        Field("optim.grad_clip", "Gradient clip", "number"),
    )),
    ("Schedule", False, (
        Field("schedule.kind", "Schedule", "choice",
              (("cosine", "Cosine decay"), ("plateau", "Cut on plateau"), ("constant", "Constant"))),
        Field("schedule.warmup_steps", "Warm-up steps"),
        Field("schedule.min_lr", "Final rate", "number", show_if=("schedule.kind", ("cosine",))),
        Field("schedule.decay_steps", "Decay steps", show_if=("schedule.kind", ("cosine",))),
        Field("schedule.plateau_factor", "Cut factor", "number", show_if=("schedule.kind", ("plateau",))),
        Field("schedule.plateau_patience", "Patience", show_if=("schedule.kind", ("plateau",))),
    )),
    ("Training", True, (
        Field("train.batch_size", "Batch size"),
        Field("train.context", "Context"),
        Field(TRAIN_BY, "Train for", "choice", ((BY_STEPS, "Steps"), (BY_EPOCHS, "Epochs")),
              tip="A number of optimizer steps, or of passes (epochs) over the training text."),
        Field("train.max_steps", "Steps", show_if=(TRAIN_BY, (BY_STEPS,))),
        Field("train.epochs", "Epochs", "number", show_if=(TRAIN_BY, (BY_EPOCHS,))),
        Field("train.eval_interval", "Evaluate every"),
        Field("train.device", "Device", "choice", available_devices()),
        *gpu_fields(),
        Field("train.seed", "Seed", thousands=False),
        Field("train.tensorboard", "TensorBoard", "bool"),
    )),
    ("Distillation", False, (
        Field("distill.teacher", "Teacher run", "text"),
        Field("distill.alpha", "Text weight", "number"),
        Field("distill.temperature", "Temperature", "number"),
    )),
)
FIELDS = {field.key: field for _, _, fields in SECTIONS for field in fields}


class WheelNeedsFocus:
    """Scrolling the form over a spin box or list must scroll the form, not change the value under the mouse."""

    def wheelEvent(self, event) -> None:
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class Editor:
    """What the form asks of an editor: `edited`, the widget's signal named by EDITED; config_value(), the value for
    the config; show_value(value)."""

    EDITED: str

    def __init__(self, field: Field):
        super().__init__()
        self.edited = getattr(self, self.EDITED)


class IntEditor(Editor, WheelNeedsFocus, QSpinBox):
    EDITED = "valueChanged"
    config_value = QSpinBox.value

    def __init__(self, field: Field):
        super().__init__(field)
        self.setRange(*int_range(field))
        self.setGroupSeparatorShown(field.thousands)

    def show_value(self, value) -> None:
        self.setValue(int(value))


class NumberEditor(Editor, QLineEdit):
    """A float as text, so 3e-4 can be typed as such; text that is not a number is reported by name."""

    EDITED = "textChanged"

    def __init__(self, field: Field):
        super().__init__(field)
        self.key = field.key

    def config_value(self) -> float:
        try:
            return float(self.text().strip())
        except ValueError:
            raise ConfigError(f"{self.key} = {self.text()!r} is not a number; type one like 0.1 or 3e-4.",
                              field=self.key) from None

    def show_value(self, value) -> None:
        self.setText(f"{float(value):g}")


class ChoiceEditor(Editor, WheelNeedsFocus, QComboBox):
    EDITED = "currentIndexChanged"
    config_value = QComboBox.currentData

    def __init__(self, field: Field):
        super().__init__(field)
        for value, label in field.choices:
            self.addItem(label, value)

    def show_value(self, value) -> None:
        index = self.findData(value)
        if index < 0:  # a value this build does not offer (e.g. a preset asking for "cuda" on a CPU machine)
            self.addItem(str(value), value)
            index = self.count() - 1
        self.setCurrentIndex(index)


class CheckEditor(Editor, QCheckBox):
    EDITED = "toggled"
    config_value = QCheckBox.isChecked

    def show_value(self, value) -> None:
        self.setChecked(bool(value))


class TextEditor(Editor, QLineEdit):
    EDITED = "textChanged"

    def config_value(self) -> str:
        return self.text().strip()

    def show_value(self, value) -> None:
        self.setText(str(value))


class ListEditor(TextEditor):
    """A list of names, typed with SEPARATOR between them."""

    SEPARATOR = ","

    def config_value(self) -> list[str]:
        return [name.strip() for name in self.text().split(self.SEPARATOR) if name.strip()]

    def show_value(self, value) -> None:
        self.setText(f"{self.SEPARATOR} ".join(value))


class FileEditor(ListEditor):
    """A file's path, typed or chosen with the folder button at its end (several typed with "; " between them)."""

    SEPARATOR = ";"

    def __init__(self, field: Field):
        super().__init__(field)
        self.files = field.files
        self.setPlaceholderText("None")
        self.browse = self.addAction(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon),
                                     QLineEdit.ActionPosition.TrailingPosition)
        self.browse.setToolTip("Choose a file")
        self.browse.triggered.connect(self._choose)

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", self.text().strip() or str(Path.home()),
                                              self.files)
        if path:
            self.setText(path)


EDITORS = {"int": IntEditor, "number": NumberEditor, "choice": ChoiceEditor, "bool": CheckEditor,
           "text": TextEditor, "list": ListEditor, "file": FileEditor}


def make_editor(field: Field):
    editor = EDITORS[field.editor](field)
    editor.setToolTip(field_tip(field))
    editor.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not focused by the wheel (see WheelNeedsFocus)
    return editor
