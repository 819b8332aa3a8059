"""The settings the Train form shows: each names the RunConfig key it edits, says what it does and its sensible
range (its tooltip), and when it applies. The form is built from this table, so adding a setting is one entry."""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

import torch

from lmcore.device import DEVICE_CHOICES, pick_device
from lmcore.errors import ConfigError

BY_STEPS, BY_EPOCHS = "steps", "epochs"
TRAIN_BY = "train.by"  # a form-only choice: whether train.max_steps or train.epochs sets the length
GPUS = "launch.gpus"  # a form-only choice: how many processes (one per GPU) torchrun starts
FORM_ONLY = (TRAIN_BY, GPUS)


@dataclass(frozen=True)
class Field:
    key: str  # "section.name" in RunConfig (model.* are the model table's keys)
    label: str
    tip: str  # what it does, and its sensible range
    editor: str = "int"  # "int" | "number" | "choice" | "bool" | "text"
    choices: tuple[tuple[str, str], ...] = ()  # (value, label) for "choice"
    low: int = 1  # "int" range; wide on purpose: RunConfig.validate() explains what is wrong
    high: int = 1_000_000_000
    show_if: tuple[str, tuple[str, ...]] | None = None  # (key, values): shown while that field holds one
    thousands: bool = True  # "int": show 2,000 rather than 2000 (not for a seed, which is a name)


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
    return (Field(GPUS, "GPUs", f"How many of the {count} GPUs to train on, one process each (DistributedDataParallel); "
                  "the batch size is per GPU.", low=1, high=count, show_if=("train.device", ("auto", "cuda"))),)


WORD = ("tokenizer.kind", ("word",))
SPM = ("tokenizer.kind", ("sentencepiece",))
TRANSFORMER = ("model.family", ("transformer",))
RNN = ("model.family", ("rnn",))

SECTIONS: tuple[tuple[str, bool, tuple[Field, ...]], ...] = (  # (title, expanded at start, fields)
    ("Run", True, (
        Field("name", "Name", "The run's name; its folder is the name plus the start time. Letters, digits, "
              "spaces, '-', '_' and '.', up to 100 characters.", "text"),
    )),
    ("Corpus", True, (  # the corpus picker itself is placed above these
        Field("data.encoding_errors", "Bad bytes", "What to do with bytes that are not valid UTF-8: stop and "
              "explain (safest), or replace them with � and train anyway.", "choice",
              (("strict", "Stop and explain"), ("replace", "Replace with �"))),
        Field("data.val_fraction", "Validation share", "Share of the text, taken from its end, held out to "
              "measure validation loss. 0.05 to 0.2; 0.1 is typical.", "number"),
    )),
    ("Tokenizer", False, (
        Field("tokenizer.kind", "Tokens", "How text becomes tokens. Characters: a tiny vocabulary, any text, long "
              "sequences. Words: whitespace-split words, a big vocabulary. Subwords: SentencePiece, the modern "
              "middle ground.", "choice",
              (("char", "Characters"), ("word", "Words"), ("sentencepiece", "Subwords (SentencePiece)"))),
        Field("tokenizer.lowercase", "Lower-case", "Lower-case every word first: a smaller vocabulary, but the "
              "model cannot write capitals.", "bool", show_if=WORD),
        Field("tokenizer.max_vocab", "Max words", "Keep only the most frequent words; rarer ones become <unk>. "
              "0 keeps all; 10,000 to 50,000 is typical.", low=0, show_if=WORD),
        Field("tokenizer.min_count", "Min count", "Words seen fewer times than this become <unk>. 1 keeps all; "
              "2 to 5 trims typos and rare names.", show_if=WORD),
        Field("tokenizer.vocab_size", "Vocabulary", "Subword pieces to learn, counting 257 reserved ones (<unk> "
              "and the 256 bytes). 1,000 to 32,000; a small corpus wants a small vocabulary.", show_if=SPM),
        Field("tokenizer.model_type", "Algorithm", "BPE merges frequent pairs (GPT-style); unigram prunes a large "
              "vocabulary (T5-style). Both work; BPE is the common choice.", "choice",
              (("bpe", "BPE"), ("unigram", "Unigram")), show_if=SPM),
        Field("tokenizer.character_coverage", "Coverage", "Share of characters given their own pieces; rarer ones "
              "fall back to bytes. 0.9995 for most text, 1.0 for small alphabets (0.98 to 1).", "number",
              show_if=SPM),
    )),
    ("Model", True, (
        Field("model.family", "Family", "The architecture. A Transformer (GPT) attends over the whole context; a "
              "recurrent network (LSTM, GRU) reads token by token, carrying a hidden state.", "choice",
              (("transformer", "Transformer (GPT)"), ("rnn", "Recurrent (LSTM, GRU)"))),
        Field("model.cell", "Cell", "The recurrent cell. LSTM is the robust default; GRU is smaller and faster; "
              "plain tanh/ReLU RNNs show why gates matter.", "choice",
              (("lstm", "LSTM"), ("gru", "GRU"), ("rnn_tanh", "RNN (tanh)"), ("rnn_relu", "RNN (ReLU)")),
              show_if=RNN),
        Field("model.n_layer", "Layers", "Stacked layers (blocks). 2 to 6 on a CPU; deeper learns more but trains "
              "slower."),
        Field("model.n_head", "Heads", "Attention heads per layer; the embedding size must divide by it. 2 to 8, "
              "for a head size (embedding / heads) of 32 to 64.", show_if=TRANSFORMER),
        Field("model.n_embd", "Embedding", "Width of the token vectors. 64 to 256 on a CPU, 384 to 1024 on a GPU; "
              "parameters grow with its square."),
        Field("model.n_hidden", "Hidden size", "Size of the recurrent state. 128 to 1024; with tied embeddings it "
              "must equal the embedding size.", show_if=RNN),
        Field("model.dropout", "Dropout", "Share of activations zeroed at random while training, against "
              "overfitting. 0 for small models; 0.1 to 0.3 when validation loss rises as training loss falls.",
              "number"),
        Field("model.positional", "Positions", "How the model knows token order. Learned: a trained table "
              "(GPT-2). Sinusoidal: fixed waves. Rotary: rotates queries and keys (LLaMA).", "choice",
              (("learned", "Learned"), ("sinusoidal", "Sinusoidal"), ("rotary", "Rotary (RoPE)")),
              show_if=TRANSFORMER),
        Field("model.bias", "Biases", "Bias terms in linear layers and layer norms. Off is slightly faster and as "
              "good (nanoGPT's default).", "bool", show_if=TRANSFORMER),
        Field("model.tie_embeddings", "Tie embeddings", "Share the input embedding with the output layer: fewer "
              "parameters, usually lower loss. Recurrent models then need embedding = hidden size.", "bool"),
    )),
    ("Optimizer", False, (
        Field("optim.name", "Optimizer", "AdamW is the standard for Transformers. SGD with a high learning rate and "
              "a plateau schedule is the classic LSTM recipe.", "choice",
              (("adamw", "AdamW"), ("adam", "Adam"), ("sgd", "SGD"))),
        Field("optim.lr", "Learning rate", "Step size. AdamW: 1e-4 to 3e-3 (1e-3 for small models); SGD: 1 to 20. "
              "Too high makes the loss jump or turn NaN.", "number"),
        Field("optim.momentum", "Momentum", "SGD momentum: 0 is plain SGD, 0.9 is common (0 to below 1).",
              "number", show_if=("optim.name", ("sgd",))),
        Field("optim.weight_decay", "Weight decay", "Pulls weight matrices towards zero, against overfitting. "
              "0 to 0.1; 0.1 is typical for AdamW.", "number"),
        Field("optim.grad_clip", "Gradient clip", "Largest gradient norm allowed; larger gradients are scaled "
              "down, preventing blow-ups. 1.0 for Transformers, 0.25 for LSTMs; 0 turns it off.", "number"),
    )),
    ("Schedule", False, (
        Field("schedule.kind", "Schedule", "How the learning rate changes. Cosine decays smoothly to the minimum; "
              "plateau cuts it when validation stops improving; constant keeps it.", "choice",
              (("cosine", "Cosine decay"), ("plateau", "Cut on plateau"), ("constant", "Constant"))),
        Field("schedule.warmup_steps", "Warm-up steps", "Steps over which the learning rate ramps up from near "
              "zero, avoiding early instability. 0 to a few hundred (about 5% of the run).", low=0),
        Field("schedule.min_lr", "Final rate", "Where the cosine decay ends: about a tenth of the learning rate; "
              "0 decays fully.", "number", show_if=("schedule.kind", ("cosine",))),
        Field("schedule.decay_steps", "Decay steps", "Steps the cosine decay lasts; 0 means the whole run.", low=0,
              show_if=("schedule.kind", ("cosine",))),
        Field("schedule.plateau_factor", "Cut factor", "Multiply the learning rate by this when validation loss "
              "stops improving: 0.1 to 0.5 (between 0 and 1).", "number", show_if=("schedule.kind", ("plateau",))),
        Field("schedule.plateau_patience", "Patience", "Evaluations without improvement tolerated before a cut. "
              "0 cuts at once; 1 to 3 is gentler.", low=0, show_if=("schedule.kind", ("plateau",))),
    )),
    ("Training", True, (
        Field("train.batch_size", "Batch size", "Sequences per optimizer step. Larger is smoother and faster per "
              "token but needs more memory: 8 to 64 on a CPU."),
        Field("train.context", "Context", "Tokens per sequence: how far back a Transformer can look, or how far an "
              "RNN's gradients flow. 32 to 256 characters, 35 to 128 words or subwords."),
        Field(TRAIN_BY, "Train for", "A number of optimizer steps, or of passes (epochs) over the training text.",
              "choice", ((BY_STEPS, "Steps"), (BY_EPOCHS, "Epochs"))),
        Field("train.max_steps", "Steps", "Optimizer steps to train for: a few hundred to see learning, 2,000 to "
              "5,000 for a good small model.", show_if=(TRAIN_BY, (BY_STEPS,))),
        Field("train.epochs", "Epochs", "Passes over the training text; fractions are fine. 1 to 10 for a small "
              "corpus.", "number", show_if=(TRAIN_BY, (BY_EPOCHS,))),
        Field("train.eval_interval", "Evaluate every", "Steps between validation-loss measurements, each of which "
              "also saves a checkpoint. 100 to 500; smaller gives more points but trains slower."),
        Field("train.device", "Device", "Where to train. Auto picks a CUDA GPU, then Apple's GPU, then the CPU.",
              "choice", available_devices()),
        *gpu_fields(),
        Field("train.seed", "Seed", "Random seed: the same seed and settings give the same run. Any whole number "
              "from 0 to 2,147,483,647.",
              low=0, high=2**31 - 1, thousands=False),
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


class IntEditor(WheelNeedsFocus, QSpinBox):
    def __init__(self, field: Field):
        super().__init__()
        self.setRange(field.low, field.high)
        self.setGroupSeparatorShown(field.thousands)
        self.edited = self.valueChanged

    def config_value(self) -> int:
        return self.value()

    def show_value(self, value) -> None:
        self.setValue(int(value))


class NumberEditor(QLineEdit):
    """A float as text, so 3e-4 can be typed as such; text that is not a number is reported by name."""

    def __init__(self, field: Field):
        super().__init__()
        self.key = field.key
        self.edited = self.textChanged

    def config_value(self) -> float:
        try:
            return float(self.text().strip())
        except ValueError:
            raise ConfigError(f"{self.key} = {self.text()!r} is not a number; type one like 0.1 or 3e-4.") from None

    def show_value(self, value) -> None:
        self.setText(f"{float(value):g}")


class ChoiceEditor(WheelNeedsFocus, QComboBox):
    def __init__(self, field: Field):
        super().__init__()
        for value, label in field.choices:
            self.addItem(label, value)
        self.edited = self.currentIndexChanged

    def config_value(self) -> str:
        return self.currentData()

    def show_value(self, value) -> None:
        index = self.findData(value)
        if index < 0:  # a value this build does not offer (e.g. a preset asking for "cuda" on a CPU machine)
            self.addItem(str(value), value)
            index = self.count() - 1
        self.setCurrentIndex(index)


class CheckEditor(QCheckBox):
    def __init__(self, field: Field):
        super().__init__()
        self.edited = self.toggled

    def config_value(self) -> bool:
        return self.isChecked()

    def show_value(self, value) -> None:
        self.setChecked(bool(value))


class TextEditor(QLineEdit):
    def __init__(self, field: Field):
        super().__init__()
        self.edited = self.textChanged

    def config_value(self) -> str:
        return self.text().strip()

    def show_value(self, value) -> None:
        self.setText(str(value))


EDITORS = {"int": IntEditor, "number": NumberEditor, "choice": ChoiceEditor, "bool": CheckEditor,
           "text": TextEditor}


def make_editor(field: Field):
    editor = EDITORS[field.editor](field)
    editor.setToolTip(field.tip)
    editor.setFocusPolicy(Qt.StrongFocus)  # not focused by the wheel (see WheelNeedsFocus)
    return editor
