"""The Dagster resource that hands assets a configured VK client."""

from __future__ import annotations

import hashlib
import threading

import dagster as dg
from pydantic import Field

from vk_pipeline.vk.client import VK_API_URL, VK_API_VERSION, VKClient
from vk_pipeline.vk.throttle import RateLimiter, SlidingWindowLimiter

_limiters: dict[tuple[str, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(access_token: str, requests_per_second: float, margin: float) -> RateLimiter:
    """One limiter per token per process, so two clients of one token never double its rate."""
    key = (hashlib.sha256(access_token.encode()).hexdigest(), requests_per_second)
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = SlidingWindowLimiter(requests_per_second, margin=margin)
        return _limiters[key]


class VKResource(dg.ConfigurableResource):
    """VK API access: token, endpoint, pacing, retries and batching."""

    access_token: str = Field(repr=False, description="VK user or service token (secret).")
    api_base_url: str = Field(
        default=VK_API_URL, description="Method endpoint; the local emulator in tests and the demo."
    )
    api_version: str = VK_API_VERSION
    requests_per_second: float = Field(default=3.0, description="VK allows 3 for user tokens.")
    rate_margin_seconds: float = Field(
        default=0.06, description="Added to every 1 s window to absorb network jitter."
    )
    timeout_seconds: float = 15.0
    max_attempts: int = Field(default=6, description="Attempts per request on transient errors.")
    use_execute: bool = Field(default=True, description="Pack calls into execute (25 per request).")
    execute_batch_size: int = 25

    def get_client(self) -> VKClient:
        return VKClient(
            access_token=self.access_token,
            limiter=shared_limiter(
                self.access_token, self.requests_per_second, self.rate_margin_seconds
            ),
            api_base_url=self.api_base_url,
            api_version=self.api_version,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            use_execute=self.use_execute,
            execute_batch_size=self.execute_batch_size,
        )
