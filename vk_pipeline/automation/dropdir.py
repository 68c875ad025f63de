"""Where group-list files are dropped, and which files in it are ready to read."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

ENV_DROP_DIR = "VK_PIPELINE_DROP_DIR"
ENV_SETTLE = "VK_PIPELINE_DROP_SETTLE_SECONDS"
# A file still being copied in must not be read half-way; one modified this recently waits a tick.
DEFAULT_SETTLE_SECONDS = 5.0
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Editors' and office suites' lock and temp files, partial downloads: never group lists.
_IGNORED_PREFIXES = (".", "~$", ".~lock")
_IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".swp", ".download", "~")


def drop_dir() -> Path:
    """`$VK_PIPELINE_DROP_DIR`, else `<$VK_PIPELINE_HOME or <repo>/.local>/drops`; created."""
    configured = os.environ.get(ENV_DROP_DIR)
    if configured:
        path = Path(configured).expanduser()
    else:
        home = os.environ.get("VK_PIPELINE_HOME")
        path = (Path(home).expanduser() if home else _PROJECT_ROOT / ".local") / "drops"
    path.mkdir(parents=True, exist_ok=True)
    return path


def settle_seconds() -> float:
    raw = os.environ.get(ENV_SETTLE)
    if raw is None:
        return DEFAULT_SETTLE_SECONDS
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{ENV_SETTLE}={raw!r} is not a number of seconds") from None


@dataclass(frozen=True)
class DroppedFile:
    path: Path
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        return str(self.path)


def scan(folder: Path, settle: float, now: float | None = None) -> tuple[list[DroppedFile], int]:
    """Files at the top of `folder` ready to read, oldest first, and how many are still settling.

    Subfolders are not read: a list's name is its file's stem, and two folders could hold two
    different `cafes.txt`.
    """
    now = time.time() if now is None else now
    ready: list[DroppedFile] = []
    settling = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return [], 0
    for entry in entries:
        name = entry.name
        if name.startswith(_IGNORED_PREFIXES) or name.lower().endswith(_IGNORED_SUFFIXES):
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:
            continue  # vanished or unreadable between listing and stat
        if now - st.st_mtime < settle:
            settling += 1
            continue
        ready.append(DroppedFile(Path(entry.path), st.st_size, st.st_mtime_ns))
    ready.sort(key=lambda f: (f.mtime_ns, f.path.name))
    return ready, settling
