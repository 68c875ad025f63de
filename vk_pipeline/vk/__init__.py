"""The VK API client: throttle, error classes, execute batching, paging, accounting."""

from vk_pipeline.vk.client import VK_API_URL, VK_API_VERSION, Call, VKClient, vkscript
from vk_pipeline.vk.errors import (
    ErrorClass,
    ObjectError,
    VKError,
    VKFatalError,
    VKQuotaError,
    VKRetriesExhaustedError,
    classify,
)
from vk_pipeline.vk.paging import (
    CommentsResult,
    Cost,
    GroupResult,
    PostRef,
    WallRequest,
    WallResult,
    fetch_comments,
    fetch_groups,
    fetch_wall,
    fetch_walls,
)
from vk_pipeline.vk.resource import RateBudget, VKResource
from vk_pipeline.vk.stats import ClientStats
from vk_pipeline.vk.throttle import RateLimiter, SlidingWindowLimiter
from vk_pipeline.vk.tokens import TokenPool, fingerprint, split_tokens

__all__ = [
    "VK_API_URL",
    "VK_API_VERSION",
    "Call",
    "ClientStats",
    "CommentsResult",
    "Cost",
    "ErrorClass",
    "GroupResult",
    "ObjectError",
    "PostRef",
    "RateBudget",
    "RateLimiter",
    "SlidingWindowLimiter",
    "TokenPool",
    "VKClient",
    "VKError",
    "VKFatalError",
    "VKQuotaError",
    "VKResource",
    "VKRetriesExhaustedError",
    "WallRequest",
    "WallResult",
    "classify",
    "fetch_comments",
    "fetch_groups",
    "fetch_wall",
    "fetch_walls",
    "fingerprint",
    "split_tokens",
    "vkscript",
]
