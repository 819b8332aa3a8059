"""Tokenizers: character, word (WikiText style), SentencePiece (BPE or unigram with byte fallback), and any Hugging
Face ``tokenizer.json`` (GPT-2's byte-level BPE among them) through the ``tokenizers`` library.

Every tokenizer saves to a folder as ``lmcore-tokenizer.json`` (plus ``tokenizer.model`` for SentencePiece, Hugging
Face's own ``tokenizer.json`` for that kind) and is read back with :func:`load_tokenizer`; folders written before
the file had its prefix (``tokenizer.json`` in our format) still load. No pickle anywhere: a run folder shared by
someone else is safe to open.

A masked language model (the encoder family) needs special tokens, [CLS], [SEP], [MASK] and [PAD]:
``with_special_tokens()`` appends them after the text's own tokens, so every other id, and the encoding of any
text, stays what it was; lmcore-tokenizer.json lists them ("special_tokens") only when there are some, so a tokenizer
without them saves, loads and fingerprints exactly as before.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from itertools import groupby
from pathlib import Path
from typing import Any

import sentencepiece as spm

from .errors import ConfigError, TokenizerError
from .fileio import write_atomic
from .settings import check_settings, setting

TOKENIZER_KINDS = ("char", "word", "sentencepiece", "huggingface")
SPM_MODEL_TYPES = ("bpe", "unigram")
SEGMENTERS = ("whitespace", "jieba")
LONG_WORD_CHARS = 20  # a "word" longer than this between spaces is most likely a sentence written without them
KIND_SETTINGS = {"char": (), "word": ("lowercase", "max_vocab", "min_count", "segmenter"),  # what each kind reads
                 "sentencepiece": ("vocab_size", "model_type", "character_coverage"), "huggingface": ()}
# Ours is not named tokenizer.json, so that no tool mistakes it for Hugging Face's file of that name.
TOKENIZER_FILE = "lmcore-tokenizer.json"
LEGACY_TOKENIZER_FILE = "tokenizer.json"  # what runs made before the rename hold
HF_TOKENIZER_FILE = "tokenizer.json"  # Hugging Face's, beside ours in a huggingface tokenizer's folder
SPM_MODEL_FILE = "tokenizer.model"
FORMAT = "lmcore-tokenizer"
FORMAT_VERSION = 1
UNKNOWN_MODES = ("error", "replace")
# Fine-tuning on text with more unknown characters than this mostly teaches the model to predict <unk>.
UNKNOWN_SHARE_LIMIT = 0.02
_UNKNOWN_SHARE_SAMPLE_CHARS = 1_000_000  # the first megabyte tells the share well enough, and quickly

UNK = "<unk>"
EOS = "<eos>"
# SentencePiece reserves <unk> plus one piece per byte value (byte_fallback), before any learned piece.
SPM_RESERVED_PIECES = 1 + 256
# Training lines longer than this are cut into chunks: spm silently skips sentences over max_sentence_length.
_SPM_CHUNK_CHARS = 16_384
_SPM_MAX_SENTENCE_BYTES = 4 * _SPM_CHUNK_CHARS  # UTF-8 needs at most 4 bytes per character
_SPM_SPACE = "\u2581"  # "▁": how SentencePiece writes a space inside a piece
MLM_SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[PAD]")  # what an encoder run appends (with_special_tokens)
CLS, SEP, MASK, PAD = MLM_SPECIAL_TOKENS


@dataclass
class TokenizerConfig:
    kind: str = setting("char", "How text becomes tokens. Characters: a tiny vocabulary, any text, long sequences. "
                                "Words: whitespace-split words, a big vocabulary. Subwords: SentencePiece, the "
                                "modern middle ground. Hugging Face: an imported model's own tokenizer (GPT-2's "
                                "byte-level BPE), for fine-tuning it.", choices=TOKENIZER_KINDS)
    lowercase: bool = setting(False, "Words: lower-case every word first; a smaller vocabulary, but the model cannot "
                                     "write capitals.")
    max_vocab: int = setting(0, "Words: keep only the most frequent (counting <unk> and <eos>); rarer ones become "
                                "<unk>. 0 keeps all, else at least 5; 10,000 to 50,000 is typical.", unit="words",
                             at_least=0)
    min_count: int = setting(1, "Words: those seen fewer times than this become <unk>. 1 keeps all; 2 to 5 trims "
                                "typos and rare names.", at_least=1)
    segmenter: str = setting("whitespace", "Words: how text is cut into words. whitespace: at spaces; jieba: Chinese "
                                           "word segmentation, for text written without spaces (the optional extra: "
                                           "pip install 'lm-workbench[chinese]').", choices=SEGMENTERS)
    vocab_size: int = setting(2000, "Subwords: pieces to learn, counting 257 reserved ones (<unk> and the 256 "
                                    "bytes). 1,000 to 32,000; a small corpus wants a small vocabulary.",
                              unit="pieces", at_least=SPM_RESERVED_PIECES + 1)
    model_type: str = setting("bpe", "Subwords: BPE merges frequent pairs (GPT-style); unigram prunes a large "
                                     "vocabulary (T5-style). Both work; BPE is the common choice.",
                              choices=SPM_MODEL_TYPES)
    character_coverage: float = setting(0.9995, "Subwords: share of characters given their own pieces; rarer ones "
                                                "fall back to bytes. 0.9995 for most text, 1.0 for small alphabets.",
                                        at_least=0.98, at_most=1.0)

    def validate(self) -> None:
        """Check types always, and values for the fields the chosen kind uses."""
        used = KIND_SETTINGS.get(self.kind, ()) if isinstance(self.kind, str) else ()
        check_settings(self, "tokenizer", skip=tuple(f.name for f in fields(self) if f.name not in ("kind", *used)))
        if self.kind == "word" and 0 < self.max_vocab < 5:
            raise ConfigError(
                f"tokenizer.max_vocab = {self.max_vocab} is too small; use 0 (no cap) or at least 5 "
                "(<unk>, <eos> and three words).", field="tokenizer.max_vocab")


class SpecialId:
    """A tokenizer's attribute (mask_id, pad_id, ...): the id of one special token, None when it has none."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, tokenizer: Tokenizer | None, owner: type | None = None) -> int | None:
        return None if tokenizer is None else tokenizer.special_id(self.name)


class Tokenizer(ABC):
    """Turns text into token ids and back. Subclasses fill in the vocabulary."""

    kind: str
    unk_id: int | None = None
    eos_id: int | None = None
    bos_id: int | None = None
    special_tokens: tuple[str, ...] = ()  # their ids follow the text's own tokens (with_special_tokens)

    @property
    @abstractmethod
    def text_vocab_size(self) -> int:
        """Tokens that text encodes to: every id but the special tokens', which come after them."""

    @property
    def vocab_size(self) -> int:
        return self.text_vocab_size + len(self.special_tokens)

    def with_special_tokens(self, names: Iterable[str] = MLM_SPECIAL_TOKENS) -> Tokenizer:
        """A copy with the special tokens `names` appended to the vocabulary, at ids text_vocab_size, +1, ...
        encode() never produces them; decode() and token_text() give their names back."""
        names = tuple(names)
        if self.special_tokens or not names or len(set(names)) != len(names) or not all(names):
            raise ValueError(f"special tokens {names!r} must be distinct, non-empty names, added once")
        tokenizer = copy.copy(self)  # shares the text's vocabulary, which nothing changes after construction
        tokenizer.special_tokens = names
        return tokenizer

    def special_id(self, name: str) -> int | None:
        """The id of special token `name` ("[MASK]"), or None when this tokenizer has none by that name."""
        if name not in self.special_tokens:
            return None
        return self.text_vocab_size + self.special_tokens.index(name)

    cls_id = SpecialId(CLS)
    sep_id = SpecialId(SEP)
    mask_id = SpecialId(MASK)
    pad_id = SpecialId(PAD)

    @abstractmethod
    def encode(self, text: str, unknown: str = "error") -> list[int]:
        """unknown="error" raises TokenizerError on text the vocabulary cannot express; "replace" maps it to <unk>."""

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; a special token comes back as its name, between spaces for a word tokenizer."""
        ids = self._check_ids(ids)
        n = self.text_vocab_size
        if not self.special_tokens or all(i < n for i in ids):
            return self._decode(ids)
        parts = []
        for special, group in groupby(ids, key=lambda i: i >= n):
            run = list(group)
            parts += [self.special_tokens[i - n] for i in run] if special else [self._decode(run)]
        return self._special_separator.join(parts)

    _special_separator = ""  # between a special token's name and the text around it, in decode()

    @abstractmethod
    def _decode(self, ids: list[int]) -> str:
        """The text of `ids`, all of them the text's own tokens (checked)."""

    def unknown_share(self, text: str) -> float:
        """The share of `text`'s characters that encode(text, unknown="replace") turns into <unk>, measured on its
        first million characters."""
        sample = text[:_UNKNOWN_SHARE_SAMPLE_CHARS]
        return self._unknown_chars(sample) / len(sample) if sample else 0.0

    @abstractmethod
    def _unknown_chars(self, text: str) -> int:
        """How many of `text`'s characters become <unk>."""

    def token_text(self, token_id: int) -> str:
        """The text one token stands for, for the GUI's token views; a special token's name."""
        token_id = self._check_ids([token_id])[0]
        n = self.text_vocab_size
        return self.special_tokens[token_id - n] if token_id >= n else self._token_text(token_id)

    @abstractmethod
    def _token_text(self, token_id: int) -> str:
        """token_text of one of the text's own tokens (checked)."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The JSON-able fields that, with `kind`, fully describe this tokenizer in lmcore-tokenizer.json."""

    @classmethod
    @abstractmethod
    def _from_state(cls, doc: dict[str, Any], folder: Path) -> Tokenizer:
        """Rebuild from lmcore-tokenizer.json's fields (`folder` holds it); raise KeyError/TypeError/ValueError on
        damaged fields."""

    def _save_files(self, folder: Path) -> None:  # noqa: B027 - a hook: most tokenizers have no other files
        """Write any files besides lmcore-tokenizer.json (SentencePiece's model, Hugging Face's tokenizer.json)."""

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._save_files(folder)
            doc = {"format": FORMAT, "version": FORMAT_VERSION, **self._document()}
            write_atomic(folder / TOKENIZER_FILE, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
        except OSError as e:
            raise TokenizerError(
                f"cannot save the tokenizer to {folder}: {e.strerror or e}; check that the folder is writable "
                "and the disk has space."
            ) from e

    def _document(self) -> dict[str, Any]:
        """What lmcore-tokenizer.json holds besides its format and version."""
        doc = {"kind": self.kind, **self._state()}
        if self.special_tokens:  # absent otherwise, so that a tokenizer without them is saved as it always was
            doc["special_tokens"] = list(self.special_tokens)
        return doc

    def fingerprint(self) -> str:
        """A short hash of everything that decides the encoding and the ids; the corpus cache keys on it."""
        canonical = json.dumps(self._document(), sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        # Checked explicitly: a negative id would otherwise index from the end of a Python list.
        ids = [int(i) for i in ids]
        bad = next((i for i in ids if not 0 <= i < self.vocab_size), None)
        if bad is not None:
            raise TokenizerError(
                f"token id {bad} is outside this {self.kind} tokenizer's vocabulary (0 to {self.vocab_size - 1}); "
                "the ids probably come from a model trained with a different tokenizer."
            )
        return ids

    def __repr__(self) -> str:
        return f"<{type(self).__name__} vocab_size={self.vocab_size} fingerprint={self.fingerprint()}>"


def _check_unknown_mode(unknown: str) -> None:
    if unknown not in UNKNOWN_MODES:
        raise ValueError(f"unknown={unknown!r}; use one of {', '.join(UNKNOWN_MODES)}")


class VocabularyTokenizer(Tokenizer):
    """A list of tokens, <unk> at id 0: the text is cut into pieces (characters, words), each looked up."""

    _vocab: list[str]
    _ids: dict[str, int]  # piece -> id

    @abstractmethod
    def _pieces(self, text: str) -> Iterable[str]:
        """The pieces of `text`, each one token."""

    def _refuse_unknown(self, text: str) -> None:
        """encode(unknown="error") met pieces outside the vocabulary: raise TokenizerError, or accept them."""

    @property
    def text_vocab_size(self) -> int:
        return len(self._vocab)

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        _check_unknown_mode(unknown)
        get = self._ids.get
        ids = [get(piece, 0) for piece in self._pieces(text)]
        if unknown == "error" and 0 in ids:
            self._refuse_unknown(text)
        return ids

    def _unknown_chars(self, text: str) -> int:
        known = self._ids
        return sum(len(piece) for piece in self._pieces(text) if piece not in known)


class CharTokenizer(VocabularyTokenizer):
    """One token per character: <unk> is id 0, then the corpus's distinct characters in sorted order."""

    kind = "char"
    unk_id = 0

    def __init__(self, chars: Iterable[str]):
        self._vocab = [UNK, *chars]
        self._ids = {c: i for i, c in enumerate(self._vocab) if i}
        if any(len(c) != 1 for c in self._vocab[1:]) or len(self._ids) != len(self._vocab) - 1:
            raise ValueError("the character list must hold distinct single characters")

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    def _pieces(self, text: str) -> str:
        return text

    def _refuse_unknown(self, text: str) -> None:
        unseen = list(dict.fromkeys(c for c in text if c not in self._ids))
        shown = ", ".join(repr(c) for c in unseen[:10]) + (f" and {len(unseen) - 10} more" if len(unseen) > 10 else "")
        raise TokenizerError(
            f"the text has {len(unseen)} character(s) this character tokenizer has never seen: {shown}. "
            "The model was trained on a corpus without them; remove them, or encode with unknown=\"replace\" "
            "to map them to <unk>."
        )

    def _decode(self, ids: list[int]) -> str:
        vocab = self._vocab
        return "".join(vocab[i] if i else "\ufffd" for i in ids)

    def _token_text(self, token_id: int) -> str:
        return self._vocab[token_id]

    def _state(self) -> dict[str, Any]:
        return {"chars": self._vocab[1:]}

    @classmethod
    def _from_state(cls, doc: dict[str, Any], folder: Path) -> CharTokenizer:
        return cls(_list_of_str(doc["chars"], "chars"))


class WordTokenizer(VocabularyTokenizer):
    """Whitespace-split words as in PyTorch's word_language_model: every line break is an <eos> token.

    Words outside the vocabulary always become <unk> (the WikiText convention), whatever `unknown` says.
    A literal "<unk>" or "<eos>" in the text is read as that special token.
    """

    kind = "word"
    unk_id = 0
    eos_id = 1

    def __init__(self, words: Iterable[str], lowercase: bool = False, segmenter: str = "whitespace"):
        self._vocab = [UNK, EOS, *words]
        self._ids = {w: i for i, w in enumerate(self._vocab)}
        self.lowercase = bool(lowercase)
        self.segmenter = segmenter
        self._special_separator = "" if segmenter == "jieba" else " "  # Chinese words are written together
        if len(self._ids) != len(self._vocab) or any(not w or w.split() != [w] for w in self._vocab):
            raise ValueError("the word list must hold distinct words without whitespace")

    @classmethod
    def train(cls, text: str, cfg: TokenizerConfig) -> WordTokenizer:
        counts = Counter(w for w in _words(text, cfg.lowercase, cfg.segmenter) if w not in (UNK, EOS))
        # sorted() is stable and Counter keeps first-appearance order, so ties go to the earlier word.
        kept = [w for w, n in sorted(counts.items(), key=lambda wn: -wn[1]) if n >= cfg.min_count]
        if cfg.max_vocab:
            kept = kept[: cfg.max_vocab - 2]
        if len(counts) < 3:
            raise TokenizerError(
                f"the corpus has only {len(counts)} distinct word(s); a word tokenizer needs at least 3. "
                "Use a larger corpus, or tokenizer.kind = 'char'."
            )
        if len(kept) < 3:
            raise TokenizerError(
                f"only {len(kept)} word(s) occur at least tokenizer.min_count = {cfg.min_count} times; "
                "lower tokenizer.min_count or use a larger corpus."
            )
        return cls(kept, lowercase=cfg.lowercase, segmenter=cfg.segmenter)

    def _pieces(self, text: str) -> Iterator[str]:
        return _words(text, self.lowercase, self.segmenter)

    def _decode(self, ids: list[int]) -> str:
        parts: list[str] = []
        after_word = False
        for i in ids:
            if i == self.eos_id:
                parts.append("\n")
                after_word = False
            else:
                parts.append(self._special_separator + self._vocab[i] if after_word else self._vocab[i])
                after_word = True
        return "".join(parts)

    def _token_text(self, token_id: int) -> str:
        return "\n" if token_id == self.eos_id else self._vocab[token_id]

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"lowercase": self.lowercase, "words": self._vocab[2:]}
        if self.segmenter != "whitespace":  # older tokenizer files, without the key, stay byte-identical
            state["segmenter"] = self.segmenter
        return state

    @classmethod
    def _from_state(cls, doc: dict[str, Any], folder: Path) -> WordTokenizer:
        if not isinstance(doc["lowercase"], bool):
            raise ValueError("'lowercase' must be true or false")
        segmenter = doc.get("segmenter", "whitespace")
        if segmenter not in SEGMENTERS:
            raise ValueError(f"'segmenter' must be one of {', '.join(SEGMENTERS)}")
        return cls(_list_of_str(doc["words"], "words"), lowercase=doc["lowercase"], segmenter=segmenter)


def _words(text: str, lowercase: bool, segmenter: str = "whitespace") -> Iterator[str]:
    """The word stream of `text`: each line's words (split at whitespace, or by jieba), and <eos> for every "\\n"."""
    if lowercase:
        text = text.lower()
    split = _jieba_words if segmenter == "jieba" else str.split
    for n, line in enumerate(text.split("\n")):
        if n:
            yield EOS
        yield from split(line)


def _jieba_words(line: str) -> list[str]:
    try:
        import jieba
    except ImportError:
        raise TokenizerError("tokenizer.segmenter = 'jieba' needs the jieba package: pip install "
                             "'lm-workbench[chinese]' (or choose tokenizer.kind = 'sentencepiece').") from None
    return [word for word in jieba.lcut(line) if not word.isspace()]


def long_words_warning(text: str) -> str | None:
    """What to say when most of `text` lies in "words" too long to be words: text written without spaces, which
    whitespace word splitting turns into a few huge, mostly unknown tokens; None otherwise."""
    words = text.split()
    total = sum(map(len, words))
    share = sum(len(w) for w in words if len(w) > LONG_WORD_CHARS) / total if total else 0.0
    if share <= 0.5:
        return None
    return (f"{share:.0%} of this text is in 'words' of more than {LONG_WORD_CHARS} characters between spaces: it looks "
            "written without spaces (Chinese, Japanese, Thai), and a word tokenizer would turn it into a few huge, "
            "mostly unknown words. Use tokenizer.kind = 'sentencepiece' or 'char', or tokenizer.segmenter = 'jieba' "
            "for Chinese.")


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece with byte fallback and no normalisation, so any UTF-8 text round-trips exactly."""

    kind = "sentencepiece"
    unk_id = 0

    def __init__(self, model: bytes):
        self._model = bytes(model)
        self._sp = spm.SentencePieceProcessor(model_proto=self._model)
        byte_ids = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in range(256)]
        if not all(self._sp.is_byte(i) for i in byte_ids):
            raise ValueError("the model was trained without byte_fallback")
        # Characters spm itself gets wrong, so encode() sends them as explicit byte pieces: a literal "▁" (spm's
        # own space marker, which it would decode as " "), and " " when the corpus had none, because spm then
        # falls back to the bytes of "▁" and the space comes back as "▁".
        self._by_hand = {_SPM_SPACE: [byte_ids[b] for b in _SPM_SPACE.encode("utf-8")]}
        if self._sp.is_unknown(self._sp.piece_to_id(_SPM_SPACE)):
            self._by_hand[" "] = [byte_ids[ord(" ")]]
        self._by_hand_split = re.compile("([" + "".join(self._by_hand) + "])").split

    @classmethod
    def train(cls, text: str, cfg: TokenizerConfig) -> SentencePieceTokenizer:
        if not text.strip("\n"):
            raise TokenizerError("the corpus holds nothing but line breaks; a SentencePiece tokenizer needs text.")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=_spm_sentences(text),
                model_writer=model,
                vocab_size=cfg.vocab_size,
                model_type=cfg.model_type,
                character_coverage=cfg.character_coverage,
                byte_fallback=True,
                # Keep the text as it is: no NFKC, no dummy leading space, no whitespace squashing.
                normalization_rule_name="identity",
                add_dummy_prefix=False,
                remove_extra_whitespaces=False,
                allow_whitespace_only_pieces=True,
                split_digits=True,
                max_sentence_length=_SPM_MAX_SENTENCE_BYTES,
                input_sentence_size=1_000_000,
                shuffle_input_sentence=True,
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                unk_surface="\ufffd",  # decode <unk> like the char tokenizer does, not spm's " ⁇ "
                num_threads=min(os.cpu_count() or 1, 8),
                minloglevel=2,  # only errors; spm otherwise logs hundreds of lines to stderr
            )
        except RuntimeError as e:
            raise _spm_training_error(str(e), cfg) from e
        return cls(model.getvalue())

    @property
    def text_vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def model(self) -> bytes:
        """The SentencePiece model file (tokenizer.model) as bytes."""
        return self._model

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        # Byte fallback means every text is encodable, so `unknown` has nothing to do here.
        _check_unknown_mode(unknown)
        if not any(c in text for c in self._by_hand):
            return self._sp.encode(text)
        parts = self._by_hand_split(text)  # text, char, text, char, ..., text
        encoded = self._sp.encode(parts[0::2])
        ids = encoded[0]
        for char, more in zip(parts[1::2], encoded[1:], strict=True):  # a piece after each by-hand char
            ids.extend(self._by_hand[char])
            ids.extend(more)
        return ids

    def _unknown_chars(self, text: str) -> int:
        return 0  # byte fallback spells any character the pieces lack in bytes, never as <unk>

    def _decode(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def _token_text(self, token_id: int) -> str:
        piece = self._sp.id_to_piece(token_id)
        if self._sp.is_byte(token_id):
            value = int(piece[3:5], 16)  # "<0x0A>"
            return chr(value) if value < 0x80 else piece  # a lone byte above 0x7F is only part of a character
        if self._sp.is_unknown(token_id):
            return piece
        return piece.replace(_SPM_SPACE, " ")

    def _state(self) -> dict[str, Any]:
        return {
            "model_file": SPM_MODEL_FILE,
            "model_sha256": hashlib.sha256(self._model).hexdigest(),
            "vocab_size": self.text_vocab_size,
        }

    def _save_files(self, folder: Path) -> None:
        write_atomic(folder / SPM_MODEL_FILE, self._model)

    @classmethod
    def _from_state(cls, doc: dict[str, Any], folder: Path) -> SentencePieceTokenizer:
        path = folder / SPM_MODEL_FILE
        model = _read_companion(path, doc["model_sha256"])
        try:
            return cls(model)
        except (RuntimeError, ValueError) as e:
            raise TokenizerError(f"{path} is not a usable SentencePiece model ({e}); retrain the tokenizer.") from e


def _spm_sentences(text: str) -> Iterator[str]:
    """Non-empty lines of `text`, long ones cut into chunks, without copying the whole corpus into a list."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        for chunk_start in range(start, end, _SPM_CHUNK_CHARS):
            yield text[chunk_start : min(end, chunk_start + _SPM_CHUNK_CHARS)]
        start = end + 1


def _spm_training_error(message: str, cfg: TokenizerConfig) -> TokenizerError:
    """Turn SentencePiece's internal check failures into something a user can act on."""
    too_high = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", message)
    if too_high:
        return TokenizerError(
            f"tokenizer.vocab_size = {cfg.vocab_size} is more than this corpus supports "
            f"(at most {too_high.group(1)} pieces); lower tokenizer.vocab_size or use a larger corpus."
        )
    too_low = re.search(r"Vocabulary size is smaller than required_chars\. \d+ vs (\d+)", message)
    if too_low:
        needed = int(too_low.group(1))
        return TokenizerError(
            f"tokenizer.vocab_size = {cfg.vocab_size} is too small for this corpus: it needs at least {needed} "
            f"pieces ({SPM_RESERVED_PIECES} for <unk> and the byte values, {needed - SPM_RESERVED_PIECES} for its "
            "characters); raise tokenizer.vocab_size or lower tokenizer.character_coverage."
        )
    return TokenizerError(f"SentencePiece could not train a tokenizer on this corpus: {message}")


class HuggingFaceTokenizer(Tokenizer):
    """A Hugging Face `tokenizers` tokenizer, read from its tokenizer.json: GPT-2's byte-level BPE, or any other.
    Encoding and decoding are the library's own, so ids equal those the model was trained with; a byte-level
    BPE round-trips any text byte for byte. Saved as Hugging Face's tokenizer.json beside lmcore-tokenizer.json,
    which holds its checksum."""

    kind = "huggingface"

    def __init__(self, document: bytes):
        tokenizers = tokenizers_library()
        self._document_bytes = bytes(document)
        try:
            self._hf = tokenizers.Tokenizer.from_str(self._document_bytes.decode("utf-8"))
        except Exception as e:  # the library raises plain Exception for a file it cannot parse
            raise ValueError(f"not a Hugging Face tokenizer.json ({e})") from None
        unk = getattr(self._hf.model, "unk_token", None)
        self.unk_id = self._hf.token_to_id(unk) if unk else None
        self.eos_id = self._hf.token_to_id(GPT2_END_OF_TEXT)  # GPT-2's one special token: documents end with it

    @classmethod
    def from_file(cls, path: Path) -> HuggingFaceTokenizer:
        """Read a Hugging Face tokenizer.json, or explain why it cannot be used."""
        try:
            return cls(Path(path).read_bytes())
        except OSError as e:
            raise TokenizerError(f"{path} cannot be read ({e.strerror or e}); give a readable tokenizer.json.") from e
        except ValueError as e:
            raise TokenizerError(f"{path}: {e}; give the tokenizer.json of a Hugging Face model.") from e

    @classmethod
    def from_vocab_and_merges(cls, vocab: Path, merges: Path) -> HuggingFaceTokenizer:
        """GPT-2's original files (vocab.json + merges.txt) as the byte-level BPE tokenizer.json they stand for,
        with <|endoftext|> as a special token when the vocabulary has it."""
        tokenizers = tokenizers_library()
        try:
            model = tokenizers.models.BPE.from_file(str(vocab), str(merges))
        except Exception as e:  # OSError or the library's own parse errors
            raise TokenizerError(f"{vocab} and {merges} are not a GPT-2 vocabulary and merges list ({e}); give the "
                                 "files of a GPT-2 model, or its tokenizer.json.") from None
        hf = tokenizers.Tokenizer(model)
        hf.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = tokenizers.decoders.ByteLevel()
        if hf.token_to_id(GPT2_END_OF_TEXT) is not None:
            hf.add_special_tokens([GPT2_END_OF_TEXT])
        return cls(hf.to_str().encode("utf-8"))

    @property
    def text_vocab_size(self) -> int:
        return self._hf.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, unknown: str = "error") -> list[int]:
        _check_unknown_mode(unknown)
        ids = self._hf.encode(text, add_special_tokens=False).ids
        if unknown == "error" and self.unk_id is not None and self.unk_id in ids:
            raise TokenizerError(
                f"the text has {self._unknown_chars(text)} character(s) this tokenizer cannot express; remove them, "
                "or encode with unknown=\"replace\" to map them to its unknown token.")
        return ids

    def _unknown_chars(self, text: str) -> int:
        if self.unk_id is None:
            return 0
        encoding = self._hf.encode(text, add_special_tokens=False)
        return sum(end - start for i, (start, end) in zip(encoding.ids, encoding.offsets, strict=True)
                   if i == self.unk_id)

    def _decode(self, ids: list[int]) -> str:
        return self._hf.decode(ids, skip_special_tokens=False)

    def _token_text(self, token_id: int) -> str:
        return self._hf.decode([token_id], skip_special_tokens=False)

    @property
    def document(self) -> str:
        """Hugging Face's tokenizer.json, as it was read."""
        return self._document_bytes.decode("utf-8")

    def _state(self) -> dict[str, Any]:
        return {"file": HF_TOKENIZER_FILE, "sha256": hashlib.sha256(self._document_bytes).hexdigest()}

    def _save_files(self, folder: Path) -> None:
        write_atomic(folder / HF_TOKENIZER_FILE, self._document_bytes)

    @classmethod
    def _from_state(cls, doc: dict[str, Any], folder: Path) -> HuggingFaceTokenizer:
        return cls(_read_companion(folder / HF_TOKENIZER_FILE, doc["sha256"]))


def _read_companion(path: Path, sha256: str) -> bytes:
    """A file the tokenizer's own file names by its checksum (SentencePiece's model, Hugging Face's
    tokenizer.json), read and checked."""
    try:
        content = path.read_bytes()
    except OSError as e:
        raise TokenizerError(
            f"{path} cannot be read ({e.strerror or e}); it belongs with {tokenizer_file(path.parent)}. "
            "Copy the whole tokenizer folder again, or retrain the tokenizer."
        ) from e
    if hashlib.sha256(content).hexdigest() != sha256:
        raise TokenizerError(
            f"{path} does not match {tokenizer_file(path.parent)} (its checksum differs): the file is damaged "
            "or comes from another tokenizer. Copy the whole tokenizer folder again, or retrain the tokenizer."
        )
    return content


GPT2_END_OF_TEXT = "<|endoftext|>"


def tokenizers_library():
    try:
        import tokenizers
    except ImportError:
        raise TokenizerError("Hugging Face tokenizers need the tokenizers package: pip install tokenizers "
                             "(it comes with LM Workbench; reinstall it with pip install -e .).") from None
    return tokenizers


def _list_of_str(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name!r} must be a list of strings")
    return value


_CLASSES: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "word": WordTokenizer,
    "sentencepiece": SentencePieceTokenizer,
    "huggingface": HuggingFaceTokenizer,
}


def train_tokenizer(
    cfg: TokenizerConfig, text: str, progress: Callable[[str], None] | None = None
) -> Tokenizer:
    """Build a tokenizer of `cfg.kind` from the training text."""
    cfg.validate()
    if not text:
        raise TokenizerError("the training text is empty; choose a corpus with some text in it.")
    report = progress or (lambda message: None)
    report(f"Training a {cfg.kind} tokenizer on {len(text):,} characters")
    if cfg.kind == "char":
        tokenizer: Tokenizer = CharTokenizer.train(text)
    elif cfg.kind == "word":
        if cfg.segmenter == "whitespace" and (warning := long_words_warning(text)):
            warnings.warn(warning, stacklevel=2)
        tokenizer = WordTokenizer.train(text, cfg)
    elif cfg.kind == "sentencepiece":
        tokenizer = SentencePieceTokenizer.train(text, cfg)
    else:
        raise TokenizerError("tokenizer.kind = 'huggingface' is not trained: it comes with an imported model "
                             "(lmcore import). Fine-tune that run (init_from), or choose char, word or sentencepiece.")
    report(f"Tokenizer ready: {tokenizer.vocab_size:,} tokens")
    return tokenizer


def tokenizer_file(folder: Path) -> Path:
    """The file that describes the tokenizer saved in `folder`: lmcore-tokenizer.json, or tokenizer.json in a folder
    written before the rename."""
    path = Path(folder) / TOKENIZER_FILE
    legacy = Path(folder) / LEGACY_TOKENIZER_FILE
    return legacy if not path.is_file() and legacy.is_file() else path


def load_tokenizer(folder: Path) -> Tokenizer:
    """Read a tokenizer saved by Tokenizer.save(); every problem becomes a TokenizerError saying what to do."""
    folder = Path(folder)
    path = tokenizer_file(folder)
    if not folder.is_dir():
        raise TokenizerError(
            f"the tokenizer folder {folder} does not exist; point to a run's tokenizer/ folder or train a tokenizer."
        )
    if not path.is_file():
        raise TokenizerError(
            f"{path} is missing, so {folder} holds no tokenizer; point to a run's tokenizer/ folder "
            "or train a tokenizer."
        )
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(
            f"{path} cannot be read as JSON ({e}); the file is damaged: restore it from a copy or retrain the tokenizer."
        ) from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        hint = ("; it is a Hugging Face tokenizer: import its model with lmcore import hf FOLDER"
                if isinstance(doc, dict) and "model" in doc else "")
        raise TokenizerError(
            f"{path} is not an LM Workbench tokenizer file (it lacks \"format\": \"{FORMAT}\"){hint}; "
            "point to the tokenizer/ folder of an LM Workbench run."
        )
    version = doc.get("version")
    if version != FORMAT_VERSION:
        raise TokenizerError(
            f"{path} has format version {version!r}, but this LM Workbench reads version {FORMAT_VERSION}; "
            "update LM Workbench or retrain the tokenizer."
        )
    cls = _CLASSES.get(str(doc.get("kind")))
    if cls is None:
        raise TokenizerError(
            f"{path} has kind {doc.get('kind')!r}, not one of {', '.join(TOKENIZER_KINDS)}; the file is damaged "
            "or from a newer LM Workbench: retrain the tokenizer."
        )
    try:
        tokenizer = cls._from_state(doc, folder)
        if "special_tokens" in doc:
            tokenizer = tokenizer.with_special_tokens(_list_of_str(doc["special_tokens"], "special_tokens"))
        return tokenizer
    except (KeyError, TypeError, ValueError) as e:
        raise TokenizerError(
            f"{path} is damaged ({type(e).__name__}: {e}); restore it from a copy or retrain the tokenizer."
        ) from e
