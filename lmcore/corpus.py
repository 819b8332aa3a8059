"""Corpora: reading and checking text files, the train/validation split, and the encoding cache."""
from __future__ import annotations

import codecs
import hashlib
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
import platformdirs

from .errors import CorpusError
from .fileio import write_atomic

BINARY_SNIFF_BYTES = 8192
# Text files that start with a byte-order mark say their encoding (Windows editors save "Unicode" as UTF-16).
# UTF-32's marks come first: UTF-32-LE's begins with UTF-16-LE's.
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
ENCODE_CHUNK_CHARS = 1 << 20


@dataclass
class CorpusText:
    train: str
    val: str
    files: list[Path]
    digest: str  # sha256 of the files' bytes and the split, the cache key of the encoded arrays


def resolve_corpus_files(paths: list[str], field_name: str = "data.train") -> list[Path]:
    """Expand files and folders (every *.txt inside, sorted) into a list of files, or explain why not."""
    if not paths:
        raise CorpusError(f"{field_name} is empty; choose a .txt file or a folder of .txt files.")
    files: list[Path] = []
    for entry in paths:
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise CorpusError(f"Folder {path} ({field_name}) holds no .txt files; add some or pick another folder.")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"Corpus path {path} ({field_name}) does not exist; check the path.")
    return files


def read_file_bytes(path: Path) -> bytes:
    """The bytes of a corpus file, or a CorpusError naming it and saying why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"Corpus file {path} cannot be read: {exc.strerror or exc}. Check that it is a file "
                          "you may read (its permissions), or pick another.") from None


def read_text_file(path: Path, encoding_errors: str = "strict") -> str:
    """Read one corpus file as UTF-8 (or as the UTF-16/32 its byte-order mark names), refusing empty, binary and
    (unless asked) badly encoded files."""
    data = read_file_bytes(path)
    encoding = next((name for mark, name in BYTE_ORDER_MARKS if data.startswith(mark)), "utf-8")
    if encoding in ("utf-8", "utf-8-sig") and b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise CorpusError(f"Corpus file {path} looks binary (it has NUL bytes), not text; pick a .txt file.")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding_errors != "replace":
            name = encoding.upper().removesuffix("-SIG")
            raise CorpusError(
                f"Corpus file {path} is not valid {name}: byte {exc.start} is {data[exc.start:exc.start + 1]!r}. "
                "Convert the file to UTF-8, or set data.encoding_errors = \"replace\" to substitute bad bytes."
            ) from None
        text = data.decode(encoding, errors="replace")
    if not text.strip():
        raise CorpusError(f"Corpus file {path} is empty; pick a file with text in it.")
    return text


def read_corpus(paths: list[str], field_name: str = "data.train", encoding_errors: str = "strict"
                ) -> tuple[str, list[Path]]:
    """The text of every file under `paths`, joined by newlines, and the files it came from."""
    files = resolve_corpus_files(list(paths), field_name)
    return "\n".join(read_text_file(p, encoding_errors) for p in files), files


def load_corpus(train: list[str], val: list[str] | None = None, val_fraction: float = 0.1,
                encoding_errors: str = "strict") -> CorpusText:
    """Read the training (and validation) text; without validation files, hold out the last fraction."""
    train_text, train_files = read_corpus(train, "data.train", encoding_errors)
    hasher = hashlib.sha256()
    for p in train_files:
        hasher.update(read_file_bytes(p))
    if val:
        val_text, val_files = read_corpus(val, "data.val", encoding_errors)
        for p in val_files:
            hasher.update(b"\0val\0" + read_file_bytes(p))
    else:
        split = int(len(train_text) * (1.0 - val_fraction))
        train_text, val_text = train_text[:split], train_text[split:]
        hasher.update(f"\0split={val_fraction}".encode())
        val_files = []
    if not val_text.strip():
        raise CorpusError(
            f"The validation split is empty (data.val_fraction = {val_fraction} of {len(train_text)} characters); "
            "raise data.val_fraction or give a validation file in data.val."
        )
    hasher.update(f"\0errors={encoding_errors}".encode())
    return CorpusText(train_text, val_text, train_files + list(val_files), hasher.hexdigest())


def default_cache_dir() -> Path:
    """The platform's cache folder (~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows);
    LMCORE_CACHE_DIR overrides it."""
    override = os.environ.get("LMCORE_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("lm-workbench", appauthor=False))


def encode_cached(tokenizer, text: str, key: str, cache_dir: Path | None = None,
                  progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Token ids of `text` as a read-only memmap, encoded once and kept on disk under `key`.

    The key combines the corpus digest and the tokenizer fingerprint, so any change to either re-encodes. A cache
    that cannot be written (a full disk) costs a warning, not the run: the ids are then returned from memory.
    """
    cache_dir = Path(cache_dir or default_cache_dir()) / "encoded"
    path = cache_dir / f"{key}-{tokenizer.fingerprint()}.npy"
    if path.is_file():
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    ids = encode_with_progress(tokenizer, text, progress)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(ids))
    try:  # the ids are written from where they are, not copied into one more buffer
        write_atomic(path, header.getvalue(), ids.data.cast("B"))
    except OSError as exc:
        warnings.warn(f"Cannot write the encoding cache {path}: {exc.strerror or exc}. Training goes on without "
                      "it; free some space there, or set LMCORE_CACHE_DIR to a folder on a disk with room.", stacklevel=2)
        return ids
    return np.load(path, mmap_mode="r")


def encode_with_progress(tokenizer, text: str, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Encode in line-aligned chunks so a long corpus reports progress as it goes."""
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + ENCODE_CHUNK_CHARS)
        if end < len(text):
            newline = text.rfind("\n", start, end)
            end = newline + 1 if newline > start else end
        pieces.append(np.asarray(tokenizer.encode(text[start:end], unknown="replace"), dtype=dtype))
        start = end
        if progress:
            progress(start / len(text))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)


@dataclass
class CorpusSummary:
    """What a corpus holds, for a form to show before training: sizes, a preview, and any problem."""
    files: list[Path]
    size_bytes: int
    chars: int
    lines: int
    distinct_chars: int
    distinct_words: int
    preview: str
    problem: str | None  # why it cannot be trained on, worded for the user; None when it can


def inspect_corpus(paths: list[str], encoding_errors: str = "strict", preview_chars: int = 2000) -> CorpusSummary:
    """Read the corpus the way training will and describe it; a bad corpus is described, never raised."""
    try:
        files = resolve_corpus_files(list(paths))
    except CorpusError as exc:
        return CorpusSummary([], 0, 0, 0, 0, 0, "", str(exc))
    size = sum(p.stat().st_size for p in files)
    try:
        text, _ = read_corpus(list(paths), encoding_errors=encoding_errors)
    except CorpusError as exc:
        return CorpusSummary(files, size, 0, 0, 0, 0, "", str(exc))
    lines = text.count("\n") + (not text.endswith("\n"))
    return CorpusSummary(files, size, len(text), lines, len(set(text)), len(set(text.split())),
                         text[:preview_chars], None)


def corpus_length_problem(chars: int, val_fraction: float, context: int) -> str | None:
    """Why a corpus of `chars` characters is too short to split and fill one window each, or None.

    Judged per character; subword tokenizers need more text, which the trainer reports when it encodes."""
    val_chars = chars - int(chars * (1.0 - val_fraction))
    if min(val_chars - 1, chars - val_chars - 2) >= context:
        return None
    needed = math.ceil((context + 2) / min(val_fraction, 1.0 - val_fraction))
    return (f"The corpus is too short: {chars:,} characters, but the training and validation splits must each "
            f"fill a window of train.context = {context} characters plus one (about {needed:,} characters in "
            "all). Use a longer text or a smaller context.")
