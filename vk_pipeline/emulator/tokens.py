"""Token kinds and which of them each served method accepts, as VK's method schema says.

`TOKEN_KINDS` is VKCOM/vk-api-schema's `access_token_type` for every method the emulator serves
(copied here because the package must not read test data at runtime;
`vk_pipeline_tests/emulator/test_tokens.py` checks it against the vendored schema). The kind
names are the schema's: "user", "group" (a community token), "service" (an app's service key).
"""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
GROUP = "group"
SERVICE = "service"
KINDS = (USER, GROUP, SERVICE)

# Generated from vk_pipeline_tests/data/vk-api-schema/*/methods.json (VKCOM/vk-api-schema
# @0efe478, API 5.199). `execute` is listed for user and community tokens only; VK's execute page
# also names service tokens, but VK answers them with error 28 (VK_API_NOTES §1), so the
# schema's list is the one the emulator enforces.
TOKEN_KINDS: dict[str, frozenset[str]] = {
    "execute": frozenset({USER, GROUP}),
    "groups.getById": frozenset({USER, GROUP, SERVICE}),
    "users.get": frozenset({USER, GROUP, SERVICE}),
    "utils.resolveScreenName": frozenset({USER, GROUP, SERVICE}),
    "wall.get": frozenset({USER, SERVICE}),
    "wall.getById": frozenset({USER, SERVICE}),
    "wall.getComments": frozenset({USER, SERVICE}),
}

# VK's answers when a token of the wrong kind calls a method (errors.json codes 27, 28).
GROUP_AUTH = (27, "Group authorization failed: method is unavailable with group auth.")
APP_AUTH = (28, "Application authorization failed: method is unavailable with service token.")
_REFUSALS = {GROUP: GROUP_AUTH, SERVICE: APP_AUTH}

# Error 5 texts VK sends for a token that no longer works (VK_API_NOTES §5; messages as clients
# match them).
NO_TOKEN_MSG = "User authorization failed: no access_token passed."
INVALID_TOKEN_MSG = "User authorization failed: invalid access_token (4)."
EXPIRED_MSG = "User authorization failed: access_token has expired."
REVOKED_MSG = "User authorization failed: user revoke access for this token."

# VK's documented per-second limits by kind (VK_API_NOTES §2).
DEFAULT_RATES = {USER: 3.0, GROUP: 20.0, SERVICE: 3.0}


def refusal(kind: str, method: str) -> tuple[int, str] | None:
    """The (code, message) VK answers when a `kind` token calls `method`, or None if allowed.

    Methods the emulator does not know are not refused here (they answer 3 later). No served
    method excludes user tokens, so only community and service tokens are ever refused.
    """
    allowed = TOKEN_KINDS.get(method)
    if allowed is None or kind in allowed:
        return None
    return _REFUSALS.get(kind)


@dataclass(frozen=True)
class Captcha:
    """Error 14 as VK sends it today: `redirect_uri` to the "not robot" page, plus the legacy
    `captcha_sid` / `captcha_img` it still includes (dev.vk.ru/ru/api/captcha-error)."""

    sid: str
    stlid: int  # `remixstlid`, a temporary user id for server-to-server captcha checks
    base_url: str

    def fields(self) -> dict[str, object]:
        # The real page lives on id.vk.ru; here it is the emulator's own (it serves nothing
        # there, a person cannot solve it: an unattended crawler must only report the URL).
        return {
            "redirect_uri": (
                f"{self.base_url}/not_robot_captcha?domain=vk.com"
                f"&session_token=emulator-{self.sid}&variant=popup&blank=1"
            ),
            "remixstlid": self.stlid,
            "captcha_sid": self.sid,
            "is_refresh_enabled": False,
            "captcha_img": f"{self.base_url}/captcha.php?sid={self.sid}&s=1&resized=1",
            "captcha_attempt": 1,
            "captcha_ratio": 2.6,
            "is_sound_captcha_available": False,
        }


CAPTCHA_MSG = "Captcha needed"
