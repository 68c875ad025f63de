"""HTTP transport to the VK API: one request, its retries, and `execute` packs.

The client speaks VK's wire format only; it never knows whether the server is VK or the local
emulator. Paging and batching across posts live in `paging.py` on top of `call_many`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from vk_pipeline.budget import RateLimiter
from vk_pipeline.vk.errors import (
    RESPONSE_TOO_BIG,
    ErrorClass,
    ObjectError,
    VKFatalError,
    VKQuotaError,
    VKRetriesExhaustedError,
    classify,
)
from vk_pipeline.vk.routing import Router
from vk_pipeline.vk.stats import ClientStats
from vk_pipeline.vk.tokens import (
    CAPTCHA,
    KIND_ERROR_CODES,
    TOKEN_ERROR_CODES,
    TokenPool,
    pack_refused_inside,
    split_tokens,
)
from vk_pipeline.vk.wire import (
    TRIAL,
    Call,
    _form_value,
    _pair_execute_errors,
    _Reroute,
    _TooBig,
    _Transient,
    vkscript,
)

VK_API_URL = "https://api.vk.ru/method"
VK_API_VERSION = "5.199"
EXECUTE_MAX_CALLS = 25
# A captcha'd token waits this long before it is tried again (a person may pass it meanwhile).
CAPTCHA_HOLD_SECONDS = 1800.0

if TYPE_CHECKING:
    from vk_pipeline.vk.vkid import VkIdCredential


# What a call gives back: the `response` payload, or the per-object refusal.
Result = Any | ObjectError


class VKClient:
    """A throttled, retrying VK API client over a pool of tokens.

    Every request goes out on the token the limiter says can send soonest. A token VK rejects is
    set aside (named by its fingerprint) and the request goes again on another; a token that hit
    a method's daily quota is skipped for that method until the quota resets.
    """

    def __init__(
        self,
        *,
        access_token: str | Sequence[str],
        limiter: RateLimiter,
        api_base_url: str = VK_API_URL,
        api_version: str = VK_API_VERSION,
        timeout_seconds: float = 15.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        use_execute: bool = True,
        execute_batch_size: int = EXECUTE_MAX_CALLS,
        concurrency: int | None = None,
        quota_cooldown_seconds: float = 86_400.0,
        stats: ClientStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        warn: Callable[[str], None] | None = None,
        max_unavailable_seconds: float | None = None,
        vkid: VkIdCredential | None = None,
        kind_rates: Mapping[str, float] | None = None,
        captcha_hold_seconds: float = CAPTCHA_HOLD_SECONDS,
    ) -> None:
        dynamic = {vkid.fp: vkid.access_token} if vkid is not None else None
        self.tokens = TokenPool(split_tokens(access_token), dynamic)
        if not len(self.tokens):
            raise VKFatalError("auth", "no token", "no VK access token is configured")
        self.vkid = vkid
        self._base = api_base_url.rstrip("/")
        self.api_version = api_version
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._use_execute = use_execute
        self.execute_batch_size = max(1, min(execute_batch_size, EXECUTE_MAX_CALLS))
        # Requests in flight at once: one per token keeps every token's budget busy.
        self.concurrency = max(1, concurrency or len(self.tokens))
        self.quota_cooldown_seconds = quota_cooldown_seconds
        self.stats = stats or ClientStats()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._warn = warn
        # A dead VK (accepts, never answers) holds a caller for at most this many seconds of
        # failed attempts and retry waits in total; `deadline` (time.monotonic) caps wall time.
        self.max_unavailable_seconds = max_unavailable_seconds
        self.deadline: float | None = None
        self._unavailable = 0.0
        self.router = Router(
            self.tokens,
            limiter,
            kind_rates=kind_rates,
            hold_seconds=captcha_hold_seconds,
            stats=self.stats,
            say=self._say,
        )
        # The token travels in the Authorization header, never in the URL, so httpx's request log
        # lines and exception messages (which carry the URL) cannot leak it.
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            limits=httpx.Limits(max_connections=self.concurrency + 2),
        )

    def __repr__(self) -> str:
        return (
            f"VKClient(api_base_url={self._base!r}, api_version={self.api_version!r}, "
            f"tokens={len(self.tokens)})"
        )

    def close(self) -> None:
        self._http.close()

    @property
    def use_execute(self) -> bool:
        """Whether calls are packed into `execute`: asked for, and a user token is in the pool
        (VK refuses `execute` to service tokens; community tokens cannot read walls in it)."""
        return self._use_execute and self.router.batching()

    @use_execute.setter
    def use_execute(self, value: bool) -> None:
        self._use_execute = value

    def __enter__(self) -> VKClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- single calls -------------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> Result:
        """One method call; per-object errors come back as `ObjectError`."""
        return self._with_retries(method, lambda: self._request_one(method, params))

    def probe_kinds(self) -> dict[str, str | None]:
        """Settle the kind of every token not known yet, one request each (an `execute` with one
        wall.get: service tokens answer 28, community tokens 27 inside, user tokens pass), and
        record it for every process. Fingerprint → kind (None: VK's answer did not say)."""
        self.router.load_kinds()
        probe = {"code": vkscript([Call("wall.get", {"owner_id": -1, "count": 1})])}
        for fp in self.tokens.active():
            if self.tokens.kind(fp) is not None:
                continue
            if self.limiter.acquire([fp], {"wall.get"}, self.router.rates([fp])) is None:
                continue
            try:
                body = self._send("execute", probe, {"wall.get": 1}, self.tokens.secret(fp))
            except _Transient:
                continue
            self.router.learn_from(fp, "execute", body, {"wall.get": 1})
        return {fp: self.tokens.kind(fp) for fp in self.tokens.fingerprints}

    # -- many calls ---------------------------------------------------------------------------

    def call_many(self, calls: Sequence[Call]) -> list[Result]:
        """Results for `calls`, in order: packed into `execute` requests unless batching is off.

        A quota stop raises `VKQuotaError` whose `partial` holds the results that did arrive."""
        results: list[Result] = []
        start = 0
        reroutes = 0
        while start < len(calls):
            if not self.use_execute:
                for c in calls[start:]:
                    try:
                        results.append(self.call(c.method, **c.params))
                    except VKQuotaError as error:
                        error.partial = [*results, *[None] * (len(calls) - len(results))]
                        raise
                return results
            pack = calls[start : start + self.execute_batch_size]
            try:
                results.extend(self._execute_pack(pack))
            except _Reroute as r:
                # The pack goes again, maybe as plain calls (no user token was left for it).
                reroutes += 1
                if reroutes > 2 * len(self.tokens) + 4:
                    raise VKFatalError("execute", r.code, r.message) from None
                continue
            except _TooBig:
                if len(pack) == 1:
                    raise VKFatalError(
                        pack[0].method, RESPONSE_TOO_BIG, "response too big even for a single call"
                    ) from None
                # The pack size stays reduced for the rest of the run: the next pack of the same
                # kind would most likely be too big as well.
                self.execute_batch_size = max(1, len(pack) // 2)
                continue
            except VKQuotaError as error:
                tail = error.partial or [None] * len(pack)
                error.partial = [*results, *tail, *[None] * (len(calls) - start - len(pack))]
                raise
            start += len(pack)
        return results

    def _execute_pack(self, pack: Sequence[Call]) -> list[Result]:
        pending = list(range(len(pack)))
        results: list[Result] = [None] * len(pack)
        attempt = 0
        while pending:
            sub = [pack[i] for i in pending]
            try:
                slots, errors, fp = self._with_retries(
                    "execute",
                    lambda sub=sub: self._request_execute(sub),
                    allow_too_big=True,
                    reroute_out=True,
                )
            except VKQuotaError as error:
                error.partial = results
                raise
            retry: list[int] = []
            rerouted = False
            quota: VKQuotaError | None = None
            for i, slot, err in zip(pending, slots, errors, strict=True):
                if err is None:
                    results[i] = slot
                    continue
                code, message = err
                kind = classify(code) if isinstance(code, int) else ErrorClass.TRANSIENT
                method = pack[i].method
                if code != TRIAL:
                    self.stats.error(method, code)
                if kind is ErrorClass.OBJECT:
                    results[i] = ObjectError(code, message)
                elif kind is ErrorClass.TRANSIENT:
                    retry.append(i)
                elif kind is ErrorClass.QUOTA:
                    # Another token may still have quota for this method: the slot goes again.
                    quota = self._quota_hit(fp, method, code, message) or quota
                    retry.append(i)
                elif code == TRIAL or (isinstance(code, int) and code in KIND_ERROR_CODES):
                    # The token's kind is learned from this answer (router); the slot goes
                    # again on a token that may call the method.
                    rerouted = True
                    retry.append(i)
                elif isinstance(code, int) and code in TOKEN_ERROR_CODES:
                    self._reject_token(fp, method, code, message)
                    retry.append(i)
                else:
                    raise VKFatalError(method, code, message)
            if quota is not None:
                quota.partial = results
                raise quota
            if rerouted:
                pending = retry
                if not self.use_execute:
                    # No user token left for packs: the rest goes as plain calls.
                    for i, value in zip(
                        retry, self.call_many([pack[i] for i in retry]), strict=True
                    ):
                        results[i] = value
                    return results
                continue
            if retry:
                attempt += 1
                if attempt >= self.max_attempts:
                    i = retry[0]
                    code, message = errors[pending.index(i)] or ("?", "?")
                    raise VKRetriesExhaustedError(pack[i].method, code, message, attempt)
                self.stats.retry()
                self._sleep(self._backoff(attempt))
            pending = retry
        return results

    # -- plumbing -----------------------------------------------------------------------------

    def _quota_hit(self, fp: str, method: str, code: int, message: str) -> VKQuotaError | None:
        """Record that token `fp` spent its quota for `method`; the error to raise when no
        token is left for the method, else None (the call goes again on another token)."""
        self.limiter.exhaust(fp, method, self.quota_cooldown_seconds, f"error {code}: {message}")
        active = self.tokens.active()
        resets_in = self.limiter.quota_resets(active, method)
        if resets_in is None:
            self._say(f"token {fp} reached {method}'s daily quota; the other token(s) carry on")
            return None
        return VKQuotaError(method, code, message, tokens=len(active), resets_in=resets_in)

    def _reject_token(self, fp: str, method: str, code: int, message: str) -> None:
        """Set a token VK refused aside; fail when none is left."""
        if self.tokens.retire(fp, f"error {code}: {message}"):
            left = len(self.tokens.active())
            self._say(f"VK rejected token {fp} (error {code}: {message}); set aside, {left} left")
        if not self.tokens.active():
            raise VKFatalError(
                method,
                code,
                f"{message}; no usable VK token left ({self.tokens.describe_retired()})",
            )

    def _say(self, message: str) -> None:
        if self._warn is not None:
            self._warn(message)

    def _backoff(self, attempt: int) -> float:
        # Full jitter keeps several workers that failed together from retrying together.
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling * (0.5 + self._rng.random() / 2)

    def _with_retries(
        self,
        method: str,
        send: Callable[[], Any],
        *,
        allow_too_big: bool = False,
        reroute_out: bool = False,
    ) -> Any:
        reroutes = 0
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            self._check_time(method, 0.0)
            began = time.monotonic()
            try:
                return send()
            except _Reroute as r:
                if reroute_out:
                    raise
                # Bounded: each reroute settles a kind, sets a token aside or refreshes one.
                reroutes += 1
                if reroutes > 2 * len(self.tokens) + 4:
                    raise VKFatalError(method, r.code, r.message) from None
                attempt -= 1
            except _Transient as t:
                self._unavailable += time.monotonic() - began
                self.stats.error(method, t.code)
                if attempt == self.max_attempts:
                    raise VKRetriesExhaustedError(method, t.code, t.message, attempt) from None
                self.stats.retry()
                wait = max(t.wait, self._backoff(attempt))
                self._check_time(method, wait, t.message)
                self._unavailable += wait
                self._sleep(wait)
            except _TooBig:
                self.stats.error(method, RESPONSE_TOO_BIG)
                if not allow_too_big:
                    raise VKFatalError(
                        method, RESPONSE_TOO_BIG, "response size is too big"
                    ) from None
                raise
        raise AssertionError("unreachable")

    def _check_time(self, method: str, ahead: float, last: str = "") -> None:
        cap = self.max_unavailable_seconds
        if cap is not None and self._unavailable + ahead > cap:
            raise VKFatalError(
                method,
                "unavailable",
                f"VK did not answer for {self._unavailable:.0f} s in total, over "
                f"max_unavailable_seconds={cap:g}" + (f" (last error: {last})" if last else ""),
            )
        if self.deadline is not None and time.monotonic() + ahead > self.deadline:
            raise VKFatalError(method, "deadline", "out of time for VK requests in this call")

    def _acquire(self, methods: set[str], kind_methods: set[str]) -> str:
        fp = self.router.acquire(methods, kind_methods)
        if fp is not None:
            return fp
        active = self.tokens.active()
        for method in sorted(methods):
            resets_in = self.limiter.quota_resets(active, method)
            if resets_in is not None:
                raise VKQuotaError(
                    method, 29, "Rate limit reached", tokens=len(active), resets_in=resets_in
                )
        raise AssertionError("the limiter refused every token without a quota")

    def _post(
        self,
        method: str,
        data: dict[str, Any] | Callable[[str], tuple[dict[str, Any], dict[str, int]]],
        inner_calls: dict[str, int] | None,
    ) -> tuple[Any, str, str]:
        """One HTTP request; returns the decoded body, the token's fingerprint and the token it
        went out on, or raises `_Transient`. `data` may be a function of the token chosen that
        gives the form and the inner calls it holds."""
        quota_methods = set(inner_calls) if inner_calls else {method}
        fp = self._acquire(quota_methods, quota_methods | {method})
        try:
            token = self.tokens.secret(fp)
            if callable(data):
                data, inner_calls = data(fp)
            body = self._send(method, data, inner_calls, token)
            self.router.learn_from(fp, method, body, inner_calls)
            return body, fp, token
        finally:
            self.router.release(fp)

    def _send(
        self, method: str, data: dict[str, Any], inner_calls: dict[str, int] | None, token: str
    ) -> dict[str, Any]:
        self.stats.request(method, inner_calls)
        form = {k: _form_value(v) for k, v in data.items()}
        form["v"] = self.api_version
        headers = {"Authorization": f"Bearer {token}"}
        try:
            response = self._http.post(f"{self._base}/{method}", data=form, headers=headers)
        except httpx.TimeoutException:
            raise _Transient("timeout", "request timed out") from None
        except httpx.TransportError as e:
            raise _Transient("connection", f"connection failed ({type(e).__name__})") from None
        if response.status_code >= 500:
            raise _Transient(f"http_{response.status_code}", f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise VKFatalError(method, f"http_{response.status_code}", "unexpected HTTP status")
        try:
            body = response.json()
        except ValueError:
            raise _Transient("malformed", "response body is not JSON") from None
        if not isinstance(body, dict):
            raise _Transient("malformed", "response body is not a JSON object")
        return body

    def _raise_for_error(
        self, method: str, error: dict[str, Any], fp: str, token: str
    ) -> ObjectError:
        code = error.get("error_code")
        message = str(error.get("error_msg", ""))
        if not isinstance(code, int):
            raise _Transient("malformed", "error without a code")
        kind = classify(code)
        if code == RESPONSE_TOO_BIG and "too big" in message:
            raise _TooBig
        if kind is ErrorClass.TRANSIENT:
            if code == 6:
                # Someone else spends this token too (another run, a person): back off as a whole.
                self.limiter.penalize(fp, 1.1)
            raise _Transient(code, message, wait=1.1 if code == 6 else 0.0)
        self.stats.error(method, code)
        if kind is ErrorClass.QUOTA:
            quota = self._quota_hit(fp, method, code, message)
            if quota is not None:
                raise quota
            raise _Transient(code, message)
        if code in KIND_ERROR_CODES:
            raise _Reroute(code, message)  # the router learned the kind from this answer
        if code == CAPTCHA:
            self.router.hold(fp, error)
            raise _Reroute(code, message)
        if code == 5 and self.vkid is not None and self.tokens.is_dynamic(fp):
            # VK ID's access token expired (or was revoked): a newer one, then the same request.
            before = self.vkid.refreshes
            self.vkid.refresh(stale=token)
            self.stats.vkid_refreshes += self.vkid.refreshes - before
            raise _Reroute(code, message)
        if code in TOKEN_ERROR_CODES:
            self._reject_token(fp, method, code, message)
            raise _Transient(code, message)
        if kind is ErrorClass.FATAL:
            raise VKFatalError(method, code, message)
        return ObjectError(code, message)

    def _request_one(self, method: str, params: dict[str, Any]) -> Result:
        body, fp, token = self._post(method, params, None)
        if "error" in body:
            return self._raise_for_error(method, body["error"], fp, token)
        if "response" not in body:
            raise _Transient("malformed", "neither response nor error in body")
        return body["response"]

    def _request_execute(
        self, calls: Sequence[Call]
    ) -> tuple[list[Any], list[tuple[int | str, str] | None], str]:
        sent = list(calls)

        def form(fp: str) -> tuple[dict[str, Any], dict[str, int]]:
            # A token whose kind is still unknown is tried with one call, not a pack, when other
            # tokens could take the calls and a community token would be refused them inside
            # execute: then VK refuses one wall call (error 27), not 25. A lone token sends the
            # pack: one answer either way, and nothing else could take the calls.
            if (
                self.router.on_trial(fp)
                and len(self.tokens.active()) > 1
                and pack_refused_inside({c.method for c in sent})
            ):
                del sent[1:]
            return {"code": vkscript(sent)}, Counter(c.method for c in sent)

        body, fp, token = self._post("execute", form, Counter(c.method for c in calls))
        if "error" in body:
            # A whole-execute error applies to every slot; per-object ones cannot happen here.
            obj = self._raise_for_error("execute", body["error"], fp, token)
            raise VKFatalError("execute", obj.code, obj.message)
        slots = body.get("response")
        if not isinstance(slots, list) or len(slots) != len(sent):
            raise _Transient("malformed", "execute response does not match the pack")
        errors = _pair_execute_errors(sent, slots, body.get("execute_errors") or [])
        untried = len(calls) - len(sent)
        return [*slots, *[False] * untried], [*errors, *[(TRIAL, "not sent")] * untried], fp
