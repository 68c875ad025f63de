"""The emulator's world as it is held in memory: its spec, communities, posts and comments.

Plain objects with slots (a world of 150k comments stays small and fast to walk), and what of
them VK shows: a wall in VK's order, the visible comments and replies of a post, and its
`comments.count`. Those views are cached on the objects and invalidated where a change lands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DAY = 86_400
GROUP_ID_BASE = 100_001
# 2025-01-01T00:00:00Z: a fixed clock keeps worlds reproducible across runs.
DEFAULT_NOW = 1_735_689_600

KINDS = ("open", "closed", "private", "banned", "deleted", "wall_off")
SPECIAL_KINDS = ("closed", "private", "banned", "deleted", "wall_off")


@dataclass(frozen=True)
class WorldSpec:
    seed: int = 1
    groups: int = 20
    posts: int = 5000
    comments: int = 150_000
    special_groups: bool = True
    now: int = DEFAULT_NOW
    history_days: int = 730
    # Put texts.HOSTILE into a few posts and comments (drawn from an RNG of their own, so the
    # rest of the world is the same with or without them).
    hostile_texts: bool = False


class Comment:
    __slots__ = (
        "attachments",
        "date",
        "deleted",
        "edited",
        "from_id",
        "id",
        "likes",
        "reply_to",
        "root",
        "text",
    )

    def __init__(
        self,
        from_id: int,
        date: int,
        text: str,
        root: Comment | None,
        reply_to: Comment | None,
        likes: int,
        attachments: list[dict[str, Any]] | None,
    ) -> None:
        self.id = 0
        self.from_id = from_id
        self.date = date
        self.text = text
        self.root = root
        self.reply_to = reply_to
        self.likes = likes
        self.attachments = attachments
        self.deleted = False
        self.edited = 0


class Post:
    __slots__ = (
        "attachments",
        "by_id",
        "comments_closed",
        "copy_history",
        "date",
        "deleted",
        "edited",
        "from_id",
        "gid",
        "hash",
        "id",
        "likes",
        "live_count",
        "mail_reposts",
        "marked_as_ads",
        "signer_id",
        "source",
        "text",
        "threads",
        "top",
        "views",
        "vis_top",
        "wall_reposts",
    )

    def __init__(self, gid: int, date: int) -> None:
        self.id = 0
        self.gid = gid
        self.date = date
        self.from_id = -gid
        self.signer_id = 0
        self.text = ""
        self.attachments: list[dict[str, Any]] = []
        self.copy_history: list[dict[str, Any]] = []
        self.likes = 0
        self.wall_reposts = 0
        self.mail_reposts = 0
        self.views: int | None = 0
        self.marked_as_ads = 0
        self.edited = 0
        self.comments_closed = False
        self.source: dict[str, str] = {"type": "vk"}
        self.hash = ""
        self.deleted = False
        self.top: list[Comment] = []
        self.threads: dict[int, list[Comment]] = {}
        self.by_id: dict[int, Comment] = {}
        self.vis_top: list[Comment] | None = None
        self.live_count: int | None = None

    def invalidate(self) -> None:
        self.vis_top = None
        self.live_count = None

    def attach(self, c: Comment) -> None:
        """File a numbered comment under this post (top level or in its root's thread)."""
        self.by_id[c.id] = c
        if c.root is None:
            self.top.append(c)
        else:
            self.threads.setdefault(c.root.id, []).append(c)
        self.invalidate()


class Group:
    __slots__ = (
        "activity",
        "counters",
        "deactivated",
        "deleted_post_ids",
        "description",
        "id",
        "is_closed",
        "kind",
        "members_count",
        "name",
        "next_id",
        "pinned",
        "posts",
        "posts_by_id",
        "screen_name",
        "site",
        "status",
        "type",
        "verified",
        "wall",
        "wall_order",
    )

    def __init__(self, gid: int, kind: str) -> None:
        self.id = gid
        self.kind = kind
        self.name = ""
        self.screen_name = ""
        self.type = "page"
        self.is_closed = 0
        self.deactivated = ""
        self.wall = 1
        self.members_count = 0
        self.description = ""
        self.activity = ""
        self.status = ""
        self.verified = 0
        self.site = ""
        self.counters: dict[str, int] = {}
        self.next_id = 1
        self.pinned = 0
        self.posts: list[Post] = []
        self.posts_by_id: dict[int, Post] = {}
        self.deleted_post_ids: set[int] = set()
        self.wall_order: list[Post] | None = None

    @property
    def readable(self) -> bool:
        return self.kind == "open"


def wall_order(g: Group) -> list[Post]:
    """The live posts of a wall as VK lists them: the pinned one first, then newest first."""
    if g.wall_order is None:
        live = [p for p in g.posts if not p.deleted]
        pinned = [p for p in live if p.id == g.pinned]
        rest = sorted((p for p in live if p.id != g.pinned), key=lambda p: p.id, reverse=True)
        g.wall_order = pinned + rest
    return g.wall_order


def live_count(p: Post) -> int:
    """What VK's `comments.count` shows: every visible comment and reply, including the stub
    a deleted comment leaves while it still has live replies. So deleting such a comment, or
    editing any, leaves the count as it was (the silent changes a crawler must re-verify)."""
    if p.live_count is None:
        live = sum(1 for c in p.by_id.values() if not c.deleted)
        p.live_count = live + sum(1 for c in visible_top(p) if c.deleted)
    return p.live_count


def visible_top(p: Post) -> list[Comment]:
    """Top-level comments VK lists: live ones, and deleted ones that still have live replies."""
    if p.vis_top is None:
        p.vis_top = [
            c for c in p.top if not c.deleted or any(not r.deleted for r in p.threads.get(c.id, ()))
        ]
    return p.vis_top


def visible_replies(p: Post, root: Comment) -> list[Comment]:
    return [r for r in p.threads.get(root.id, ()) if not r.deleted]


def to_json_copy(value: Any) -> Any:
    # A JSON round trip is both a deep copy and a guarantee that truth has wire types.
    return json.loads(json.dumps(value, ensure_ascii=False))
