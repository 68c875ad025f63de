"""Text from a dropped file (or its name) as logs and tables may show it: short, escaped, and
without secrets. Pure string work; the reader, the sensor and the isolated reader use it."""

from __future__ import annotations

import re
import unicodedata

EXCERPT_CHARS = 80
# `NAME=value` (an .env or config line) and long token-shaped runs: shown without their value.
_ASSIGNMENT = re.compile(r"^(\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*[=:]\s*)\S.*$")
_TOKENISH = re.compile(r"[A-Za-z0-9_\-.+/=]{32,}")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped, secret-free stand-in for text that came from a file (or its name).

    Control and format characters (newlines, NUL, bidi overrides) are shown escaped so a line or
    a file name cannot split or disguise a log line; a `NAME=value` line and any long token-like
    run lose their value, so a dropped .env file leaves no secret in tables or logs.
    """
    text = _ASSIGNMENT.sub(r"\1***", text[: limit * 4])
    return escaped(_TOKENISH.sub(lambda m: m.group(0)[:4] + "***", text), limit)


def escaped(text: str, limit: int = 200) -> str:
    """`text` with control and format characters escaped, cut to `limit` characters: for file
    names, which must stay recognisable (and name their list) but never split a log line."""
    out: list[str] = []
    for ch in text[: limit * 2]:
        if ch in "\t" or not unicodedata.category(ch).startswith("C"):
            out.append(ch)
        elif ch == "\x00":
            out.append("\\0")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    shown = "".join(out)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
