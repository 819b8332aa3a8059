"""How the app writes numbers, sizes, durations, run names and tokens: one function each, used by every panel."""
from __future__ import annotations

from lmcore.runs import split_run_name

FAMILY_NAMES = {"transformer": "Transformer", "rnn": "RNN", "encoder": "Encoder (masked LM)", "mlp": "MLP",
                "conv": "CNN"}
# Whitespace drawn as a glyph, so a token that is a space or a line break can be seen and pointed at
VISIBLE_WHITESPACE = {"\n": "⏎", " ": "·", "\t": "⇥", "\r": "␍"}
EMPTY_TOKEN = "∅"


def format_count(n: int) -> str:
    """1234567 -> '1.23 M': parameter counts at a glance."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.3g} {suffix}"
    return str(n)


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file managers show sizes)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """0.0123 -> '12 ms', 2.5 -> '2.5 s', 12.25 -> '12.2 s', 75 -> '1 min 15 s', 3700 -> '1 h 01 min'."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600} h {whole // 60 % 60:02d} min"
    return f"{whole // 60} min {whole % 60:02d} s"


def label_parts(name: str) -> tuple[str, str]:
    """'baby-gpt-char-20261124-001148' -> ('baby-gpt-char', '24 Nov 00:11'); a renamed run keeps its name."""
    base, when = split_run_name(name)
    return base, when.strftime("%d %b %H:%M").lstrip("0") if when else ""


def run_label(name: str) -> str:
    """A run's name for legends and titles: 'baby-gpt-char · 24 Nov 00:11'."""
    base, when = label_parts(name)
    return f"{base} · {when}" if when else base


def visible_token(text: str, limit: int | None = None) -> str:
    """A token as the app shows it: whitespace as glyphs, other control characters escaped, the empty token as ∅,
    cut to `limit` characters with "…"."""
    shown = "".join(VISIBLE_WHITESPACE.get(c, c if c.isprintable() else f"\\x{ord(c):02x}") for c in text)
    shown = shown or EMPTY_TOKEN
    return shown if limit is None or len(shown) <= limit else shown[:limit - 1] + "…"
