"""VK ID user access tokens that refresh themselves.

VK ID issues user access tokens that live an hour and a refresh token that gets a new one:
`POST {VK_ID_URL}/oauth2/auth` with `grant_type=refresh_token`, `refresh_token`, `client_id`,
`device_id`, `state`. Refresh tokens are single use: the answer carries a new one and the old one
is dead. So the current pair lives in the shared store (Postgres in every deployment), encrypted
with a key from the environment, and is rotated by one process at a time under the store's lock;
every other process re-reads what the refresher stored. The environment's refresh token only
seeds the store (and seeds it again when a person puts a new one there).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.fernet import Fernet, InvalidToken

from vk_pipeline.budget import RateLimiter
from vk_pipeline.vk.errors import VKFatalError
from vk_pipeline.vk.tokens import fingerprint

VK_ID_URL = "https://id.vk.com"
# Refreshed this long before VK ID's expiry, so a request never leaves with a token about to die.
REFRESH_BEFORE_SECONDS = 300.0

REFUSED_HELP = (
    "VK ID refused the refresh token ({why}). Sign in again to get a new one (README: "
    "'VK ID tokens'), put it in VK_ID_REFRESH_TOKEN and start again: the store is seeded anew "
    "from a refresh token it has not seen."
)


def fernet(secret_key: str) -> Fernet:
    """A Fernet key from `VK_PIPELINE_SECRET_KEY`: a Fernet key as is, else any passphrase
    stretched by SHA-256 (use a long random one: `python -c 'import secrets;
    print(secrets.token_urlsafe(32))'`)."""
    if not secret_key:
        raise VKFatalError(
            "vkid", "config", "VK ID tokens are stored encrypted: set VK_PIPELINE_SECRET_KEY"
        )
    try:
        return Fernet(secret_key.encode())
    except ValueError:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


def credential_fingerprint(client_id: str, device_id: str) -> str:
    """The credential's name in the budget and the store: stable across refreshes."""
    return fingerprint(f"vkid:{client_id}:{device_id}")


class VkIdCredential:
    """One VK ID sign-in (app, device, refresh chain) as a source of current access tokens."""

    def __init__(
        self,
        *,
        client_id: str,
        device_id: str,
        refresh_token: str,
        secret_key: str,
        store: RateLimiter,
        url: str = VK_ID_URL,
        timeout_seconds: float = 15.0,
        refresh_before_seconds: float = REFRESH_BEFORE_SECONDS,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if not (client_id and device_id and refresh_token):
            raise VKFatalError(
                "vkid",
                "config",
                "VK ID needs VK_ID_CLIENT_ID, VK_ID_DEVICE_ID and VK_ID_REFRESH_TOKEN",
            )
        self.fp = credential_fingerprint(client_id, device_id)
        self._client_id = client_id
        self._device_id = device_id
        self._seed = refresh_token
        self._seed_fp = fingerprint(refresh_token)
        self._fernet = fernet(secret_key)
        self._store = store
        self._url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._before = refresh_before_seconds
        self._clock = clock
        self._warn = warn
        self._lock = threading.Lock()
        self._access: str | None = None
        self._expires_at = 0.0
        self._lifetime = 3600.0
        self.refreshes = 0  # refreshes this process made
        self.rereads = 0  # times this process took a token another one stored

    def __repr__(self) -> str:
        return f"VkIdCredential({self.fp})"

    def access_token(self) -> str:
        """The current access token, refreshed first when it is about to expire."""
        with self._lock:
            if self._access is not None and self._clock() < self._expires_at - self._margin(
                self._lifetime
            ):
                return self._access
            return self._refresh_locked(stale=self._access)

    def refresh(self, stale: str | None) -> str:
        """VK answered error 5 to `stale`: a newer token (another process's, or a new refresh)."""
        with self._lock:
            if self._access is not None and self._access != stale:
                return self._access
            return self._refresh_locked(stale=stale, forced=True)

    def _margin(self, lifetime: float) -> float:
        # A few minutes before expiry for VK ID's hour; a fifth of the life of shorter tokens.
        return min(self._before, lifetime / 5)

    @staticmethod
    def _life(row: dict[str, Any]) -> float:
        if row.get("expires_at") is None or row.get("refreshed_at") is None:
            return 3600.0
        return max(1.0, float(row["expires_at"]) - float(row["refreshed_at"]))

    def _refresh_locked(self, stale: str | None, forced: bool = False) -> str:
        outcome: dict[str, Any] = {}

        def change(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is not None and row["seed_fp"] == self._seed_fp:
                access = self._decrypt(row["access_enc"])
                fresh = row["expires_at"] is not None and (
                    self._clock() < float(row["expires_at"]) - self._margin(self._life(row))
                )
                if access is not None and access != stale and (fresh or forced):
                    # Another process refreshed since we last looked: take its token.
                    outcome["reread"] = True
                    return None
                refresh = self._decrypt(row["refresh_enc"])
                if refresh is None:
                    raise VKFatalError(
                        "vkid", "refused", REFUSED_HELP.format(why=row["last_error"] or "earlier")
                    )
                refreshes = int(row["refreshes"] or 0)
            else:
                # No row yet, or a person put a new refresh token in the environment.
                refresh, refreshes = self._seed, 0
            return self._grant(refresh, refreshes)

        row = self._store.update_credential(self.fp, change)
        if row is None or row.get("access_enc") is None:
            raise VKFatalError(
                "vkid", "refused", REFUSED_HELP.format(why=(row or {}).get("last_error"))
            )
        access = self._decrypt(row["access_enc"])
        if access is None:
            raise VKFatalError("vkid", "config", "stored VK ID token unreadable")
        if outcome.get("reread"):
            self.rereads += 1
        self._access = access
        self._expires_at = float(row["expires_at"])
        self._lifetime = self._life(row)
        return access

    def _grant(self, refresh: str, refreshes: int) -> dict[str, Any]:
        """One refresh grant; the row to store (also when VK ID refused: the chain is dead)."""
        state = secrets.token_urlsafe(24)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": self._client_id,
            "device_id": self._device_id,
            "state": state,
        }
        try:
            response = httpx.post(f"{self._url}/oauth2/auth", data=form, timeout=self._timeout)
            body = response.json()
        except (httpx.HTTPError, ValueError) as e:
            # Nothing was rotated that we know of: the stored refresh token stays; try later.
            raise VKFatalError(
                "vkid", "connection", f"VK ID refresh failed ({type(e).__name__})"
            ) from None
        if not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error", "?") if isinstance(body, dict) else "?"
            described = body.get("error_description", "") if isinstance(body, dict) else ""
            why = f"{error}: {described}"
            if self._warn is not None:
                self._warn(REFUSED_HELP.format(why=why))
            # The store keeps the refusal, so the other processes stop too instead of retrying.
            return {
                "seed_fp": self._seed_fp,
                "refresh_enc": None,
                "access_enc": None,
                "expires_at": None,
                "refreshes": refreshes,
                "refreshed_at": self._clock(),
                "last_error": why,
            }
        if body.get("state") not in (None, "", state):
            raise VKFatalError("vkid", "state", "VK ID answered with another request's state")
        self.refreshes += 1
        expires_in = float(body.get("expires_in") or 3600)
        return {
            "seed_fp": self._seed_fp,
            "refresh_enc": self._encrypt(str(body.get("refresh_token") or refresh)),
            "access_enc": self._encrypt(str(body["access_token"])),
            "expires_at": self._clock() + expires_in,
            "refreshes": refreshes + 1,
            "refreshed_at": self._clock(),
            "last_error": None,
        }

    def _encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def _decrypt(self, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise VKFatalError(
                "vkid",
                "config",
                "the stored VK ID tokens do not open with VK_PIPELINE_SECRET_KEY (was it "
                "changed?); put a fresh VK_ID_REFRESH_TOKEN in the environment to seed anew",
            ) from None
