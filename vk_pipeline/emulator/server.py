"""The emulator's API core: auth, per-token rate windows and daily quotas, faults, stats.

Only the standard library is used; the HTTP side is in `handler.py`. The server never logs or
stores tokens: they appear only as `sha256(token)[:8]` ("token keys") in stats, quotas and
error messages.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vk_pipeline.emulator import vkscript, vkscript_eval
from vk_pipeline.emulator.accounting import Stats
from vk_pipeline.emulator.faults import INJECTED_ERRORS, Decision, FaultInjector, FaultSpec
from vk_pipeline.emulator.methods import (
    GROUP_AUTH_MSG,
    PARAM_ERR,
    USER_ONLY,
    ApiError,
    CallContext,
    call_method,
    parse_version,
)
from vk_pipeline.emulator.world import World, WorldSpec

DEMO_TOKEN = "vk-emulator-demo-token"
QUOTA_PERIOD_SECONDS = 86_400.0
RATE_WINDOW_SECONDS = 1.0
RATE_LIMIT_MSG = "Too many requests per second"


def token_key(token: str | None) -> str:
    if not token:
        return "none"
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def dumps_vk(obj: Any) -> bytes:
    # VK emits compact UTF-8 JSON and escapes "/" as "\/" (only legal inside strings).
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").encode("utf-8")


@dataclass
class _TokenState:
    kind: str  # "user" | "group"
    key: str
    window: deque[float] = field(default_factory=deque)
    rate: float | None = None  # per-token override of the server's rate
    quotas: dict[str, int] = field(default_factory=dict)  # per-token daily limits by method
    used: dict[str, int] = field(default_factory=dict)
    exhausted: set[str] = field(default_factory=set)


class EmulatorServer:
    """A local VK API over HTTP; see the package README for the behaviour it reproduces."""

    def __init__(
        self,
        world: World | None = None,
        *,
        rate: float = 3,
        group_rate: float | None = None,
        tokens: Iterable[str] | None = None,
        group_tokens: Iterable[str] = (),
        token_rates: Mapping[str, float] | None = None,
        wall_get_daily_quota: int = 5000,
        daily_quotas: Mapping[str, int] | None = None,
        token_quotas: Mapping[str, Mapping[str, int]] | None = None,
        max_response_bytes: int = 5_000_000,
        max_execute_calls: int = 25,
        max_execute_operations: int = vkscript_eval.MAX_OPERATIONS,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.world = world if world is not None else World(WorldSpec())
        self.host = host
        self._port = port
        self._rate = float(rate)
        self._group_rate = None if group_rate is None else float(group_rate)
        self._daily_quotas: dict[str, int] = {"wall.get": int(wall_get_daily_quota)}
        self._daily_quotas.update({m: int(n) for m, n in (daily_quotas or {}).items()})
        self.max_response_bytes = max_response_bytes
        self.max_execute_calls = max_execute_calls
        self.max_execute_operations = max_execute_operations
        self.clock = clock
        user_tokens = list(tokens or []) or [DEMO_TOKEN]
        self._tokens: dict[str, _TokenState] = {}
        for t in user_tokens:
            self._tokens[t] = _TokenState("user", token_key(t))
        for t in group_tokens:
            self._tokens[t] = _TokenState("group", token_key(t))
        self._state_lock = threading.Lock()
        self._quota_started = clock()
        for t, r in (token_rates or {}).items():
            self.set_token_rate(t, r)
        for t, limits in (token_quotas or {}).items():
            for method, limit in limits.items():
                self.set_token_quota(t, method, limit)
        self._faults = FaultInjector(seed)
        self._stats = Stats()
        self._httpd: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmulatorServer:
        from vk_pipeline.emulator.handler import serve

        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd, self._thread = serve(self, self.host, self._port)
        self._port = self._httpd.server_address[1]
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/method"

    @property
    def rate(self) -> float:
        """Allowed requests per sliding second for user tokens without an override."""
        return self._rate

    @property
    def group_rate(self) -> float:
        return self._rate if self._group_rate is None else self._group_rate

    @property
    def token_count(self) -> int:
        return len(self._tokens)

    @property
    def wall_get_daily_quota(self) -> int:
        return self._daily_quotas["wall.get"]

    @property
    def daily_quotas(self) -> dict[str, int]:
        return dict(self._daily_quotas)

    # ------------------------------------------------------------------ control

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def reset_quota(self) -> None:
        """A new quota day: usage and exhausted marks are cleared (overrides stay)."""
        with self._state_lock:
            self._quota_started = self.clock()
            for st in self._tokens.values():
                st.used.clear()
                st.exhausted.clear()

    def set_faults(self, method: str, spec: FaultSpec) -> None:
        self._faults.set(method, spec)

    def clear_faults(self, method: str | None = None) -> None:
        self._faults.clear(method)

    def faults(self) -> dict[str, dict[str, float]]:
        return self._faults.snapshot()

    def set_rate(self, rate: float, group_rate: float | None = None) -> None:
        with self._state_lock:
            self._rate = float(rate)
            if group_rate is not None:
                self._group_rate = float(group_rate)

    def token_state(self, token: str | None = None, *, key: str | None = None) -> _TokenState:
        """The state of a configured token, given by value or by its key (sha256[:8])."""
        if token is not None:
            st = self._tokens.get(token)
            label = token_key(token)
        else:
            st = next((s for s in self._tokens.values() if s.key == key), None)
            label = str(key)
        if st is None:
            raise ValueError(f"unknown token (key {label})")
        return st

    def set_token_rate(
        self, token: str | None, rate: float | None, *, key: str | None = None
    ) -> None:
        """Give one token its own requests per second (None: back to the server's rate)."""
        st = self.token_state(token, key=key)
        if rate is not None and not float(rate) > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        with self._state_lock:
            st.rate = None if rate is None else float(rate)

    def token_rate(self, token: str | None = None, *, key: str | None = None) -> float:
        return self._limit(self.token_state(token, key=key))

    def set_token_quota(
        self, token: str | None, method: str, limit: int | None, *, key: str | None = None
    ) -> None:
        """One token's daily limit for `method` (None: back to the server's default)."""
        st = self.token_state(token, key=key)
        if limit is not None and int(limit) < 0:
            raise ValueError(f"quota limit must be >= 0, got {limit!r}")
        with self._state_lock:
            if limit is None:
                st.quotas.pop(method, None)
            else:
                st.quotas[method] = int(limit)

    def exhaust_quota(
        self, token: str | None, method: str = "wall.get", *, key: str | None = None
    ) -> None:
        """Until the next quota reset, `method` answers error 29 for this token."""
        st = self.token_state(token, key=key)
        with self._state_lock:
            st.exhausted.add(method)

    def quotas(self) -> dict[str, Any]:
        """Per token key: {method: {used, limit, exhausted}} for every method with a limit,
        usage or exhausted mark; plus `resets_in_seconds` for all of them."""
        with self._state_lock:
            self._roll_quota_period()
            out: dict[str, Any] = {}
            for st in self._tokens.values():
                methods = set(self._daily_quotas) | set(st.quotas) | set(st.used) | st.exhausted
                entry: dict[str, Any] = {}
                for m in sorted(methods):
                    limit = st.quotas.get(m, self._daily_quotas.get(m))
                    used = st.used.get(m, 0)
                    entry[m] = {
                        "used": used,
                        "limit": limit,
                        "exhausted": m in st.exhausted or (limit is not None and used >= limit),
                    }
                out[st.key] = entry
            left = QUOTA_PERIOD_SECONDS - (self.clock() - self._quota_started)
            return {"by_token": out, "resets_in_seconds": max(0.0, left)}

    def advance(self, **kwargs: Any) -> dict[str, Any]:
        return self.world.advance(**kwargs)

    # ------------------------------------------------------------------ API core

    def _limit(self, st: _TokenState) -> float:
        if st.rate is not None:
            return st.rate
        if st.kind == "group" and self._group_rate is not None:
            return self._group_rate
        return self._rate

    def _admit(self, st: _TokenState, arrival: float) -> bool:
        """Sliding 1 s window over accepted arrivals; rejected requests don't count."""
        with self._state_lock:
            win = st.window
            while win and win[0] <= arrival - RATE_WINDOW_SECONDS:
                win.popleft()
            ok = len(win) < self._limit(st)
            if ok:
                win.append(arrival)
        if ok:
            self._stats.accepted(st.key, arrival)
        else:
            self._stats.rate_limited(st.key)
        return ok

    def _roll_quota_period(self) -> None:
        now = self.clock()
        if now - self._quota_started >= QUOTA_PERIOD_SECONDS:
            self._quota_started = now
            for other in self._tokens.values():
                other.used.clear()
                other.exhausted.clear()

    def _take_quota(self, st: _TokenState, method: str) -> bool:
        with self._state_lock:
            self._roll_quota_period()
            if method in st.exhausted:
                return False
            limit = st.quotas.get(method, self._daily_quotas.get(method))
            if limit is None:
                return True
            used = st.used.get(method, 0)
            if used >= limit:
                return False
            st.used[method] = used + 1
            return True

    def _invoke(
        self, method: str, params: dict[str, str], st: _TokenState, ctx: CallContext
    ) -> Any:
        """One non-execute method call, direct or inside execute (counts as an api call)."""
        self._stats.bump(st.key, method, "api_calls")
        if st.kind == "group" and method in USER_ONLY:
            raise ApiError(27, GROUP_AUTH_MSG)
        if not self._take_quota(st, method):
            raise ApiError(29, "Rate limit reached")
        return call_method(self.world, method, params, ctx)

    def _execute(
        self, params: dict[str, str], st: _TokenState, ctx: CallContext
    ) -> tuple[Any, list[dict[str, Any]]]:
        code = params.get("code")
        if code is None or not code.strip():
            raise ApiError(100, f"{PARAM_ERR}code is undefined")
        try:
            prog = vkscript.parse(code)
        except vkscript.CompileError:
            raise ApiError(12, "Unable to compile code") from None
        errors: list[dict[str, Any]] = []

        def inner(method: str, p: dict[str, str]) -> Any:
            try:
                injected = self._faults.inner_error(method)
                if injected is not None:
                    self._stats.bump(st.key, method, "api_calls")
                    self._stats.fault(st.key, f"error_{injected}")
                    raise ApiError(injected, INJECTED_ERRORS[injected])
                if method == "execute":
                    raise ApiError(3, "Unknown method passed")
                return self._invoke(method, p, st, ctx)
            except ApiError as e:
                self._stats.error(st.key, method, e.code)
                # A failed inner call yields `false` in its slot plus an execute_errors entry.
                errors.append({"method": method, "error_code": e.code, "error_msg": e.msg})
                return False

        args = {k: v for k, v in params.items() if k not in ("code", "v")}
        interp = vkscript_eval.Interpreter(
            inner,
            args,
            max_calls=self.max_execute_calls,
            max_operations=self.max_execute_operations,
        )
        try:
            result = interp.run(prog)
        except vkscript.ScriptRuntimeError as e:
            raise ApiError(13, f"Runtime error occurred during code invocation: {e}") from None
        return result, errors

    def handle_api(
        self,
        method: str,
        params: dict[str, str],
        token: str | None,
        arrival: float,
        injected: int | None = None,
    ) -> bytes:
        """Process one /method/<name> request and return the JSON body (always HTTP 200).

        `injected` is an API error chosen by the fault injector: 6 replaces the rate check's
        answer, the others come after the auth, rate and `v` checks (no quota used).
        """
        st = self._tokens.get(token) if token else None
        tkey = st.key if st is not None else token_key(token)
        try:
            if not token:
                raise ApiError(5, "User authorization failed: no access_token passed.")
            if st is None:
                raise ApiError(5, "User authorization failed: invalid access_token (4).")
            if injected == 6:
                self._stats.fault(tkey, "error_6")
                raise ApiError(6, RATE_LIMIT_MSG)
            if not self._admit(st, arrival):
                raise ApiError(6, RATE_LIMIT_MSG)
            v = params.get("v", "").strip()
            if not v:
                raise ApiError(8, "Invalid request: v (version) is required")
            version = parse_version(v)
            if version is None:
                raise ApiError(8, "Invalid request: v (version) is invalid")
            if injected is not None:
                if method != "execute":
                    # The error stands for the method failing, so the call reached it.
                    self._stats.bump(tkey, method, "api_calls")
                self._stats.fault(tkey, f"error_{injected}")
                raise ApiError(injected, INJECTED_ERRORS[injected])
            ctx = CallContext(st.kind, version)
            if method == "execute":
                result, errors = self._execute(params, st, ctx)
                body: dict[str, Any] = {"response": result}
                if errors:
                    body["execute_errors"] = errors
                data = dumps_vk(body)
                if len(data) > self.max_response_bytes:
                    raise ApiError(
                        13,
                        "Runtime error occurred during code invocation: response size is too big",
                    )
                return data
            return dumps_vk({"response": self._invoke(method, params, st, ctx)})
        except ApiError as e:
            self._stats.error(tkey, method, e.code)
            return self._error_body(e, method, params)

    @staticmethod
    def _error_body(e: ApiError, method: str, params: dict[str, str]) -> bytes:
        req = [{"key": "oauth", "value": "1"}, {"key": "method", "value": method}]
        # access_token never reaches `params` (it is split off on parsing).
        req += [{"key": k, "value": v} for k, v in params.items()]
        return dumps_vk(
            {"error": {"error_code": e.code, "error_msg": e.msg, "request_params": req}}
        )

    # ------------------------------------------------------------------ used by the handler

    def decide_faults(self, method: str) -> Decision:
        return self._faults.decide(method)

    def count_http(self, method: str, token: str | None) -> None:
        st = self._tokens.get(token) if token else None
        self._stats.bump(st.key if st is not None else token_key(token), method, "http_requests")

    def count_fault(self, token: str | None, kind: str) -> None:
        st = self._tokens.get(token) if token else None
        self._stats.fault(st.key if st is not None else token_key(token), kind)

    def is_stopping(self) -> bool:
        return self._stopping.is_set()

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


__all__ = ["DEMO_TOKEN", "EmulatorServer", "FaultSpec", "dumps_vk", "token_key"]
