"""The emulator's tokens: kind, rate window, daily quotas, expiry/revocation and captcha marks.

Tokens are keyed by value in memory only; everything that leaves this module names a token by
its key, `sha256(token)[:8]`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vk_pipeline.emulator.tokens import DEFAULT_RATES, EXPIRED_MSG, KINDS, REVOKED_MSG

QUOTA_PERIOD_SECONDS = 86_400.0
RATE_WINDOW_SECONDS = 1.0


def token_key(token: str | None) -> str:
    if not token:
        return "none"
    return hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass
class TokenState:
    kind: str  # tokens.USER | GROUP | SERVICE
    key: str
    window: deque[float] = field(default_factory=deque)
    rate: float | None = None  # per-token override of the kind's rate
    quotas: dict[str, int] = field(default_factory=dict)  # per-token daily limits by method
    used: dict[str, int] = field(default_factory=dict)
    exhausted: set[str] = field(default_factory=set)
    expires_at: float | None = None  # server clock; VK ID access tokens and `token_ttls`
    revoked: bool = False
    captcha_left: int = 0  # the next N requests answer 14
    captcha_until: float | None = None  # ... and/or every request until then
    vkid_client: str | None = None  # the VK ID app that minted it


class TokenRegistry:
    """All accepted tokens and the per-token limits; thread-safe."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        rate: float,
        group_rate: float | None,
        service_rate: float | None,
        daily_quotas: dict[str, int],
    ) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self._tokens: dict[str, TokenState] = {}
        self._rates: dict[str, float | None] = {"user": float(rate)}
        self._rates["group"] = None if group_rate is None else float(group_rate)
        self._rates["service"] = None if service_rate is None else float(service_rate)
        self.daily_quotas = daily_quotas
        self._quota_started = clock()

    # ------------------------------------------------------------------ tokens

    def add(
        self,
        token: str,
        kind: str,
        *,
        expires_at: float | None = None,
        vkid_client: str | None = None,
    ) -> TokenState:
        if kind not in KINDS:
            raise ValueError(f"unknown token kind {kind!r}")
        st = TokenState(kind, token_key(token), expires_at=expires_at, vkid_client=vkid_client)
        with self.lock:
            old = self._tokens.get(token)
            if old is not None and old.kind != kind:
                raise ValueError(f"token (key {st.key}) given as {old.kind} and {kind} token")
            self._tokens[token] = st
        return st

    def get(self, token: str | None) -> TokenState | None:
        return self._tokens.get(token) if token else None

    def __len__(self) -> int:
        return len(self._tokens)

    def __iter__(self) -> Iterator[TokenState]:
        return iter(list(self._tokens.values()))

    def state(self, token: str | None = None, *, key: str | None = None) -> TokenState:
        """A configured token's state, given by value or by its key (sha256[:8])."""
        if token is not None:
            st = self._tokens.get(token)
            label = token_key(token)
        else:
            st = next((s for s in self._tokens.values() if s.key == key), None)
            label = str(key)
        if st is None:
            raise ValueError(f"unknown token (key {label})")
        return st

    def auth_error(self, st: TokenState, now: float) -> str | None:
        """Error 5's message when the token no longer works, else None."""
        if st.revoked:
            return REVOKED_MSG
        if st.expires_at is not None and now >= st.expires_at:
            return EXPIRED_MSG
        return None

    def expire(self, st: TokenState) -> None:
        with self.lock:
            st.expires_at = self.clock()

    def revoke(self, st: TokenState) -> None:
        with self.lock:
            st.revoked = True

    def require_captcha(
        self, st: TokenState, requests: int | None = None, seconds: float | None = None
    ) -> None:
        """The next `requests` requests and/or all requests for `seconds` answer 14 (0: clear)."""
        if requests is not None and int(requests) < 0:
            raise ValueError(f"captcha requests must be >= 0, got {requests!r}")
        if seconds is not None and float(seconds) < 0:
            raise ValueError(f"captcha seconds must be >= 0, got {seconds!r}")
        with self.lock:
            if requests is not None:
                st.captcha_left = int(requests)
            if seconds is not None:
                st.captcha_until = self.clock() + float(seconds) if seconds else None

    def captcha_due(self, st: TokenState, now: float) -> bool:
        """Whether this request answers 14 (uses up one of the "next N" if so)."""
        with self.lock:
            if st.captcha_until is not None and now < st.captcha_until:
                return True
            if st.captcha_left > 0:
                st.captcha_left -= 1
                return True
            return False

    def describe(self) -> dict[str, Any]:
        """Per token key: kind, rate, expiry and marks (never a token)."""
        now = self.clock()
        out: dict[str, Any] = {}
        with self.lock:
            states = list(self._tokens.values())
        for st in states:
            out[st.key] = {
                "kind": st.kind,
                "rate": self.limit(st),
                "expires_in": None if st.expires_at is None else st.expires_at - now,
                "expired": st.expires_at is not None and now >= st.expires_at,
                "revoked": st.revoked,
                "captcha_requests": st.captcha_left,
                "captcha_seconds": (
                    max(0.0, st.captcha_until - now) if st.captcha_until is not None else 0.0
                ),
                "vkid_client": st.vkid_client,
            }
        return out

    # ------------------------------------------------------------------ rates

    def kind_rate(self, kind: str) -> float:
        """Requests per sliding second for tokens of `kind` without their own rate."""
        r = self._rates[kind]
        return DEFAULT_RATES[kind] if r is None else r

    def set_rates(
        self, rate: float, group_rate: float | None = None, service_rate: float | None = None
    ) -> None:
        with self.lock:
            self._rates["user"] = float(rate)
            if group_rate is not None:
                self._rates["group"] = float(group_rate)
            if service_rate is not None:
                self._rates["service"] = float(service_rate)

    def set_token_rate(self, st: TokenState, rate: float | None) -> None:
        if rate is not None and not float(rate) > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        with self.lock:
            st.rate = None if rate is None else float(rate)

    def limit(self, st: TokenState) -> float:
        return st.rate if st.rate is not None else self.kind_rate(st.kind)

    def admit(self, st: TokenState, arrival: float) -> bool:
        """Sliding 1 s window over accepted arrivals; rejected requests don't count."""
        with self.lock:
            win = st.window
            while win and win[0] <= arrival - RATE_WINDOW_SECONDS:
                win.popleft()
            ok = len(win) < self.limit(st)
            if ok:
                win.append(arrival)
        return ok

    # ------------------------------------------------------------------ quotas

    def _roll_quota_period(self) -> None:
        now = self.clock()
        if now - self._quota_started >= QUOTA_PERIOD_SECONDS:
            self._reset_quota_locked(now)

    def _reset_quota_locked(self, now: float) -> None:
        self._quota_started = now
        for st in self._tokens.values():
            st.used.clear()
            st.exhausted.clear()

    def reset_quota(self) -> None:
        with self.lock:
            self._reset_quota_locked(self.clock())

    def set_token_quota(self, st: TokenState, method: str, limit: int | None) -> None:
        if limit is not None and int(limit) < 0:
            raise ValueError(f"quota limit must be >= 0, got {limit!r}")
        with self.lock:
            if limit is None:
                st.quotas.pop(method, None)
            else:
                st.quotas[method] = int(limit)

    def exhaust_quota(self, st: TokenState, method: str) -> None:
        with self.lock:
            st.exhausted.add(method)

    def take_quota(self, st: TokenState, method: str) -> bool:
        with self.lock:
            self._roll_quota_period()
            if method in st.exhausted:
                return False
            limit = st.quotas.get(method, self.daily_quotas.get(method))
            if limit is None:
                return True
            used = st.used.get(method, 0)
            if used >= limit:
                return False
            st.used[method] = used + 1
            return True

    def quotas(self) -> dict[str, Any]:
        with self.lock:
            self._roll_quota_period()
            out: dict[str, Any] = {}
            for st in self._tokens.values():
                methods = set(self.daily_quotas) | set(st.quotas) | set(st.used) | st.exhausted
                entry: dict[str, Any] = {}
                for m in sorted(methods):
                    limit = st.quotas.get(m, self.daily_quotas.get(m))
                    used = st.used.get(m, 0)
                    entry[m] = {
                        "used": used,
                        "limit": limit,
                        "exhausted": m in st.exhausted or (limit is not None and used >= limit),
                    }
                out[st.key] = entry
            left = QUOTA_PERIOD_SECONDS - (self.clock() - self._quota_started)
            return {"by_token": out, "resets_in_seconds": max(0.0, left)}
