"""Where the bundled files are: found next to the package, so the app runs from any folder."""
from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
PRESETS_DIR = RESOURCES / "presets"
SAMPLE_CORPUS = RESOURCES / "corpora" / "tinyshakespeare.txt"
ICONS_DIR = RESOURCES / "icons"
DEFAULT_PRESET = "baby-gpt-char"
