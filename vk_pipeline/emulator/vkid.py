"""VK ID's token endpoint, refresh grant only: `POST /oauth2/auth` with `grant_type=refresh_token`.

Shapes follow VK's own SDKs (vkid-web-sdk `src/auth/auth.ts`/`types.ts`, vkid-android-sdk
`VKIDApiService.parseTokenPayload`, vkid-ios-sdk `IDHostErrorResponse.swift`): the success body
has `access_token`, `refresh_token`, `id_token`, `expires_in`, `user_id`, `state`,
`token_type`, `scope`; an error body is `{"error", "error_description"[, "state"]}`, and VK
answers a dead refresh token with `invalid_request` / "refresh_token is missing or invalid".

Refresh tokens are single use: each success retires the one presented and issues a new one.
Tokens live only in memory; nothing here logs or returns a token except the success body.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_ACCESS_TTL = 3600.0  # VK ID: "Срок жизни Access token ... 1 час"
DEFAULT_SCOPE = "vkid.personal_info wall groups"
DEFAULT_USER_ID = 1_000_001
TOKEN_PREFIX = "vk2.a."  # what VK ID's tokens and codes start with; clients must not rely on it

# RFC 6749 §5.2: 400 for request errors, 401 for client authentication failures. VK ID's own
# statuses are not documented; its SDKs decide by the `error` key, and so should clients.
_STATUS = {"invalid_request": 400, "invalid_client": 401}


@dataclass
class _Client:
    client_id: str
    user_id: int
    scope: str
    live_refresh: str | None  # the one refresh token that works now (None: chain revoked)
    device_id: str | None = None  # bound by the first refresh, as VK ID binds a session
    refreshes: int = 0
    refused: int = 0


@dataclass
class VkIdResult:
    status: int
    body: dict[str, Any]
    client_id: str | None = None
    error: str | None = None  # None on success
    minted: tuple[str, float] | None = None  # (access token, expires_in seconds)


class VkIdIssuer:
    """The refresh grant over a fixed set of VK ID apps (`{client_id: first refresh token}`)."""

    def __init__(
        self,
        clients: Mapping[str, str],
        *,
        access_ttl: float = DEFAULT_ACCESS_TTL,
        user_id: int = DEFAULT_USER_ID,
        scope: str = DEFAULT_SCOPE,
    ) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self.access_ttl = self._check_ttl(access_ttl)
        for cid, refresh in clients.items():
            self.add_client(str(cid), refresh, user_id=user_id, scope=scope)

    @staticmethod
    def _check_ttl(ttl: float) -> float:
        # expires_in is whole seconds, and VK ID's SDKs read expires_in <= 0 as "never expires".
        if not float(ttl) >= 1:
            raise ValueError(f"vkid_access_ttl must be >= 1 second, got {ttl!r}")
        return float(ttl)

    def set_access_ttl(self, ttl: float) -> None:
        self.access_ttl = self._check_ttl(ttl)

    def add_client(
        self,
        client_id: str,
        refresh_token: str,
        *,
        user_id: int = DEFAULT_USER_ID,
        scope: str = DEFAULT_SCOPE,
    ) -> None:
        """Configure an app (or give it a fresh refresh token, as a new sign-in would)."""
        if not client_id or not refresh_token:
            raise ValueError("a VK ID client needs a client_id and a refresh token")
        with self._lock:
            old = self._clients.get(client_id)
            c = _Client(client_id, user_id, scope, refresh_token)
            if old is not None:
                c.refreshes, c.refused = old.refreshes, old.refused
            self._clients[client_id] = c

    def revoke_refresh(self, client_id: str) -> None:
        """Kill the app's refresh chain (as when the user signs out of all sessions)."""
        with self._lock:
            c = self._clients.get(client_id)
            if c is None:
                raise ValueError(f"unknown VK ID client {client_id!r}")
            c.live_refresh = None

    @property
    def client_ids(self) -> list[str]:
        return sorted(self._clients)

    def snapshot(self) -> dict[str, Any]:
        """Per client: counters and whether its chain is alive (never a token)."""
        with self._lock:
            return {
                c.client_id: {
                    "refreshes": c.refreshes,
                    "refused": c.refused,
                    "alive": c.live_refresh is not None,
                    "device_bound": c.device_id is not None,
                    "user_id": c.user_id,
                }
                for c in self._clients.values()
            }

    def refresh(self, params: Mapping[str, str]) -> VkIdResult:
        """One `POST /oauth2/auth`; params are the query string and form body merged."""
        state = params.get("state")
        grant = params.get("grant_type", "").strip()
        if grant != "refresh_token":
            # Only the refresh grant is emulated; the authorization-code grant needs a browser.
            return self._error(None, "invalid_request", "grant_type is missing or invalid", state)
        cid = params.get("client_id", "").strip()
        device = params.get("device_id", "").strip()
        presented = params.get("refresh_token", "").strip()
        with self._lock:
            c = self._clients.get(cid)
            if c is None:
                return self._error(None, "invalid_client", "client_id is missing or invalid", state)
            if not device or (c.device_id is not None and device != c.device_id):
                c.refused += 1
                return self._error(cid, "invalid_request", "device_id is missing or invalid", state)
            if not presented or c.live_refresh is None or presented != c.live_refresh:
                # A used (rotated) token, another app's token or garbage: one answer for all.
                c.refused += 1
                return self._error(
                    cid, "invalid_request", "refresh_token is missing or invalid", state
                )
            # Single use: the presented token dies here, inside the lock, so of two concurrent
            # refreshes with the same token exactly one gets past this line.
            c.live_refresh = _new_token()
            c.device_id = device
            c.refreshes += 1
            access = _new_token()
            expires_in = int(self.access_ttl)
            body: dict[str, Any] = {
                "refresh_token": c.live_refresh,
                "access_token": access,
                "id_token": _new_token(),  # opaque here; VK sends a JWT nobody needs to read
                "token_type": "Bearer",
                "expires_in": expires_in,
                "user_id": c.user_id,
                "state": state if state is not None else "",
                "scope": c.scope,
            }
            return VkIdResult(200, body, cid, minted=(access, self.access_ttl))

    def _error(
        self, cid: str | None, error: str, description: str, state: str | None
    ) -> VkIdResult:
        body: dict[str, Any] = {"error": error, "error_description": description}
        if state is not None:
            body["state"] = state
        return VkIdResult(_STATUS[error], body, cid, error=error)


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(48)
