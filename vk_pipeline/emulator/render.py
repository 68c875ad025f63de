"""Rendering: the world's objects as VK API 5.199 serves them.

`groups_group_full`, `wall_wallpost_full`, `wall_wall_comment` (with its `thread`) and user
profiles. The HTTP methods and the ground-truth accessors both render through here, so "truth"
is exactly what the API serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from vk_pipeline.emulator import texts
from vk_pipeline.emulator.state import Comment, Group, Post, live_count, visible_replies

# Fields groups.getById understands; anything else in `fields` is silently ignored, as VK does.
GROUP_FIELDS = (
    "activity",
    "age_limits",
    "can_message",
    "can_post",
    "can_see_all_posts",
    "counters",
    "cover",
    "description",
    "fixed_post",
    "has_photo",
    "is_favorite",
    "members_count",
    "site",
    "status",
    "verified",
    "wall",
)


def user_is_private(uid: int) -> bool:
    # Every fifth user keeps a closed profile: fixed by the id, so tests can pick one.
    return uid % 5 == 0


def render_group(g: Group, fields: Iterable[str]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": g.id,
        "name": g.name,
        "screen_name": g.screen_name,
        "is_closed": g.is_closed,
        "type": g.type,
    }
    if g.deactivated:
        # Deactivated communities come back stripped down, with only `deactivated` added.
        d["deactivated"] = g.deactivated
    else:
        d.update({"is_admin": 0, "is_member": 0, "is_advertiser": 0})
    key = hashlib.md5(f"g{g.id}".encode()).hexdigest()[:12]
    for size in (50, 100, 200):
        d[f"photo_{size}"] = (
            f"https://sun9-{g.id % 80}.userapi.com/s/v1/ig2/{key}.jpg?size={size}x{size}"
        )
    if g.deactivated:
        return d
    wanted = set(fields)
    full = {
        "activity": g.activity,
        "age_limits": 1,
        "can_message": 0 if g.is_closed else 1,
        "can_post": 1 if g.wall == 1 and not g.is_closed else 0,
        "can_see_all_posts": 1 if g.readable else 0,
        "counters": dict(g.counters),
        "cover": {"enabled": 0},
        "description": g.description,
        "has_photo": 1,
        "is_favorite": 0,
        "members_count": g.members_count,
        "site": g.site,
        "status": g.status,
        "verified": g.verified,
        "wall": g.wall,
    }
    if g.pinned:
        full["fixed_post"] = g.pinned
    for k in GROUP_FIELDS:
        if k in wanted and k in full:
            d[k] = full[k]
    return d


def render_post(p: Post, g: Group) -> dict[str, Any]:
    if p.comments_closed:
        comments = {
            "can_post": 0,
            "can_close": 0,
            "can_open": 0,
            "count": 0,
            "groups_can_post": False,
        }
    else:
        comments = {
            "can_post": 1,
            "can_close": 0,
            "can_open": 0,
            "count": live_count(p),
            "groups_can_post": True,
        }
    d: dict[str, Any] = {
        "donut": {"is_donut": False},
        "comments": comments,
        "marked_as_ads": p.marked_as_ads,
        "short_text_rate": 0.8,
        "hash": p.hash,
        "type": "post",
        "attachments": p.attachments,
        "date": p.date,
        "from_id": p.from_id,
        "id": p.id,
        "is_favorite": False,
        "likes": {
            "can_like": 1,
            "count": p.likes,
            "user_likes": 0,
            "can_publish": 1,
            "repost_disabled": False,
        },
        "owner_id": -g.id,
        "post_source": p.source,
        "post_type": "post",
        "reposts": {
            "count": p.wall_reposts + p.mail_reposts,
            "wall_count": p.wall_reposts,
            "mail_count": p.mail_reposts,
            "user_reposted": 0,
        },
        "text": p.text,
    }
    if p.views is not None:
        d["views"] = {"count": p.views}
    if p.edited:
        d["edited"] = p.edited
    if p.signer_id:
        d["signer_id"] = p.signer_id
    if p.copy_history:
        d["copy_history"] = p.copy_history
    if p.id == g.pinned:
        d["is_pinned"] = 1
    return d


def thread_info(items: list[dict[str, Any]], count: int, can_post: bool = True) -> dict[str, Any]:
    return {
        "count": count,
        "items": items,
        "can_post": can_post,
        "show_reply_button": can_post,
        "groups_can_post": can_post,
    }


def render_comment(
    c: Comment,
    p: Post,
    need_likes: bool,
    preview_length: int,
) -> dict[str, Any]:
    if c.deleted:
        # VK's stub for a removed comment that still has replies (kept so the thread
        # stays reachable); exact stub fields are unverified, see VK_API_NOTES §4.
        return {
            "id": c.id,
            "from_id": c.from_id,
            "date": c.date,
            "text": "",
            "post_id": p.id,
            "owner_id": -p.gid,
            "parents_stack": [],
            "deleted": True,
        }
    text = c.text
    if preview_length and len(text) > preview_length:
        text = text[:preview_length]
    d: dict[str, Any] = {
        "id": c.id,
        "from_id": c.from_id,
        "date": c.date,
        "text": text,
        "post_id": p.id,
        "owner_id": -p.gid,
    }
    root = c.root
    if root is None:
        d["parents_stack"] = []
    else:
        d["parents_stack"] = [root.id]
        target = c.reply_to if c.reply_to is not None else root
        d["reply_to_user"] = target.from_id
        d["reply_to_comment"] = target.id
    if c.attachments:
        d["attachments"] = c.attachments
    # No `edited` field: VK's comment object has none, an edit changes only the text.
    if need_likes:
        d["likes"] = {"can_like": 1, "count": c.likes, "user_likes": 0, "can_publish": 1}
    return d


def render_top_comment(
    c: Comment,
    p: Post,
    need_likes: bool,
    preview_length: int,
    thread_items: int,
) -> dict[str, Any]:
    d = render_comment(c, p, need_likes, preview_length)
    replies = visible_replies(p, c)
    items = [render_comment(r, p, need_likes, preview_length) for r in replies[:thread_items]]
    d["thread"] = thread_info(items, len(replies))
    return d


def profile(uid: int) -> dict[str, Any]:
    first, last = texts.person_name(uid)
    private = user_is_private(uid)
    return {
        "id": uid,
        "first_name": first,
        "last_name": last,
        "can_access_closed": not private,
        "is_closed": private,
        "screen_name": f"id{uid}",
        "photo_50": f"https://sun9-{uid % 80}.userapi.com/u/{uid}.jpg?size=50x50",
        "photo_100": f"https://sun9-{uid % 80}.userapi.com/u/{uid}.jpg?size=100x100",
        "online": 0,
    }
