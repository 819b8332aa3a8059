"""Chat mode, without Qt: a conversation kept as the text the model continues.

A model trained on dialogue-shaped text (a play, a chat log) answers a message when the message is written as a
turn of that text: the user's message goes in as "\\nUser: {message}\\n{Bot}:", the model writes on from there,
and its reply ends where it starts the user's next turn ("\\nUser:", given to the engine as a stop string). The
whole conversation is the next prompt; the engine's window sliding keeps what fits in the model's context.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class _Token(Protocol):
    text: str


T = TypeVar("T", bound=_Token)
DEFAULT_USER, DEFAULT_BOT = "User", "Bot"


@dataclass(frozen=True)
class Speakers:
    """The names the turns are written under: "User"/"Bot", or what the training text uses ("ROMEO"/"JULIET")."""
    user: str = DEFAULT_USER
    bot: str = DEFAULT_BOT

    @property
    def stop(self) -> str:
        """Where the model's reply ends: where it starts the user's next turn."""
        return f"\n{self.user}:"

    def turn(self, message: str) -> str:
        """The text a message adds to the conversation, up to where the model's reply starts."""
        return f"\n{self.user}: {message}\n{self.bot}:"


class ChatTranscript(Generic[T]):
    """The conversation so far: the user's turns as text, the model's replies as their tokens (anything with a
    `text`), in order. Sending a turn is three steps, as the worker answers: `begin_turn` (the prompt to send),
    `reply_started`, then `add` for each batch of tokens and `reply_finished`; `turn_failed` forgets a turn the
    worker refused (the transcript is as it was)."""

    def __init__(self):
        self.parts: list[str | list[T]] = []
        self._sent: tuple[str, str] | None = None  # (turn text, stop string) of the turn sent, until it starts
        self._stop = ""  # the stop string of the reply being written

    def text(self) -> str:
        return "".join(part if isinstance(part, str) else _joined(part) for part in self.parts)

    def tokens(self) -> list[T]:
        """The model's tokens, every reply's, in order: the chat view's token indices."""
        return [token for part in self.parts if not isinstance(part, str) for token in part]

    def begin_turn(self, message: str, speakers: Speakers) -> str:
        """The prompt that asks the model to answer `message`: the whole conversation and the new turn."""
        turn = speakers.turn(message)
        if not self.parts:  # the conversation starts at the top, not below an empty line
            turn = turn.lstrip("\n")
        self._sent = (turn, speakers.stop)
        return self.text() + turn

    def reply_started(self) -> None:
        turn, self._stop = self._sent
        self._sent = None
        self.parts += [turn, []]

    def add(self, tokens: list[T]) -> int:
        """Tokens of the reply being written; returns how many it has."""
        reply = self.parts[-1]
        reply.extend(tokens)
        return len(reply)

    def reply_finished(self) -> None:
        """Cut the reply where the model began the user's next turn: that turn is the user's to write."""
        reply = self.parts[-1]
        cut = _joined(reply).find(self._stop)
        if cut < 0:  # it ran out of tokens (or was stopped) before that
            return
        end = kept = 0
        for token in reply:
            if end + len(token.text) > cut:
                break
            end += len(token.text)
            kept += 1
        del reply[kept:]

    def turn_failed(self) -> None:
        self._sent = None

    def clear(self) -> None:
        self.parts, self._sent = [], None


def _joined(tokens) -> str:
    return "".join(token.text for token in tokens)
