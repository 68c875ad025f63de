"""VK's wire format for the client: a call, the VKScript of an `execute` pack, form values, and
the pairing of `execute_errors` with failed slots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One VK API method call, directly or as a slot of an `execute` pack."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)


def vkscript(calls: Sequence[Call]) -> str:
    """The VKScript for a pack: `return [API.a.b({...}), ...];`.

    JSON object literals are valid VKScript, so parameters need no escaping of their own.
    """
    parts = [
        f"API.{c.method}({json.dumps(c.params, ensure_ascii=False, separators=(',', ':'))})"
        for c in calls
    ]
    return "return [" + ",".join(parts) + "];"


def _pair_execute_errors(
    calls: Sequence[Call], slots: Sequence[Any], execute_errors: Sequence[dict[str, Any]]
) -> list[tuple[int | str, str] | None]:
    """The error of each `false` slot, or None for slots that succeeded.

    VK does not index `execute_errors`: entries come in call order, may include an extra entry for
    "execute" itself, and need not pair 1:1 with `false` slots. So each failed slot takes the next
    unused entry for its own method; a failed slot with no entry left is retried as transient.
    """
    queues: dict[str, list[tuple[int | str, str]]] = {}
    for e in execute_errors:
        method = str(e.get("method", ""))
        if method == "execute":
            continue
        queues.setdefault(method, []).append(
            (e.get("error_code", "unknown"), str(e.get("error_msg", "")))
        )
    out: list[tuple[int | str, str] | None] = []
    for call, slot in zip(calls, slots, strict=True):
        if slot is False:
            queue = queues.get(call.method)
            out.append(queue.pop(0) if queue else ("unpaired", "false slot without an error"))
        else:
            out.append(None)
    return out


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


# -- what a request's outcome tells the client's retry loops (internal signals) ------------


class _Transient(Exception):
    def __init__(self, code: int | str, message: str, *, wait: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.wait = wait


class _TooBig(Exception):
    pass


# The slots of a pack held back while a token of unknown kind is tried with one call.
TRIAL = "trial"


class _Reroute(Exception):
    """What VK said changes where the request may go (a token's kind was learned, a token was
    set aside, a VK ID token was refreshed): send it again at once, no backoff."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
