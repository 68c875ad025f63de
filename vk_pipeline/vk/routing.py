"""Which token of the pool a request may go on: its kind, its hold, its rate.

VK's method schema says which kinds of token call which methods (`tokens.METHOD_KINDS`). A
token's kind is learned from VK's answers, recorded in the shared budget and read from there by
every process, so no token is sent twice (by any process that shares the budget) to a method its
kind cannot call. While a token's kind is unknown, one request at a time may try it with a
method some kind cannot call; the others wait for the answer that settles it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from vk_pipeline.budget import RateLimiter
from vk_pipeline.vk.errors import VKFatalError
from vk_pipeline.vk.stats import ClientStats
from vk_pipeline.vk.tokens import (
    GROUP,
    KIND_ERROR_CODES,
    KIND_NAMES,
    SERVICE,
    USER,
    TokenPool,
    may_call,
    needed_kinds,
    restricted,
)

# Calls a user token's `execute` packs into one request (VK's limit); what plain paging costs.
PACK = 25
# wall.* calls inside a successful `execute` prove a user token: a community token's slots would
# have failed with 27, and a service token cannot call `execute` at all.
USER_ONLY_TOGETHER = frozenset({"wall.get", "wall.getComments", "wall.getById"})


class Router:
    def __init__(
        self,
        tokens: TokenPool,
        limiter: RateLimiter,
        *,
        kind_rates: Mapping[str, float] | None,
        hold_seconds: float,
        stats: ClientStats,
        say: Callable[[str], None],
    ) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.kind_rates = dict(kind_rates or {})
        self.hold_seconds = hold_seconds
        self.stats = stats
        self._say = say
        self._cond = threading.Condition()
        self._trying: set[str] = set()
        self._held: dict[str, tuple[str, float]] = {}  # fp → (reason, until on time.monotonic)
        self._loaded = False
        self._noted_plain = False

    # -- kinds -------------------------------------------------------------------------------

    def load_kinds(self) -> None:
        """The kinds other processes learned (once per client)."""
        with self._cond:
            if self._loaded:
                return
            self._loaded = True
            unknown = [fp for fp in self.tokens.fingerprints if self.tokens.kind(fp) is None]
        known = self.limiter.kinds(unknown) if unknown else {}
        with self._cond:
            self.tokens.kinds.update(known)
            self.stats.token_kinds = self.tokens.count_kinds()

    def learn(self, fp: str, kind: str, learned_by: str) -> None:
        with self._cond:
            if self.tokens.kind(fp) is not None:
                return
            self.tokens.kinds[fp] = kind
            self.stats.token_kinds = self.tokens.count_kinds()
            self._cond.notify_all()
        self.limiter.learn_kind(fp, kind, learned_by)
        self._say(f"token {fp} is a {KIND_NAMES[kind]} token (VK: {learned_by})")

    def learn_from(
        self, fp: str, method: str, body: dict[str, Any], inner: Collection[str] | None
    ) -> None:
        """Settle `fp`'s kind from an answer, when the answer says it."""
        if self.tokens.kind(fp) is not None:
            return
        error = body.get("error")
        if isinstance(error, dict):
            kind = KIND_ERROR_CODES.get(error.get("error_code"))  # type: ignore[arg-type]
            if kind is not None:
                self.learn(fp, kind, f"{method}: error {error.get('error_code')}")
            return
        if method != "execute" or not inner:
            return
        codes = {e.get("error_code") for e in body.get("execute_errors") or []}
        if 27 in codes:
            self.learn(fp, GROUP, "execute: error 27 inside")
        elif USER_ONLY_TOGETHER & set(inner):
            self.learn(fp, USER, "execute with wall calls answered")

    def batching(self) -> bool:
        """Whether `execute` packs may go: some usable token is (or may be) a user token."""
        self.load_kinds()
        active = self.tokens.active()
        if any(self.tokens.kind(fp) in (None, USER) for fp in active):
            return True
        with self._cond:
            first = not self._noted_plain
            self._noted_plain = True
        if first and active:
            counts = ", ".join(f"{n} {k}" for k, n in self.tokens.count_kinds(active).items())
            note = (
                f"no user token in the pool ({counts}): VK refuses `execute` to service tokens, "
                f"so wall.get and wall.getComments go as plain calls, one page of 100 per "
                f"request; a user token packs {PACK} such calls into one execute request, so "
                f"this crawl costs up to {PACK}× the requests (and time) it would with one"
            )
            self.stats.routing = note
            self._say(note)
        return False

    # -- choosing a token --------------------------------------------------------------------

    def rates(self, fps: list[str]) -> dict[str, float] | None:
        if not self.kind_rates:
            return None
        default = self.kind_rates.get(USER)
        out = {}
        for fp in fps:
            rate = self.kind_rates.get(self.tokens.kind(fp) or USER, default)
            if rate is not None:
                out[fp] = rate
        return out

    def acquire(self, methods: set[str], kind_methods: set[str]) -> str | None:
        """A token that may call `kind_methods`, its budget reserved; None if quotas stop all."""
        self.load_kinds()
        gated = restricted(kind_methods)
        while True:
            with self._cond:
                while True:
                    candidates = self._candidates(kind_methods)
                    free = [fp for fp in candidates if not (gated and fp in self._trying)]
                    if free:
                        break
                    # Every able token's kind is being settled by another request: wait for it.
                    self._cond.wait(0.5)
            fp = self.limiter.acquire(free, methods, self.rates(free))
            if fp is None:
                held = self.limiter.holds(free)
                if not held:
                    return None  # quotas: the caller says which
                # Set aside by another process (a captcha there): out of use here too.
                with self._cond:
                    for key, (why, left) in held.items():
                        self._held[key] = (why, time.monotonic() + left)
                continue
            if not gated:
                return fp
            with self._cond:
                kind = self.tokens.kind(fp)
                if kind is None and fp not in self._trying:
                    self._trying.add(fp)
                    return fp
                # The kind may have been settled while this request waited for its slot.
                if kind is not None and may_call(kind, kind_methods):
                    return fp
            # Another request is trying this token, or settled it as a kind that may not call
            # these methods: the slot is given up, the token is not asked.

    def on_trial(self, fp: str) -> bool:
        """Whether this request is the one trying `fp`, whose kind is not known yet."""
        with self._cond:
            return fp in self._trying

    def release(self, fp: str) -> None:
        with self._cond:
            if fp in self._trying:
                self._trying.discard(fp)
                self._cond.notify_all()

    def _candidates(self, kind_methods: set[str]) -> list[str]:
        now = time.monotonic()
        for fp, (_, until) in list(self._held.items()):
            if until <= now:
                del self._held[fp]
        usable = [fp for fp in self.tokens.active() if fp not in self._held]
        able = [fp for fp in usable if may_call(self.tokens.kind(fp), kind_methods)]
        if not able:
            raise self.no_token(kind_methods, usable)
        return able

    def no_token(self, kind_methods: Collection[str], usable: list[str]) -> VKFatalError:
        method = sorted(kind_methods)[0]
        if usable:
            counts = ", ".join(
                f"{n} {k} ({', '.join(fp for fp in usable if _name(self.tokens, fp) == k)})"
                for k, n in self.tokens.count_kinds(usable).items()
            )
            needs = " or ".join(needed_kinds(kind_methods))
            what = "/".join(sorted(m for m in kind_methods if m in _limited(kind_methods)))
            kinds = {self.tokens.kind(fp) for fp in usable}
            # VK's own code for the refusal, when the pool's kinds say which one it would be.
            code: int | str = 27 if kinds == {GROUP} else 28 if kinds == {SERVICE} else "token_kind"
            return VKFatalError(
                method,
                code,
                f"no token in the pool may call {what or method}: it has {counts} token(s); "
                f"{what or method} needs a {needs} token (add one to VK_ACCESS_TOKENS, or "
                "VK ID's VK_ID_REFRESH_TOKEN for a user token)",
            )
        parts = [f"token {fp}: {why}" for fp, why in self.tokens.retired.items()]
        now = time.monotonic()
        parts += [
            f"token {fp} set aside for {math.ceil((until - now) / 60)} more min: {why}"
            for fp, (why, until) in self._held.items()
        ]
        return VKFatalError(method, 5, f"no usable VK token left ({'; '.join(parts)})")

    # -- holds -------------------------------------------------------------------------------

    def hold(self, fp: str, error: dict[str, Any]) -> None:
        """VK asked for a captcha on `fp`: out of use for a while, in every process."""
        url = error.get("redirect_uri") or error.get("captcha_img") or "(no URL given)"
        reason = f"captcha (error 14): a person may pass it at {url}"
        with self._cond:
            self._held[fp] = (reason, time.monotonic() + self.hold_seconds)
            left = len([f for f in self.tokens.active() if f not in self._held])
        self.limiter.hold(fp, self.hold_seconds, reason)
        self.stats.held[fp] = reason
        self._say(
            f"VK asked for a captcha on token {fp}: set aside for "
            f"{self.hold_seconds / 60:.0f} min, {left} token(s) carry on; "
            f"a person may pass it at {url}"
        )


def _name(tokens: TokenPool, fp: str) -> str:
    kind = tokens.kind(fp)
    return KIND_NAMES[kind] if kind else "unknown"


def _limited(methods: Collection[str]) -> set[str]:
    return {m for m in methods if restricted([m])}


__all__ = ["PACK", "Router"]
