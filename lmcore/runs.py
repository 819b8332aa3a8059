"""The run folder: where a run's config, tokenizer, metrics and checkpoints live, and how to read them back."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .checkpoint import CHECKPOINT_DIR, TOKENIZER_DIR, checkpoint_path
from .config import RunConfig, check_run_name, config_from_dict, save_config
from .errors import CheckpointError, ConfigError, TrainingError
from .fileio import write_atomic
from .metrics import metric_record, read_metric_events

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
ATTENTION_DIR = "attention"  # snapshots saved by an AttentionProbe with a folder (lmcore.attention.save_snapshot)
LOG_FILE = "train.log"  # a detached `lmcore train --events` process's stdout and stderr
LIVE_STATUSES = ("running", "paused")  # what status.json says while a process trains the run
# "interrupted" is never written: run_info reports it for a run that says it is live but whose process is gone.
STATUSES = (*LIVE_STATUSES, "finished", "stopped", "failed", "interrupted")
HEARTBEAT_INTERVAL_S = 5.0  # how often a training process renews status.json's heartbeat
HEARTBEAT_STALE_S = 30.0  # a heartbeat older than this means the process is gone (or its machine is)
_status_lock = threading.Lock()  # the training thread and the heartbeat thread both update status.json
RUN_STAMP = "%Y%m%d-%H%M%S"  # RunFolder.create names runs "<name>-<RUN_STAMP>", then "-2", "-3"... if taken
_STAMPED_NAME = re.compile(r"^(?P<base>.+)-(?P<stamp>\d{8}-\d{6})(?:-\d+)?$")


def split_run_name(folder_name: str) -> tuple[str, datetime | None]:
    """'baby-gpt-char-20261124-001148' -> ('baby-gpt-char', datetime(2026, 11, 24, 0, 11, 48)). Any other folder
    name comes back whole with None, including one whose stamp is no real date: a run renamed by hand to
    'my-run-20240230-120000' (issue 23)."""
    match = _STAMPED_NAME.match(folder_name)
    if match:
        with contextlib.suppress(ValueError):
            return match["base"], datetime.strptime(match["stamp"], RUN_STAMP)
    return folder_name, None


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._setting_up = False  # made by create(), its config and status not yet written (see _setup_step)

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> RunFolder:
        """A new, empty run folder. Until its config and status are written, failing to write them (a full disk)
        removes it again."""
        check_run_name(name)  # one path component: the run lands in runs_dir, not beside or below it
        stamp = time.strftime(RUN_STAMP)
        path = Path(runs_dir) / f"{name}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = Path(runs_dir) / f"{name}-{stamp}-{suffix}"
        try:
            (path / CHECKPOINT_DIR).mkdir(parents=True)
        except OSError as exc:
            raise ConfigError(f"Cannot create the run folder {path}: {exc.strerror or exc}. Check that runs_dir "
                              f"({runs_dir}) is a folder you can write to, or give another with --runs-dir.") from None
        folder = cls(path)
        folder._setting_up = True
        return folder

    @contextlib.contextmanager
    def _setup_step(self):
        """While the folder is being set up, an OSError leaves no half-made run folder behind and becomes a
        TrainingError saying what to do; afterwards errors pass through (the trainer reports them)."""
        try:
            yield
        except OSError as exc:
            if not self._setting_up:
                raise
            shutil.rmtree(self.path, ignore_errors=True)
            advice = "Free some space on that disk, or give" if exc.errno == errno.ENOSPC else "Give"
            raise TrainingError(f"Cannot set up the run folder {self.path}: {exc.strerror or exc}. {advice} another "
                                "runs folder (runs_dir in the config, or --runs-dir), then start again.") from None

    config_path = property(lambda self: self.path / CONFIG_FILE)
    metrics_path = property(lambda self: self.path / METRICS_FILE)
    status_path = property(lambda self: self.path / STATUS_FILE)
    tokenizer_dir = property(lambda self: self.path / TOKENIZER_DIR)
    attention_dir = property(lambda self: self.path / ATTENTION_DIR)
    log_path = property(lambda self: self.path / LOG_FILE)

    def checkpoint_path(self, which: str = "last") -> Path:
        return checkpoint_path(self.path, which)

    def save_config(self, config: RunConfig) -> None:
        with self._setup_step():
            save_config(config, self.config_path)

    def load_config(self) -> RunConfig:
        import tomllib

        if not self.config_path.is_file():
            raise CheckpointError(f"{self.path} is not a run folder: it has no {CONFIG_FILE}.")
        try:
            raw = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{self.config_path} is corrupt ({exc}).") from None
        return config_from_dict(raw, source=str(self.config_path))

    def write_status(self, status: str, message: str = "", **fields: Any) -> None:
        self.update_status(status=status, message=message, updated=time.time(), **fields)

    def update_status(self, **fields: Any) -> None:
        """Merge `fields` into status.json, keeping the others."""
        with _status_lock, self._setup_step():
            current = self.read_status()
            current.update(fields)
            write_atomic(self.status_path, json.dumps(current, indent=2).encode("utf-8"))
        self._setting_up = False  # config first, then status: the folder holds a run now

    @contextlib.contextmanager
    def heartbeat(self):
        """Renew status.json's heartbeat every HEARTBEAT_INTERVAL_S while the block runs (paused or not), so a
        reader can tell a live run from one whose process died (is_alive)."""
        done = threading.Event()

        def beat():
            while not done.wait(HEARTBEAT_INTERVAL_S):
                with contextlib.suppress(OSError):  # a full disk is the training thread's to report
                    self.update_status(heartbeat=time.time())

        thread = threading.Thread(target=beat, name="lmcore-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every metrics record; a line cut short by a crash, or garbled, is skipped with a warning naming it."""
        return [metric_record(event) for event in read_metric_events(self.metrics_path)]

    def truncate_metrics(self, step: int) -> None:
        """Drop records past `step`: a resumed run redoes those steps and must not show them twice."""
        kept = [r for r in self.read_metrics() if r["step"] <= step]
        write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))


def liveness() -> dict[str, Any]:
    """The status.json fields that say which process trains a run, and that it still does (see is_alive)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}


def is_alive(status: dict[str, Any]) -> bool:
    """Whether a process still trains the run of this status.json: it says running or paused, its heartbeat is
    fresh and, on this machine, its process exists."""
    heartbeat = status.get("heartbeat")
    if status.get("status") not in LIVE_STATUSES or not isinstance(heartbeat, (int, float)):
        return False
    if time.time() - heartbeat > HEARTBEAT_STALE_S:
        return False
    return status.get("host") != socket.gethostname() or _process_exists(status.get("pid"))


def _process_exists(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:  # os.kill(0, ...) would signal our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@dataclass
class RunInfo:
    path: Path
    name: str
    family: str
    parameters: int
    status: str  # one of STATUSES
    step: int
    best_val_loss: float | None
    updated: float
    pid: int | None = None  # the process training the run while it is alive (on status.json's host)


def run_info(path: Path) -> RunInfo:
    folder = RunFolder(path)
    status = folder.read_status()
    try:
        family = folder.load_config().family
    except CheckpointError:
        family = "?"
    alive = is_alive(status)
    written = status.get("status", "unknown")
    return RunInfo(folder.path, folder.path.name, family, int(status.get("parameters", 0)),
                   "interrupted" if written in LIVE_STATUSES and not alive else written, int(status.get("step", 0)),
                   status.get("best_val_loss"), float(status.get("updated", folder.path.stat().st_mtime)),
                   status.get("pid") if alive else None)


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run folder under `runs_dir`, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = [run_info(p) for p in runs_dir.iterdir() if (p / CONFIG_FILE).is_file()]
    return sorted(runs, key=lambda r: r.updated, reverse=True)


def delete_run(path: Path) -> None:
    if not (Path(path) / CONFIG_FILE).is_file():
        raise CheckpointError(f"Refusing to delete {path}: it is not a run folder.")
    shutil.rmtree(path)


def rename_run(path: Path, new_name: str) -> Path:
    """Rename a run's folder to `new_name` (the rules of a run's name), beside where it is."""
    new_name = new_name.strip()
    check_run_name(new_name, "New name")
    target = Path(path).with_name(new_name)
    if target.exists():
        raise CheckpointError(f"Cannot rename the run to {new_name!r}: {target} already exists; pick another name.")
    try:
        return Path(path).rename(target)
    except OSError as exc:
        raise CheckpointError(f"Cannot rename {path} to {new_name!r}: {exc.strerror or exc}.") from None
