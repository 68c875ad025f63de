"""The VK assets, each partitioned by group."""

from vk_pipeline.assets.authors import authors
from vk_pipeline.assets.comments import comments
from vk_pipeline.assets.groups import groups
from vk_pipeline.assets.posts import posts

vk_assets = [groups, posts, comments, authors]

__all__ = ["authors", "comments", "groups", "posts", "vk_assets"]
