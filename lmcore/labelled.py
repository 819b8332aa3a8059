"""Labelled texts for a classifier: .tsv, .csv or .jsonl files with a text and a label per row, the label list,
and the seeded, stratified split that holds out validation rows when no validation file is given.

    data = load_labelled(config.data, config.classify, seed=config.train.seed)
    data.labels, data.train[0].text, label_ids(data.val, data.labels)

A .tsv or .csv file names its columns in a header row (classify.text_field and classify.label_field) or, without
one, holds the text and then the label. A .tsv splits at tabs only (no quoting: quotes are part of the text); a
.csv follows the CSV rules, quotes included. Lines end at "\\n" only, so a U+0085 inside a text stays there.
Rows that cannot be used are never skipped: every one is reported with its file and line.
"""
from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .corpus import read_text_file
from .errors import CorpusError

if TYPE_CHECKING:
    from .config import ClassifyConfig, DataConfig

LABELLED_SUFFIXES = (".tsv", ".csv", ".jsonl")
MAX_REPORTED = 5  # bad rows listed in a message; the rest are counted


@dataclass(frozen=True)
class LabelledRow:
    text: str
    label: str
    where: str  # "file:line", for messages


@dataclass
class LabelledData:
    labels: list[str]
    train: list[LabelledRow]
    val: list[LabelledRow]
    test: list[LabelledRow]


def label_ids(rows: list[LabelledRow], labels: list[str]) -> list[int]:
    """Each row's label as its index in `labels`."""
    index = {label: i for i, label in enumerate(labels)}
    return [index[row.label] for row in rows]


class _Problems:
    """Bad rows, collected so that one message lists them (the first MAX_REPORTED, and how many in all)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.lines.append(f"{where}: {problem}")

    def raise_any(self, what: str) -> None:
        if not self.lines:
            return
        shown = "\n".join("  " + line for line in self.lines[:MAX_REPORTED])
        more = f"\n  ... and {len(self.lines) - MAX_REPORTED} more" if len(self.lines) > MAX_REPORTED else ""
        raise CorpusError(f"{what}: {len(self.lines)} bad row(s), which must be fixed (none is skipped):\n"
                          f"{shown}{more}")


def read_labelled(path: str | Path, text_field: str = "text", label_field: str = "label",
                  encoding_errors: str = "strict", field_name: str = "data.train") -> list[LabelledRow]:
    """Every row of one labelled file; CorpusError naming each bad row by file and line."""
    path = Path(path)
    if path.suffix.lower() not in LABELLED_SUFFIXES:
        raise CorpusError(f"{path} ({field_name}) is not a labelled file: use .tsv, .csv or .jsonl, a text and a "
                          "label per row.")
    if not path.is_file():
        raise CorpusError(f"Labelled file {path} ({field_name}) does not exist; check the path.")
    content = read_text_file(path, encoding_errors)
    parse = _parse_jsonl if path.suffix.lower() == ".jsonl" else _parse_table
    rows, problems = [], _Problems()
    for line, text, label, problem in parse(path, content, text_field, label_field):
        where = f"{path}:{line}"
        if problem is None and not label:
            problem = f"no label; give every row a label (under {label_field!r})"
        if problem is None and not text:
            problem = "the text is empty; give the row a text or remove it"
        if problem is None:
            rows.append(LabelledRow(text, label, where))
        else:
            problems.add(where, problem)
    problems.raise_any(f"{path} ({field_name})")
    return rows


Parsed = Iterator[tuple[int, str, str, str | None]]  # line, text, label, what is wrong (None: nothing)


def _parse_table(path: Path, content: str, text_field: str, label_field: str) -> Parsed:
    """A .tsv (tabs, no quoting) or .csv file, with or without a header row naming the two columns."""
    if path.suffix.lower() == ".tsv":
        records: Iterator[tuple[int, list[str]]] = ((n, line.removesuffix("\r").split("\t"))
                                                     for n, line in enumerate(content.split("\n"), 1))
        separator = "tab"
    else:
        reader = csv.reader(io.StringIO(content, newline=""))
        records = ((reader.line_num, cells) for cells in reader)
        separator = "comma"
    columns, names, expected = (0, 1), "text, label", 2
    header_checked = False
    for line, cells in records:
        if not "".join(cells).strip():
            continue  # a blank line is no row
        if not header_checked:
            header_checked = True
            stripped = [cell.strip() for cell in cells]
            if text_field in stripped and label_field in stripped:
                columns, names = (stripped.index(text_field), stripped.index(label_field)), ", ".join(stripped)
                expected = len(cells)
                continue
        if len(cells) != expected:
            yield line, "", "", (f"{len(cells)} {separator}-separated columns where {expected} are expected "
                                 f"({names}); a {separator} inside the text splits it: remove it"
                                 + (" or quote the text" if separator == "comma" else ""))
            continue
        yield line, cells[columns[0]].strip(), cells[columns[1]].strip(), None


def _parse_jsonl(path: Path, content: str, text_field: str, label_field: str) -> Parsed:
    """One JSON object per line, its text under text_field and its label (text or a number) under label_field."""
    for line, record in enumerate(content.split("\n"), 1):
        if not record.strip():
            continue
        try:
            row = json.loads(record)
        except json.JSONDecodeError as exc:
            yield line, "", "", f"not valid JSON ({exc.msg}); write one object per line"
            continue
        if not isinstance(row, dict):
            yield line, "", "", f"a JSON object is expected, with keys {text_field!r} and {label_field!r}"
            continue
        text, label = row.get(text_field), row.get(label_field)
        if text is not None and not isinstance(text, str):
            yield line, "", "", f"{text_field!r} should be text, not {text!r}"
        elif isinstance(label, (dict, list, bool)):
            yield line, "", "", f"{label_field!r} should be text or a whole number, not {label!r}"
        else:
            yield line, (text or "").strip(), "" if label is None else str(label).strip(), None


def read_all(paths: list[str], c: ClassifyConfig, encoding_errors: str, field_name: str) -> list[LabelledRow]:
    problems = _Problems()
    rows: list[LabelledRow] = []
    for path in paths:
        try:
            rows += read_labelled(path, c.text_field, c.label_field, encoding_errors, field_name)
        except CorpusError as exc:  # every file's bad rows in one message
            problems.lines += [str(exc)]
    if problems.lines:
        raise CorpusError("\n".join(problems.lines))
    return rows


def check_labels(rows: list[LabelledRow], labels: list[str], where: str) -> None:
    """CorpusError naming every row whose label is not one of `labels`."""
    known = set(labels)
    problems = _Problems()
    for row in rows:
        if row.label not in known:
            problems.add(row.where, f"label {row.label!r} is not one of {', '.join(labels)} ({where}); fix the row "
                                    "or list the label in classify.labels")
    problems.raise_any(f"Labelled data ({len(rows):,} rows)")


def stratified_split(rows: list[LabelledRow], fraction: float, seed: int
                     ) -> tuple[list[LabelledRow], list[LabelledRow]]:
    """(train, val): `fraction` of each label's rows, chosen by a generator seeded with `seed`, held out (at least
    one of a label that has two or more), each split keeping the rows' order."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row.label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_label):
        indices = by_label[label]
        n = min(max(round(len(indices) * fraction), 1), len(indices) - 1)
        held.update(rng.sample(indices, n))
    return ([row for i, row in enumerate(rows) if i not in held], [row for i, row in enumerate(rows) if i in held])


def load_labelled(data: DataConfig, c: ClassifyConfig, seed: int) -> LabelledData:
    """The labelled splits of a classifier's run: data.train, data.val (else a stratified split of
    data.val_fraction of the training rows, seeded) and classify.test, their labels checked against
    classify.labels or, without them, the training rows' labels, sorted."""
    train = read_all(data.train, c, data.encoding_errors, "data.train")
    labels = list(c.labels) or sorted({row.label for row in train})
    if len(labels) < 2:
        raise CorpusError(f"The training rows have one label only ({labels[0]!r}); a classifier needs at least two. "
                          "Add rows of other labels to data.train.")
    check_labels(train, labels, "data.train")
    if data.val:
        val = read_all(data.val, c, data.encoding_errors, "data.val")
    else:
        train, val = stratified_split(train, data.val_fraction, seed)
    test = read_all(c.test, c, data.encoding_errors, "classify.test")
    check_labels(val + test, labels, "the labels of data.train" if not c.labels else "classify.labels")
    if not val:
        raise CorpusError(f"data.train has too few rows ({len(train)}) to hold out validation rows; add rows or give "
                          "data.val.")
    return LabelledData(labels, train, val, test)
