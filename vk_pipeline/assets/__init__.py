"""The three VK assets, each partitioned by group."""

from vk_pipeline.assets.comments import comments
from vk_pipeline.assets.groups import groups
from vk_pipeline.assets.posts import posts

vk_assets = [groups, posts, comments]

__all__ = ["comments", "groups", "posts", "vk_assets"]
