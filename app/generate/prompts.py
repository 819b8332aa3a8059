"""Saved prompts, without Qt: named prompts kept in one JSON file (never pickle), for the Generate tab's library.

    {"version": 1, "prompts": {"name": "the prompt's text", ...}}
"""
from __future__ import annotations

import json
from pathlib import Path

from lmcore.errors import LMCoreError
from lmcore.fileio import write_atomic

PROMPTS_FILE = "prompts.json"
FORMAT_VERSION = 1


class PromptLibraryError(LMCoreError):
    """The prompt library cannot be read or written; the message says which file and what to do."""


def read_prompts(path: Path) -> dict[str, str]:
    """The prompts a library file holds (none while it does not exist)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PromptLibraryError(f"The saved prompts in {path} cannot be read ({exc}); fix or remove the file "
                                 "to save prompts again.") from None
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise PromptLibraryError(f"{path} is not a file of saved prompts (it needs a \"prompts\" object of names "
                                 "and texts); fix or remove it to save prompts again.")
    return prompts


class PromptLibrary:
    """The prompts saved in `folder`. A file that cannot be read leaves the library empty, with `problem` saying
    why, and is never written over (it may hold prompts the user wants back)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / PROMPTS_FILE
        self.prompts: dict[str, str] = {}
        self.problem: str | None = None
        try:
            self.prompts = read_prompts(self.path)
        except PromptLibraryError as exc:
            self.problem = str(exc)

    def names(self) -> list[str]:
        return sorted(self.prompts, key=str.casefold)

    def text(self, name: str) -> str:
        return self.prompts[name]

    def save(self, name: str, text: str) -> str:
        """Save `text` under `name` (trimmed), replacing a prompt of that name; returns the name."""
        name = name.strip()
        if not name:
            raise PromptLibraryError("Type a name for the prompt first, then save it.")
        self._write({**self.prompts, name: text})
        return name

    def delete(self, name: str) -> None:
        self._write({key: value for key, value in self.prompts.items() if key != name})

    def _write(self, prompts: dict[str, str]) -> None:
        if self.problem:
            raise PromptLibraryError(self.problem)
        data = json.dumps({"version": FORMAT_VERSION, "prompts": prompts}, ensure_ascii=False, indent=2)
        try:
            write_atomic(self.path, data.encode("utf-8"))
        except OSError as exc:
            raise PromptLibraryError(f"Cannot save the prompts to {self.path}: {exc.strerror or exc}. Check that "
                                     "the folder can be written to.") from None
        self.prompts = prompts
