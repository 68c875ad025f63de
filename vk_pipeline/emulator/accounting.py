"""Request counters of the emulator, overall, per method and per token (by key)."""

from __future__ import annotations

import copy
import threading
from typing import Any


def _counters() -> dict[str, Any]:
    return {"http_requests": 0, "api_calls": 0, "errors": {}}


def _scope() -> dict[str, Any]:
    """Counters of the whole server or of one token."""
    return {
        **_counters(),
        "by_method": {},
        "faults": {},
        "rate_limited": 0,
        "accepted": 0,
        "first_accepted_at": None,
        "last_accepted_at": None,
    }


def _vkid_counters() -> dict[str, Any]:
    return {"refreshes": 0, "refused": 0, "errors": {}}


def _vkid() -> dict[str, Any]:
    return {**_vkid_counters(), "by_client": {}}


class Stats:
    """Thread-safe request counters; keys in the README ("Access, limits, accounting")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._data = {**_scope(), "by_token": {}, "vkid": _vkid()}

    def _tops(self, tkey: str) -> list[dict[str, Any]]:
        d = self._data
        return [d, d["by_token"].setdefault(tkey, _scope())]

    def _scopes(self, tkey: str, method: str) -> list[dict[str, Any]]:
        out = []
        for top in self._tops(tkey):
            out += [top, top["by_method"].setdefault(method, _counters())]
        return out

    def bump(self, tkey: str, method: str, what: str, kind: str | None = None) -> None:
        with self._lock:
            for scope in self._scopes(tkey, method):
                scope[what] += 1
            if kind is not None:
                # So a test can tell which kind of token earned an error (27, 28, ...).
                self._data["by_token"][tkey]["kind"] = kind

    def vkid(self, client_id: str | None, error: str | None) -> None:
        """One answer of VK ID's refresh grant: a refresh, or a refusal with its `error`."""
        with self._lock:
            top = self._data["vkid"]
            scopes = [top]
            if client_id is not None:
                scopes.append(top["by_client"].setdefault(client_id, _vkid_counters()))
            for scope in scopes:
                if error is None:
                    scope["refreshes"] += 1
                else:
                    scope["refused"] += 1
                    scope["errors"][error] = scope["errors"].get(error, 0) + 1

    def error(self, tkey: str, method: str, code: int) -> None:
        key = str(code)
        with self._lock:
            for scope in self._scopes(tkey, method):
                scope["errors"][key] = scope["errors"].get(key, 0) + 1

    def fault(self, tkey: str, kind: str) -> None:
        with self._lock:
            for top in self._tops(tkey):
                top["faults"][kind] = top["faults"].get(kind, 0) + 1

    def rate_limited(self, tkey: str) -> None:
        with self._lock:
            for top in self._tops(tkey):
                top["rate_limited"] += 1

    def accepted(self, tkey: str, arrival: float) -> None:
        with self._lock:
            for top in self._tops(tkey):
                top["accepted"] += 1
                first, last = top["first_accepted_at"], top["last_accepted_at"]
                # Threads may record out of arrival order: keep the extremes.
                top["first_accepted_at"] = arrival if first is None else min(first, arrival)
                top["last_accepted_at"] = arrival if last is None else max(last, arrival)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._data)
