"""Where group-list files are dropped, and which files in it are ready to read."""

from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from vk_pipeline.grouplists.excerpts import escaped

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
    inode: int = 0
    device: int = 0

    @property
    def key(self) -> str:
        return str(self.path)

    @property
    def shown(self) -> str:
        """The name as logs and tables may show it: escaped, short (a name can hold a newline)."""
        return escaped(self.path.name)


@dataclass(frozen=True)
class RefusedEntry:
    """Something in the drop folder that is not read, and why; its content is never opened."""

    name: str  # escaped
    reason: str


_LINK = "a symbolic link: only regular files in the drop folder are read, links are not followed"


class NotRegular(Exception):
    """The entry changed into something that is not a regular file of the folder's own."""


def scan(
    folder: Path, settle: float, now: float | None = None
) -> tuple[list[DroppedFile], int, list[RefusedEntry]]:
    """Files at the top of `folder` ready to read, oldest first; how many are still settling;
    and the entries refused (links, devices, pipes, files hard-linked from elsewhere).

    Subfolders are not read: a list's name is its file's stem, and two folders could hold two
    different `cafes.txt`. Nothing is followed: `lstat` describes the entry itself.
    """
    now = time.time() if now is None else now
    ready: list[DroppedFile] = []
    refused: list[RefusedEntry] = []
    settling = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return [], 0, []
    for entry in entries:
        name = entry.name
        if name.startswith(_IGNORED_PREFIXES) or name.lower().endswith(_IGNORED_SUFFIXES):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # vanished or unreadable between listing and stat
        if stat.S_ISDIR(st.st_mode):
            continue
        problem = _not_regular(st)
        if problem:
            refused.append(RefusedEntry(escaped(name), problem))
            continue
        if now - st.st_mtime < settle:
            settling += 1
            continue
        ready.append(
            DroppedFile(Path(entry.path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        )
    ready.sort(key=lambda f: (f.mtime_ns, f.path.name))
    return ready, settling, refused


def _not_regular(st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return _LINK
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket): only regular files are read"
    if st.st_nlink > 1:
        # A hard link to a file elsewhere (an .env, a key) reads like a file of the folder's own.
        return (
            f"a file with {st.st_nlink} hard links (it is also elsewhere): only files that "
            "live in the drop folder alone are read; copy it in instead"
        )
    return None


def open_dropped(f: DroppedFile) -> int:
    """A read-only descriptor of exactly the entry `scan` saw; raises `NotRegular` or `OSError`.

    `O_NOFOLLOW` refuses a link put in its place since; `O_NONBLOCK` keeps a FIFO from hanging
    the open; the device and inode must be the ones scanned.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(f.path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(_LINK) from None
        raise
    try:
        st = os.fstat(fd)
        problem = _not_regular(st)
        if problem is None and (st.st_ino, st.st_dev) != (f.inode, f.device):
            problem = "it was replaced while being read; it is read on the next tick"
        if problem:
            raise NotRegular(problem)
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise
