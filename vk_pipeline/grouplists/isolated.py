"""Parse one file in a child process with a memory cap, a CPU cap and a wall-clock deadline.

Why a subprocess and not a step in a run: the sensor must answer within its tick either way, and
a child process is the one thing the parent can kill for sure when its time is up (a thread
cannot be stopped, and `MemoryError` in the code server's own heap took down its gRPC threads).
A run per file would cost a run launch (seconds, a process and a code load) for every drop. The
child imports only the reader (a tenth of a second), reads the file from the descriptor the
parent opened and checked (so it reads exactly that regular file, never a path that changed
since), and answers with JSON. What it cannot finish in time or memory becomes the file's error,
naming the limit; the caller's other files go on.

Run as `python -m vk_pipeline.grouplists.isolated NAME MEMORY_BYTES CPU_SECONDS` with the file on
standard input.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from typing import Any

from vk_pipeline.grouplists.excerpts import excerpt
from vk_pipeline.grouplists.reader import Entry, ParsedFile, Rejection, read_stream
from vk_pipeline.grouplists.refs import Ref

MEMORY_BYTES = 768 * 1024 * 1024
CPU_SECONDS = 20
DEADLINE_SECONDS = 10.0
_SHA_PREFIX = "sha256 "


def parse_isolated(
    fd: int,
    name: str,
    *,
    fallback_sha256: str,
    size: int,
    deadline: float = DEADLINE_SECONDS,
    memory_bytes: int = MEMORY_BYTES,
    cpu_seconds: int = CPU_SECONDS,
) -> ParsedFile:
    """Parse the open file `fd` (read from its current offset) in a limited child process.

    `fallback_sha256` names the file in the record if the child dies before it has hashed it.
    """
    command = [
        sys.executable,
        "-m",
        __name__,
        name,
        str(memory_bytes),
        str(max(1, int(cpu_seconds))),
    ]
    proc = subprocess.Popen(
        command,
        stdin=fd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        # Its own process group: killing it on the deadline leaves nothing behind.
        start_new_session=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    try:
        out, err = proc.communicate(timeout=max(0.1, deadline))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return _failed(
            name,
            out,
            fallback_sha256,
            size,
            f"reading it took longer than {deadline:.3g} s, the limit for one dropped file",
        )
    if proc.returncode == 0:
        try:
            return _from_json(out.decode("utf-8").split("\n", 1)[1])
        except (ValueError, IndexError, KeyError, TypeError):
            pass
    if proc.returncode == -signal.SIGXCPU or proc.returncode == -signal.SIGKILL:
        reason = f"reading it took more than {cpu_seconds} s of CPU, the limit for one file"
    elif b"MemoryError" in err:
        reason = (
            f"reading it needed more than {memory_bytes // 2**20} MB of memory, the limit "
            "for one file"
        )
    else:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        reason = f"the reader failed ({excerpt(last[0], 60)}); please report this file"
    return _failed(name, out, fallback_sha256, size, reason)


def _failed(name: str, out: bytes, fallback: str, size: int, reason: str) -> ParsedFile:
    first = out.split(b"\n", 1)[0].decode("ascii", "replace")
    sha = first[len(_SHA_PREFIX) :].strip() if first.startswith(_SHA_PREFIX) else fallback
    return ParsedFile(name, sha, size, file_error=reason)


def _to_json(parsed: ParsedFile) -> dict[str, Any]:
    return {
        "name": parsed.name,
        "sha256": parsed.sha256,
        "size": parsed.size,
        "encoding": parsed.encoding,
        "format": parsed.format,
        "lines": parsed.lines,
        "columns": parsed.columns,
        "file_error": parsed.file_error,
        "entries": [
            [e.line, e.position, e.text, e.ref.kind, e.ref.value, e.sheet] for e in parsed.entries
        ],
        "rejections": [[r.line, r.position, r.text, r.reason, r.sheet] for r in parsed.rejections],
    }


def _from_json(text: str) -> ParsedFile:
    data = json.loads(text)
    return ParsedFile(
        name=data["name"],
        sha256=data["sha256"],
        size=data["size"],
        encoding=data["encoding"],
        format=data["format"],
        lines=data["lines"],
        columns=list(data["columns"]),
        file_error=data["file_error"],
        entries=[
            Entry(line, pos, text, Ref(kind, value), sheet)
            for line, pos, text, kind, value, sheet in data["entries"]
        ],
        rejections=[Rejection(*r) for r in data["rejections"]],
    )


def main(argv: list[str]) -> int:
    name, memory, cpu = argv[0], int(argv[1]), int(argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    parsed = read_stream(sys.stdin.buffer, name, on_hashed=_announce)
    sys.stdout.write(json.dumps(_to_json(parsed), ensure_ascii=False, separators=(",", ":")))
    sys.stdout.flush()
    return 0


def _announce(sha256: str) -> None:
    sys.stdout.write(f"{_SHA_PREFIX}{sha256}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
