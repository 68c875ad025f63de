"""VK error classes (VK_API_NOTES.md section 5) and the exceptions the client raises.

VK answers most errors inside HTTP 200 bodies, so every response is classified here, not by status.
Messages name the method and VK's error text; they never include request parameters, which is
where a token could hide.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorClass(Enum):
    TRANSIENT = "transient"  # retry with backoff
    QUOTA = "quota"  # stop this method for the run
    FATAL = "fatal"  # token, app or request is wrong: fail fast
    OBJECT = "object"  # this group/post is not readable: record it and go on


TRANSIENT_CODES = frozenset({1, 6, 9, 10, 32, 36, 43})
QUOTA_CODES = frozenset({29, 103})
# 100 is per-object when it comes from a bad id (groups.getById "group_ids is undefined", a post
# that vanished under wall.getComments); a malformed request from this client would be a bug that
# the tests catch, so treating it as per-object never hides a whole-run failure.
OBJECT_CODES = frozenset(
    {15, 18, 19, 30, 39, 40, 100, 104, 113, 125, 200, 203, 210, 211, 212, 213, 260}
)
# Error 13 "response size is too big" is handled by the batcher (it shrinks the pack); any other 13
# is a bug in the script and fatal.
RESPONSE_TOO_BIG = 13


def classify(code: int) -> ErrorClass:
    if code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if code in QUOTA_CODES:
        return ErrorClass.QUOTA
    if code in OBJECT_CODES:
        return ErrorClass.OBJECT
    return ErrorClass.FATAL


@dataclass(frozen=True)
class ObjectError:
    """A per-object refusal (closed group, wall off, comments closed ...), returned, not raised."""

    code: int
    message: str

    @property
    def reason(self) -> str:
        return f"VK error {self.code}: {self.message}"


class VKError(Exception):
    """Base class for errors that end a VK call."""

    def __init__(self, method: str, code: int | str, message: str) -> None:
        self.method = method
        self.code = code
        self.vk_message = message
        super().__init__(f"{method}: VK error {code}: {message}")


class VKFatalError(VKError):
    """The token, the app or the request is wrong; retrying cannot help."""


# VK's published daily quotas (vk.com/dev/data_limits); other methods have unpublished ones.
KNOWN_DAILY_QUOTAS = {"wall.get": 5000, "wall.search": 1000, "newsfeed.search": 1000}


def describe_quota(method: str) -> str:
    known = KNOWN_DAILY_QUOTAS.get(method)
    if known:
        return f"VK's daily quota of {known:,} {method} calls per token"
    return f"VK's daily quota for {method} (VK does not publish its size)"


class VKQuotaError(VKError):
    """VK's quantitative limit for a method is reached on every usable token.

    `partial` holds, when raised from a batch, the results that did arrive (None where not), so
    callers keep what was read before the stop."""

    def __init__(
        self,
        method: str,
        code: int | str,
        message: str,
        *,
        tokens: int = 1,
        resets_in: float | None = None,
    ) -> None:
        super().__init__(method, code, message)
        self.partial: list[object] | None = None
        self.resets_in = resets_in
        who = "this token" if tokens == 1 else f"all {tokens} tokens"
        when = f"; it resets in about {resets_in / 3600:.1f} h" if resets_in is not None else ""
        self.args = (
            f"{describe_quota(method)} is reached on {who} (error {code}: {message}){when}; "
            f"no more {method} calls are made until then",
        )


class VKRetriesExhaustedError(VKError):
    """A transient failure outlived every retry."""

    def __init__(self, method: str, code: int | str, message: str, attempts: int) -> None:
        super().__init__(method, code, message)
        self.attempts = attempts
        self.args = (f"{method}: gave up after {attempts} attempts; last error {code}: {message}",)
