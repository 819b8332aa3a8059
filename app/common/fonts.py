"""Whether this computer has a font for the scripts a text is written in. Qt draws a box for a character that no
installed font has, and nothing else would tell the user why, or what to install."""
from __future__ import annotations

import unicodedata
from collections.abc import Callable

from PySide6.QtGui import QFontDatabase

WritingSystem = QFontDatabase.WritingSystem
CJK_FONT = "Noto Sans CJK (Debian and Ubuntu: fonts-noto-cjk)"
NOTO_CORE = "Noto Sans {} (Debian and Ubuntu: fonts-noto-core)"
# (start of the Unicode character name, the writing system Qt knows it by, the script's name, a font with it)
SCRIPTS = (
    ("CJK UNIFIED IDEOGRAPH", WritingSystem.SimplifiedChinese, "Chinese", CJK_FONT),
    ("HIRAGANA", WritingSystem.Japanese, "Japanese", CJK_FONT),
    ("KATAKANA", WritingSystem.Japanese, "Japanese", CJK_FONT),
    ("HANGUL", WritingSystem.Korean, "Korean", CJK_FONT),
    ("ARABIC", WritingSystem.Arabic, "Arabic", NOTO_CORE.format("Arabic")),
    ("HEBREW", WritingSystem.Hebrew, "Hebrew", NOTO_CORE.format("Hebrew")),
    ("DEVANAGARI", WritingSystem.Devanagari, "Devanagari", NOTO_CORE.format("Devanagari")),
    ("BENGALI", WritingSystem.Bengali, "Bengali", NOTO_CORE.format("Bengali")),
    ("TAMIL", WritingSystem.Tamil, "Tamil", NOTO_CORE.format("Tamil")),
    ("THAI", WritingSystem.Thai, "Thai", NOTO_CORE.format("Thai")),
    ("GEORGIAN", WritingSystem.Georgian, "Georgian", NOTO_CORE.format("Georgian")),
    ("ARMENIAN", WritingSystem.Armenian, "Armenian", NOTO_CORE.format("Armenian")),
    ("CYRILLIC", WritingSystem.Cyrillic, "Cyrillic", "DejaVu Sans (Debian and Ubuntu: fonts-dejavu)"),
    ("GREEK", WritingSystem.Greek, "Greek", "DejaVu Sans (Debian and Ubuntu: fonts-dejavu)"),
)


def missing_fonts(text: str, families: Callable[[WritingSystem], list[str]] | None = None) -> list[tuple[str, str]]:
    """(script, a font to install) for each script in `text` that no installed font can draw, in order of
    appearance. `families` lists the installed fonts with a writing system (Qt's font database by default)."""
    families = families or QFontDatabase.families
    found: dict[str, tuple[WritingSystem, str]] = {}
    for char in dict.fromkeys(c for c in text if ord(c) > 0x7F):
        name = unicodedata.name(char, "")
        for prefix, system, script, font in SCRIPTS:
            if name.startswith(prefix):
                found.setdefault(script, (system, font))
                break
    return [(script, font) for script, (system, font) in found.items() if not families(system)]


def missing_fonts_message(text: str) -> str | None:
    """One sentence for the user, or None when every script in `text` has a font here."""
    missing = missing_fonts(text)
    if not missing:
        return None
    scripts = " and ".join(script for script, _ in missing)
    fonts = "; ".join(dict.fromkeys(font for _, font in missing))
    return (f"No font on this computer can show {scripts} text, so it appears as boxes here (training is not "
            f"affected). Install one, e.g. {fonts}, then restart the app.")
