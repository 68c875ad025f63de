"""Per-client accounting, published by the assets as materialization metadata."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClientStats:
    http_requests: int = 0
    retries: int = 0
    requests_by_method: Counter[str] = field(default_factory=Counter)
    calls_by_method: Counter[str] = field(default_factory=Counter)
    # keys like "wall.getComments:212" or "execute:http_503"
    errors: Counter[str] = field(default_factory=Counter)
    # The pool by kind ("unknown" until VK's answers settle it), the routing note when plain
    # paging replaced execute, and tokens set aside (fingerprint → why).
    token_kinds: dict[str, int] = field(default_factory=dict)
    routing: str | None = None
    held: dict[str, str] = field(default_factory=dict)
    vkid_refreshes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def request(self, method: str, inner_calls: dict[str, int] | None = None) -> None:
        with self._lock:
            self.http_requests += 1
            self.requests_by_method[method] += 1
            if inner_calls is None:
                self.calls_by_method[method] += 1
            else:
                self.calls_by_method.update(inner_calls)

    def retry(self) -> None:
        with self._lock:
            self.retries += 1

    def error(self, method: str, code: int | str) -> None:
        with self._lock:
            self.errors[f"{method}:{code}"] += 1

    @property
    def api_calls(self) -> int:
        return sum(self.calls_by_method.values())

    def as_metadata(self) -> dict[str, Any]:
        return {
            "vk_http_requests": self.http_requests,
            "vk_api_calls": self.api_calls,
            "vk_retries": self.retries,
            "vk_requests_by_method": dict(self.requests_by_method),
            "vk_calls_by_method": dict(self.calls_by_method),
            "vk_errors": dict(self.errors),
            **({"vk_token_kinds": dict(self.token_kinds)} if self.token_kinds else {}),
            **({"vk_routing": self.routing} if self.routing else {}),
            **({"vk_tokens_set_aside": dict(self.held)} if self.held else {}),
            **({"vk_id_refreshes": self.vkid_refreshes} if self.vkid_refreshes else {}),
        }
