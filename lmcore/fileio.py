"""Small file helpers shared by the run folder, checkpoints, tokenizers and the encoding cache."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # write_atomic's temp files: ".<name>.<random>.tmp" beside the file they become


def write_atomic(path: Path, *chunks: bytes | memoryview) -> None:
    """Write the chunks, one after another, so that `path` is either the old file or the complete new one, never
    half of it. On any error (a full disk included) the temp file is removed and the error raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; run folders are meant to be shared and read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_temp_files(folder: Path) -> None:
    """Delete what write_atomic calls left in `folder` and below when their process was killed mid-write (kill -9
    skips every cleanup). Only for a folder no other process is writing to."""
    for stale in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
