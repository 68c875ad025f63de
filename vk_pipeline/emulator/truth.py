"""What any client must ask VK for a world, computed from the emulator's ground truth.

Lower bounds for benchmarks and tests: pages of 100 (VK's maximum), the first 10 replies of a
thread carried inline, 25 calls per `execute`. They know VK's limits, not any client's code.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from vk_pipeline.emulator.world import World

PAGE = 100
INLINE_REPLIES = 10
PACK = 25


def comment_pages(comments: list[dict]) -> int:
    """Calls to read one post's comments: top-level pages plus pages of threads too long to be
    carried inline."""
    if not comments:
        return 0
    top = [c for c in comments if not c.get("parents_stack")]
    replies = Counter(c["parents_stack"][0] for c in comments if c.get("parents_stack"))
    long_threads = sum(math.ceil(n / PAGE) for n in replies.values() if n > INLINE_REPLIES)
    return max(1, math.ceil(len(top) / PAGE)) + long_threads


def wall_pages(world: World, gid: int) -> int:
    return max(1, math.ceil(len(world.posts(gid)) / PAGE))


def lower_bound_calls(world: World, groups: Iterable[int] | None = None) -> int:
    """One groups.getById, every wall page, every comment and long-thread page."""
    calls = 1
    for gid in groups if groups is not None else world.group_ids():
        calls += wall_pages(world, gid)
        calls += sum(comment_pages(world.comments(gid, p["id"])) for p in world.posts(gid))
    return calls


def requests_for(calls: int) -> int:
    return math.ceil(calls / PACK)
