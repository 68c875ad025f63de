"""The Dagster resource that hands assets a configured VK client drawing on a rate budget."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from pydantic import Field

from vk_pipeline.budget import RateBudget
from vk_pipeline.vk.client import CAPTCHA_HOLD_SECONDS, VK_API_URL, VK_API_VERSION, VKClient
from vk_pipeline.vk.tokens import GROUP, SERVICE, USER
from vk_pipeline.vk.vkid import VK_ID_URL, VkIdCredential


class VKResource(dg.ConfigurableResource):
    """VK API access: tokens, endpoint, pacing, retries and batching."""

    access_token: str = Field(
        default="",
        repr=False,
        description="VK user, community or service tokens (secret), comma- or newline-separated: "
        "a pool where each request goes to the token that can send soonest among those whose "
        "kind (learned from VK) may call the method. May be empty when VK ID is set.",
    )
    api_base_url: str = Field(
        default=VK_API_URL, description="Method endpoint; the local emulator in tests and the demo."
    )
    api_version: str = VK_API_VERSION
    requests_per_second: float = Field(default=3.0, description="VK allows 3 per user token.")
    service_requests_per_second: float = Field(
        default=3.0,
        description="Per service token (VK_SERVICE_RATE): VK sets it by the app's audience.",
    )
    community_requests_per_second: float = Field(
        default=20.0, description="VK allows 20 per community token."
    )
    captcha_hold_minutes: float = Field(
        default=CAPTCHA_HOLD_SECONDS / 60,
        description="How long a token VK asked a captcha for is set aside.",
    )
    vk_id_refresh_token: str = Field(
        default="",
        repr=False,
        description="VK ID refresh token (secret) that seeds the stored, rotating credential.",
    )
    vk_id_client_id: str = ""
    vk_id_device_id: str = ""
    vk_id_url: str = VK_ID_URL
    secret_key: str = Field(
        default="",
        repr=False,
        description="VK_PIPELINE_SECRET_KEY (secret): encrypts the stored VK ID tokens.",
    )
    rate_margin_seconds: float = Field(
        default=0.06, description="Added to every 1 s window to absorb network jitter."
    )
    timeout_seconds: float = 15.0
    max_attempts: int = Field(default=6, description="Attempts per request on transient errors.")
    max_unavailable_seconds: float = Field(
        default=180.0,
        description="Total seconds of failed VK attempts and retry waits one step may spend; then "
        "it fails at once, without step retries (a dead VK cannot hold a run longer).",
    )
    use_execute: bool = Field(default=True, description="Pack calls into execute (25 per request).")
    execute_batch_size: int = 25
    concurrency: int = Field(default=0, description="Requests in flight at once; 0: one per token.")
    quota_cooldown_hours: float = Field(
        default=24.0,
        description="How long a token that hit a method's daily quota (error 29) is skipped for it.",
    )
    budget: RateBudget = Field(
        default_factory=RateBudget,
        description="Where the tokens' rate budget lives (Postgres: shared by every run).",
    )

    def get_client(self, warn: Callable[[str], None] | None = None) -> VKClient:
        limiter = self.budget.limiter(self.requests_per_second, self.rate_margin_seconds)
        vkid = None
        if self.vk_id_refresh_token:
            vkid = VkIdCredential(
                client_id=self.vk_id_client_id,
                device_id=self.vk_id_device_id,
                refresh_token=self.vk_id_refresh_token,
                secret_key=self.secret_key,
                store=limiter,
                url=self.vk_id_url,
                timeout_seconds=self.timeout_seconds,
                warn=warn,
            )
        return VKClient(
            access_token=self.access_token,
            vkid=vkid,
            kind_rates={
                USER: self.requests_per_second,
                SERVICE: self.service_requests_per_second,
                GROUP: self.community_requests_per_second,
            },
            captcha_hold_seconds=self.captcha_hold_minutes * 60,
            limiter=limiter,
            api_base_url=self.api_base_url,
            api_version=self.api_version,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            use_execute=self.use_execute,
            execute_batch_size=self.execute_batch_size,
            concurrency=self.concurrency or None,
            quota_cooldown_seconds=self.quota_cooldown_hours * 3600,
            warn=warn,
            max_unavailable_seconds=self.max_unavailable_seconds,
        )
