"""Reading the Dockerfile and .dockerignore the way Docker does, for the deployment tests that run
without an engine (`make stack-test` builds and boots the stack on a real one)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            stages.append(Stage(rest.split(" AS ")[-1].strip() if " AS " in rest else "final"))
        elif not stages:
            assert op == "ARG", line
            k, _, v = rest.partition("=")
            global_args[k] = v
        else:
            stages[-1].instructions.append((op, rest.strip()))
    return global_args, stages


def stage(name: str) -> Stage:
    return next(s for s in dockerfile()[1] if s.name == name)


def dockerfile_instruction(stage_name: str, op: str) -> list[str]:
    return [rest for o, rest in stage(stage_name).instructions if o == op]


def parse_env(rest: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in shlex.split(rest))


def dockerfile_env(stage_name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in dockerfile_instruction(stage_name, "ENV"):
        env.update(parse_env(rest))
    return env


def dockerignore_excludes(path: str) -> bool:
    """Docker's rules: patterns in order, the last match wins, `!` re-includes; a pattern
    matching a folder matches what is inside it."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        rx = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        rx = rx.replace(r"\?", "[^/]")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(rx, p) for p in prefixes):
            excluded = not negate
    return excluded
