"""The VK API client: error classes, execute batching, paging, accounting; it asks a rate budget
(`vk_pipeline.budget`) before every request."""

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
from vk_pipeline.vk.resource import VKResource
from vk_pipeline.vk.stats import ClientStats
from vk_pipeline.vk.tokens import TokenPool, fingerprint, split_tokens
from vk_pipeline.vk.users import UsersChunk, fetch_users

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
    "TokenPool",
    "UsersChunk",
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
    "fetch_users",
    "fetch_wall",
    "fetch_walls",
    "fingerprint",
    "split_tokens",
    "vkscript",
]
