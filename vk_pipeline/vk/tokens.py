"""A pool of VK tokens: parsing, fingerprints, kinds, and which tokens VK has rejected.

Tokens are secrets: only their fingerprints (a short hash) are ever shown, in messages, metadata
and the shared rate budget's table.

Kinds are VK's (the method schema's `access_token_type`): "user", "group" (a community token)
and "service" (an app's service key). The client never asks a person which kind a token is: VK's
answers settle it (error 27: community, error 28: service, an `execute` whose wall.* call went
through: user), and the kind is kept in the shared budget for every process.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Collection, Iterable

# Errors that say the token itself is unusable (not the request, not the object): the token is
# set aside and the others carry on. 27/28 (wrong kind for the method) and 14 (captcha) are not
# here: the client learns the kind, or holds the token for a while, instead.
TOKEN_ERROR_CODES = frozenset({2, 5, 17, 24, 25, 37, 38})
KIND_ERROR_CODES = {27: "group", 28: "service"}
CAPTCHA = 14

USER = "user"
GROUP = "group"
SERVICE = "service"
KIND_NAMES = {USER: "user", GROUP: "community", SERVICE: "service"}

# VK's method schema (`access_token_type`, vk_pipeline_tests/data/vk-api-schema) for the methods
# this client calls. Copied, not shared with the emulator, so the two cannot share a mistake; a
# test checks this table against the vendored schema. Methods not listed take any kind.
METHOD_KINDS: dict[str, frozenset[str]] = {
    "execute": frozenset({USER, GROUP}),
    "groups.getById": frozenset({USER, GROUP, SERVICE}),
    "utils.resolveScreenName": frozenset({USER, GROUP, SERVICE}),
    "wall.get": frozenset({USER, SERVICE}),
    "wall.getById": frozenset({USER, SERVICE}),
    "wall.getComments": frozenset({USER, SERVICE}),
}


def may_call(kind: str | None, methods: Collection[str]) -> bool:
    """Whether a token of `kind` (None: not known yet, so maybe) may call every one of `methods`."""
    if kind is None:
        return True
    return all(kind in METHOD_KINDS.get(m, frozenset({kind})) for m in methods)


def restricted(methods: Collection[str]) -> bool:
    """Whether some kind of token may not call one of `methods`."""
    return any(len(METHOD_KINDS.get(m, frozenset(KIND_NAMES))) < len(KIND_NAMES) for m in methods)


def pack_refused_inside(methods: Collection[str]) -> bool:
    """Whether a token that may call `execute` may still be refused one of `methods` inside it
    (a community token's wall calls: error 27 for each of them)."""
    return any(may_call(k, {"execute"}) and not may_call(k, methods) for k in KIND_NAMES)


def needed_kinds(methods: Collection[str]) -> list[str]:
    """The kinds that may call every one of `methods`, by VK's names for them."""
    return [KIND_NAMES[k] for k in (USER, SERVICE, GROUP) if may_call(k, methods)]


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
    """The tokens of one client by fingerprint, minus those VK rejected during this client's life.

    A VK ID credential joins the pool under its own fingerprint, a user token whose value
    changes as it is refreshed (`secret` asks the credential for the current one)."""

    def __init__(
        self, tokens: Iterable[str], dynamic: dict[str, Callable[[], str]] | None = None
    ) -> None:
        self._tokens = {fingerprint(t): t for t in tokens}
        self._dynamic = dict(dynamic or {})
        for fp in self._dynamic:
            self._tokens[fp] = ""
        self.kinds: dict[str, str] = {fp: USER for fp in self._dynamic}
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
        dynamic = self._dynamic.get(fp)
        return dynamic() if dynamic is not None else self._tokens[fp]

    def is_dynamic(self, fp: str) -> bool:
        return fp in self._dynamic

    def kind(self, fp: str) -> str | None:
        return self.kinds.get(fp)

    def count_kinds(self, fps: Iterable[str] | None = None) -> dict[str, int]:
        """How many tokens of each kind ("unknown": not settled yet), by VK's names."""
        out: dict[str, int] = {}
        for fp in self._tokens if fps is None else fps:
            kind = self.kinds.get(fp)
            name = KIND_NAMES[kind] if kind else "unknown"
            out[name] = out.get(name, 0) + 1
        return out

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
