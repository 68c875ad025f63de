"""The emulator's API core: auth by token kind, per-token rate windows and daily quotas,
faults, captcha, VK ID refresh, stats.

Only the standard library is used; the HTTP side is in `handler.py`, the tokens in `access.py`
(state) and `tokens.py` (kinds), VK ID in `vkid.py`. The server never logs or stores tokens
outside memory: they appear only as `sha256(token)[:8]` ("token keys") in stats, quotas and
error messages.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vk_pipeline.emulator import tokens as kinds
from vk_pipeline.emulator import vkscript, vkscript_eval
from vk_pipeline.emulator.access import TokenRegistry, TokenState, token_key
from vk_pipeline.emulator.accounting import Stats
from vk_pipeline.emulator.faults import INJECTED_ERRORS, Decision, FaultInjector, FaultSpec
from vk_pipeline.emulator.methods import (
    PARAM_ERR,
    ApiError,
    CallContext,
    call_method,
    parse_version,
)
from vk_pipeline.emulator.vkid import DEFAULT_ACCESS_TTL, VkIdIssuer
from vk_pipeline.emulator.world import World, WorldSpec

DEMO_TOKEN = "vk-emulator-demo-token"
RATE_LIMIT_MSG = "Too many requests per second"


def dumps_vk(obj: Any) -> bytes:
    # VK emits compact UTF-8 JSON and escapes "/" as "\/" (only legal inside strings).
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").encode("utf-8")


class EmulatorServer:
    """A local VK API over HTTP; see the package README for the behaviour it reproduces."""

    def __init__(
        self,
        world: World | None = None,
        *,
        rate: float = 3,
        group_rate: float | None = None,
        service_rate: float | None = None,
        tokens: Iterable[str] | None = None,
        group_tokens: Iterable[str] = (),
        service_tokens: Iterable[str] = (),
        token_rates: Mapping[str, float] | None = None,
        token_ttls: Mapping[str, float] | None = None,
        vkid_clients: Mapping[str, str] | None = None,
        vkid_access_ttl: float = DEFAULT_ACCESS_TTL,
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
        quotas: dict[str, int] = {"wall.get": int(wall_get_daily_quota)}
        quotas.update({m: int(n) for m, n in (daily_quotas or {}).items()})
        self.max_response_bytes = max_response_bytes
        self.max_execute_calls = max_execute_calls
        self.max_execute_operations = max_execute_operations
        self.clock = clock
        self._registry = TokenRegistry(
            clock,
            rate=rate,
            group_rate=group_rate,
            service_rate=service_rate,
            daily_quotas=quotas,
        )
        # Without user tokens DEMO_TOKEN is the user token (as before token kinds existed).
        user_tokens = list(tokens or []) or [DEMO_TOKEN]
        for kind, values in (
            (kinds.USER, user_tokens),
            (kinds.GROUP, group_tokens),
            (kinds.SERVICE, service_tokens),
        ):
            for t in values:
                self._registry.add(t, kind)
        now = clock()
        for t, ttl in (token_ttls or {}).items():
            self._registry.state(t).expires_at = now + float(ttl)
        for t, r in (token_rates or {}).items():
            self.set_token_rate(t, r)
        for t, limits in (token_quotas or {}).items():
            for method, limit in limits.items():
                self.set_token_quota(t, method, limit)
        self.vkid = VkIdIssuer(vkid_clients or {}, access_ttl=vkid_access_ttl)
        self._captcha_rng = secrets.SystemRandom()
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
        return self._registry.kind_rate(kinds.USER)

    @property
    def group_rate(self) -> float:
        """The same for community tokens (VK's documented 20 unless set)."""
        return self._registry.kind_rate(kinds.GROUP)

    @property
    def service_rate(self) -> float:
        """The same for service tokens (VK's documented 3 unless set)."""
        return self._registry.kind_rate(kinds.SERVICE)

    @property
    def token_count(self) -> int:
        return len(self._registry)

    @property
    def wall_get_daily_quota(self) -> int:
        return self._registry.daily_quotas["wall.get"]

    @property
    def daily_quotas(self) -> dict[str, int]:
        return dict(self._registry.daily_quotas)

    # ------------------------------------------------------------------ control

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def reset_quota(self) -> None:
        """A new quota day: usage and exhausted marks are cleared (overrides stay)."""
        self._registry.reset_quota()

    def set_faults(self, method: str, spec: FaultSpec) -> None:
        self._faults.set(method, spec)

    def clear_faults(self, method: str | None = None) -> None:
        self._faults.clear(method)

    def faults(self) -> dict[str, dict[str, float]]:
        return self._faults.snapshot()

    def set_rate(
        self, rate: float, group_rate: float | None = None, service_rate: float | None = None
    ) -> None:
        self._registry.set_rates(rate, group_rate, service_rate)

    def token_state(self, token: str | None = None, *, key: str | None = None) -> TokenState:
        """The state of a configured token, given by value or by its key (sha256[:8])."""
        return self._registry.state(token, key=key)

    def set_token_rate(
        self, token: str | None, rate: float | None, *, key: str | None = None
    ) -> None:
        """Give one token its own requests per second (None: back to its kind's rate)."""
        self._registry.set_token_rate(self.token_state(token, key=key), rate)

    def token_rate(self, token: str | None = None, *, key: str | None = None) -> float:
        return self._registry.limit(self.token_state(token, key=key))

    def set_token_quota(
        self, token: str | None, method: str, limit: int | None, *, key: str | None = None
    ) -> None:
        """One token's daily limit for `method` (None: back to the server's default)."""
        self._registry.set_token_quota(self.token_state(token, key=key), method, limit)

    def exhaust_quota(
        self, token: str | None, method: str = "wall.get", *, key: str | None = None
    ) -> None:
        """Until the next quota reset, `method` answers error 29 for this token."""
        self._registry.exhaust_quota(self.token_state(token, key=key), method)

    def quotas(self) -> dict[str, Any]:
        """Per token key: {method: {used, limit, exhausted}} for every method with a limit,
        usage or exhausted mark; plus `resets_in_seconds` for all of them."""
        return self._registry.quotas()

    def expire_token(self, token: str | None = None, *, key: str | None = None) -> None:
        """From now on the token answers 5 "access_token has expired."."""
        self._registry.expire(self.token_state(token, key=key))

    def revoke_token(self, token: str | None = None, *, key: str | None = None) -> None:
        """From now on the token answers 5 "user revoke access for this token."."""
        self._registry.revoke(self.token_state(token, key=key))

    def require_captcha(
        self,
        token: str | None = None,
        *,
        key: str | None = None,
        requests: int | None = None,
        seconds: float | None = None,
    ) -> None:
        """The token's next `requests` requests, and all its requests for `seconds`, answer 14
        (0 clears; None leaves that part as it is)."""
        if requests is None and seconds is None:
            raise ValueError("captcha needs requests and/or seconds")
        self._registry.require_captcha(self.token_state(token, key=key), requests, seconds)

    def tokens(self) -> dict[str, Any]:
        """Per token key: kind, rate, expiry, revocation and captcha marks (never a token)."""
        return self._registry.describe()

    def advance(self, **kwargs: Any) -> dict[str, Any]:
        return self.world.advance(**kwargs)

    # ------------------------------------------------------------------ VK ID

    def vkid_refresh(self, params: Mapping[str, str]) -> tuple[int, bytes]:
        """`POST /oauth2/auth` (refresh grant): (HTTP status, JSON body)."""
        result = self.vkid.refresh(params)
        if result.minted is not None:
            access, ttl = result.minted
            # Minted tokens are user tokens (VK ID signs a person in) living `ttl` seconds.
            self._registry.add(
                access, kinds.USER, expires_at=self.clock() + ttl, vkid_client=result.client_id
            )
        self._stats.vkid(result.client_id, result.error)
        return result.status, json.dumps(result.body, ensure_ascii=False).encode()

    # ------------------------------------------------------------------ API core

    def _invoke(self, method: str, params: dict[str, str], st: TokenState, ctx: CallContext) -> Any:
        """One non-execute method call, direct or inside execute (counts as an api call)."""
        self._stats.bump(st.key, method, "api_calls")
        refused = kinds.refusal(st.kind, method)
        if refused is not None:
            raise ApiError(*refused)
        if not self._registry.take_quota(st, method):
            raise ApiError(29, "Rate limit reached")
        return call_method(self.world, method, params, ctx)

    def _execute(
        self, params: dict[str, str], st: TokenState, ctx: CallContext
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

    def _captcha(self) -> ApiError:
        rng = self._captcha_rng
        sid = str(rng.randrange(10**11, 10**12))
        captcha = kinds.Captcha(sid, rng.randrange(10**18, 10**19), self.url)
        return ApiError(14, kinds.CAPTCHA_MSG, captcha.fields())

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
        st = self._registry.get(token)
        tkey = st.key if st is not None else token_key(token)
        try:
            if not token:
                raise ApiError(5, kinds.NO_TOKEN_MSG)
            if st is None:
                raise ApiError(5, kinds.INVALID_TOKEN_MSG)
            dead = self._registry.auth_error(st, arrival)
            if dead is not None:
                raise ApiError(5, dead)
            if injected == 6:
                self._stats.fault(tkey, "error_6")
                raise ApiError(6, RATE_LIMIT_MSG)
            if not self._registry.admit(st, arrival):
                self._stats.rate_limited(st.key)
                raise ApiError(6, RATE_LIMIT_MSG)
            self._stats.accepted(st.key, arrival)
            v = params.get("v", "").strip()
            if not v:
                raise ApiError(8, "Invalid request: v (version) is required")
            version = parse_version(v)
            if version is None:
                raise ApiError(8, "Invalid request: v (version) is invalid")
            if self._registry.captcha_due(st, arrival):
                raise self._captcha()
            if injected is not None:
                if method != "execute":
                    # The error stands for the method failing, so the call reached it.
                    self._stats.bump(tkey, method, "api_calls")
                self._stats.fault(tkey, f"error_{injected}")
                raise ApiError(injected, INJECTED_ERRORS[injected])
            ctx = CallContext(st.kind, version)
            if method == "execute":
                refused = kinds.refusal(st.kind, method)
                if refused is not None:
                    raise ApiError(*refused)
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
        err: dict[str, Any] = {"error_code": e.code, "error_msg": e.msg, "request_params": req}
        err.update(e.extra)
        return dumps_vk({"error": err})

    # ------------------------------------------------------------------ used by the handler

    def decide_faults(self, method: str) -> Decision:
        return self._faults.decide(method)

    def count_http(self, method: str, token: str | None) -> None:
        st = self._registry.get(token)
        if st is None:
            self._stats.bump(token_key(token), method, "http_requests")
        else:
            self._stats.bump(st.key, method, "http_requests", kind=st.kind)

    def count_fault(self, token: str | None, kind: str) -> None:
        st = self._registry.get(token)
        self._stats.fault(st.key if st is not None else token_key(token), kind)

    def is_stopping(self) -> bool:
        return self._stopping.is_set()

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


__all__ = ["DEMO_TOKEN", "EmulatorServer", "FaultSpec", "dumps_vk", "token_key"]
