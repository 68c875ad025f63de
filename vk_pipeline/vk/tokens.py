"""A pool of VK tokens: parsing, fingerprints, and which tokens VK has rejected.

Tokens are secrets: only their fingerprints (a short hash) are ever shown, in messages, metadata
and the shared rate budget's table.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable

# Errors that say the token itself is unusable (not the request, not the object): the token is
# set aside and the others carry on. 27: a community token asked for a user/service method.
TOKEN_ERROR_CODES = frozenset({2, 5, 14, 17, 24, 25, 27, 28, 37, 38})


def split_tokens(value: str | Iterable[str] | None) -> list[str]:
    """Tokens from `VK_ACCESS_TOKENS`-style text (comma- or newline-separated), in order, once."""
    if value is None:
        return []
    parts = re.split(r"[,\s]+", value) if isinstance(value, str) else list(value)
    seen: dict[str, None] = {}
    for part in parts:
        part = part.strip()
        if part:
            seen.setdefault(part, None)
    return list(seen)


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible name for a token (first 8 hex digits of its SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


class TokenPool:
    """The tokens of one client by fingerprint, minus those VK rejected during this client's life."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = {fingerprint(t): t for t in tokens}
        self._retired: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"TokenPool({sorted(self._tokens)})"

    @property
    def fingerprints(self) -> list[str]:
        return list(self._tokens)

    def active(self) -> list[str]:
        with self._lock:
            return [fp for fp in self._tokens if fp not in self._retired]

    def secret(self, fp: str) -> str:
        return self._tokens[fp]

    def retire(self, fp: str, reason: str) -> bool:
        """Set a token aside; False if it already was."""
        with self._lock:
            if fp in self._retired:
                return False
            self._retired[fp] = reason
            return True

    @property
    def retired(self) -> dict[str, str]:
        with self._lock:
            return dict(self._retired)

    def describe_retired(self) -> str:
        return "; ".join(f"token {fp}: {why}" for fp, why in self.retired.items())
