"""VK objects → table rows. Pure functions: what the tables keep of each object."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

GROUP_COLUMNS = {
    "id": "Int64",
    "screen_name": "object",
    "name": "object",
    "type": "object",
    "is_closed": "Int64",
    "deactivated": "object",
    "status": "object",
    "wall": "Int64",
    "members_count": "Int64",
    "verified": "boolean",
    "activity": "object",
    "description": "object",
    "site": "object",
    "fetch_error_code": "Int64",
    "fetch_error": "object",
    "raw": "object",
}

POST_COLUMNS = {
    "owner_id": "Int64",
    "id": "Int64",
    "group_id": "Int64",
    "from_id": "Int64",
    "signer_id": "Int64",
    "created_by": "Int64",
    "date": "datetime64[ns, UTC]",
    "edited": "datetime64[ns, UTC]",
    "text": "object",
    "post_type": "object",
    "is_pinned": "boolean",
    "marked_as_ads": "boolean",
    "comments_count": "Int64",
    "comments_can_post": "boolean",
    "likes_count": "Int64",
    "reposts_count": "Int64",
    "views_count": "Int64",
    "copy_owner_id": "Int64",
    "copy_post_id": "Int64",
    "attachment_types": "object",
    "raw": "object",
    "is_deleted": "boolean",
    "deleted_seen_at": "datetime64[ns, UTC]",
}

COMMENT_COLUMNS = {
    "owner_id": "Int64",
    "id": "Int64",
    "group_id": "Int64",
    "post_id": "Int64",
    "from_id": "Int64",
    "date": "datetime64[ns, UTC]",
    "text": "object",
    "reply_to_user": "Int64",
    "reply_to_comment": "Int64",
    "thread_root_id": "Int64",
    "parents_stack": "object",
    "thread_count": "Int64",
    "likes_count": "Int64",
    "attachment_types": "object",
    "raw": "object",
    "is_deleted": "boolean",
    "deleted_seen_at": "datetime64[ns, UTC]",
}

TOMBSTONE_COLUMNS = ("owner_id", "id", "group_id", "is_deleted", "deleted_seen_at")
COMMENT_TOMBSTONE_COLUMNS = (*TOMBSTONE_COLUMNS, "post_id")
POST_SYNC_COLUMNS = {
    "owner_id": "Int64",
    "id": "Int64",
    "comments_synced_count": "Int64",
    "comments_synced_at": "datetime64[ns, UTC]",
    "comments_status": "object",
    "comments_error_code": "Int64",
}

WALL_LISTING_COLUMNS = {
    "group_id": "Int64",
    "listed_at": "datetime64[ns, UTC]",
    "listed_through": "datetime64[ns, UTC]",
}


def frame(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    """A DataFrame with exactly `columns`, typed so that NULLs and bigints survive."""
    df = pd.DataFrame.from_records(list(rows), columns=list(columns))
    for name, dtype in columns.items():
        if dtype.startswith("datetime"):
            df[name] = pd.to_datetime(df[name], utc=True)
        else:
            df[name] = df[name].astype(dtype)
    return df


def ts(unix: int | None) -> datetime | None:
    return datetime.fromtimestamp(unix, UTC) if unix else None


def group_status(group: Mapping[str, Any] | None) -> str:
    if group is None:
        return "not_found"
    if group.get("deactivated"):
        return str(group["deactivated"])  # "banned" or "deleted"
    closed = group.get("is_closed", 0)
    if closed == 1:
        return "closed"
    if closed == 2:
        return "private"
    if group.get("wall") == 0:
        return "wall_disabled"
    return "open"


def group_row(
    key: str, group: Mapping[str, Any] | None, error: tuple[int, str] | None
) -> dict[str, Any]:
    g = group or {}
    return {
        "id": int(g.get("id") or key),
        "screen_name": g.get("screen_name"),
        "name": g.get("name"),
        "type": g.get("type"),
        "is_closed": g.get("is_closed"),
        "deactivated": g.get("deactivated"),
        "status": group_status(group),
        "wall": g.get("wall"),
        "members_count": g.get("members_count"),
        "verified": bool(g["verified"]) if "verified" in g else None,
        "activity": g.get("activity"),
        "description": g.get("description"),
        "site": g.get("site"),
        "fetch_error_code": error[0] if error else None,
        "fetch_error": error[1] if error else None,
        "raw": dict(group) if group else None,
    }


def _count(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value.get("count") if isinstance(value, Mapping) else None


def _attachment_types(obj: Mapping[str, Any]) -> list[str]:
    return [a.get("type", "unknown") for a in obj.get("attachments") or []]


def post_row(post: Mapping[str, Any], group_id: int) -> dict[str, Any]:
    comments = post.get("comments") or {}
    copy = (post.get("copy_history") or [None])[0] or {}
    return {
        "owner_id": post["owner_id"],
        "id": post["id"],
        "group_id": group_id,
        "from_id": post.get("from_id"),
        "signer_id": post.get("signer_id"),
        "created_by": post.get("created_by"),
        "date": ts(post["date"]),
        "edited": ts(post.get("edited")),
        "text": post.get("text"),
        "post_type": post.get("post_type"),
        "is_pinned": bool(post.get("is_pinned")),
        "marked_as_ads": bool(post.get("marked_as_ads")),
        "comments_count": comments.get("count"),
        "comments_can_post": bool(comments["can_post"]) if "can_post" in comments else None,
        "likes_count": _count(post, "likes"),
        "reposts_count": _count(post, "reposts"),
        "views_count": _count(post, "views"),
        "copy_owner_id": copy.get("owner_id"),
        "copy_post_id": copy.get("id"),
        "attachment_types": _attachment_types(post),
        "raw": dict(post),
        # A post seen live again after a tombstone is live again.
        "is_deleted": False,
        "deleted_seen_at": None,
    }


def comment_row(
    comment: Mapping[str, Any], owner_id: int, post_id: int, group_id: int
) -> dict[str, Any]:
    parents = comment.get("parents_stack") or []
    raw = dict(comment)
    thread = raw.get("thread")
    if isinstance(thread, Mapping) and "items" in thread:
        # Inline replies are stored as rows of their own; keeping them here too would double them.
        raw["thread"] = {k: v for k, v in thread.items() if k != "items"}
    return {
        "owner_id": owner_id,
        "id": comment["id"],
        "group_id": group_id,
        "post_id": post_id,
        "from_id": comment.get("from_id"),
        "date": ts(comment.get("date")),
        "text": comment.get("text"),
        "reply_to_user": comment.get("reply_to_user"),
        "reply_to_comment": comment.get("reply_to_comment"),
        "thread_root_id": parents[0] if parents else None,
        "parents_stack": list(parents) or None,
        "thread_count": _count(comment, "thread"),
        "likes_count": _count(comment, "likes"),
        "attachment_types": _attachment_types(comment),
        "raw": raw,
        "is_deleted": False,
        "deleted_seen_at": None,
    }


def tombstone(
    key: tuple[int, int], group_id: int, seen_at: datetime, **extra: Any
) -> dict[str, Any]:
    """A partial row that marks a vanished post or comment deleted and leaves its content alone."""
    return {
        "owner_id": key[0],
        "id": key[1],
        "group_id": group_id,
        "is_deleted": True,
        "deleted_seen_at": seen_at,
        **extra,
    }
