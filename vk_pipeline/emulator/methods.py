"""VK API method semantics over a `World` (no HTTP, no auth, no limits here).

Every handler takes the raw string parameters exactly as VK receives them (form fields) and
either returns the `response` payload or raises `ApiError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vk_pipeline.emulator import users
from vk_pipeline.emulator.state import Group as _Group
from vk_pipeline.emulator.state import Post as _Post
from vk_pipeline.emulator.world import World

PARAM_ERR = "One of the parameters specified was missing or invalid: "
# groups.getById switched from a bare list to {"groups", "profiles"} (VK_API_NOTES §3).
GROUPS_OBJECT_SINCE = (5, 199)
MAX_GROUP_IDS = 500
MAX_COUNT = 100
MAX_THREAD_ITEMS = 10


class ApiError(Exception):
    def __init__(self, code: int, msg: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"[{code}] {msg}")
        self.code = code
        self.msg = msg
        self.extra = extra or {}  # fields VK adds to some errors (captcha: redirect_uri, ...)


@dataclass(frozen=True)
class CallContext:
    token_kind: str  # "user", "group" or "service" (already checked against the method)
    version: tuple[int, int]


def parse_version(v: str) -> tuple[int, int] | None:
    parts = v.strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _int(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ApiError(100, f"{PARAM_ERR}{name} not integer") from None


def _flag(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "").strip().lower()
    return raw not in ("", "0", "false")


def _count(params: dict[str, str], default: int) -> int:
    # VK documents "maximum 100" and serves at most 100 items for larger values rather than
    # failing; the emulator clamps the same way.
    n = _int(params, "count", default)
    assert n is not None
    return max(0, min(MAX_COUNT, n))


def _offset(params: dict[str, str]) -> int:
    n = _int(params, "offset", 0)
    assert n is not None
    return max(0, n)


def _split(raw: str) -> list[str]:
    return [x.strip() for x in raw.split(",") if x.strip()]


def _group_wall_access(g: _Group) -> None:
    """Per-community errors for wall.get / wall.getComments (see README of the emulator)."""
    if g.kind in ("closed", "private"):
        raise ApiError(15, "Access denied: this wall available only for community members")
    if g.kind == "banned":
        raise ApiError(15, "Access denied: group is blocked")
    if g.kind == "deleted":
        raise ApiError(15, "Access denied: group is deleted")
    if g.kind == "wall_off":
        raise ApiError(15, "Access denied: wall is disabled")


def _owner_group(world: World, owner_id: int) -> _Group:
    """The community behind a wall owner id; user walls raise the errors VK gives for them."""
    if owner_id > 0:
        if not world.is_user(owner_id):
            raise ApiError(18, "User was deleted or banned")
        if world.user_is_private(owner_id):
            raise ApiError(30, "This profile is private")
        raise _EmptyUserWall
    g = world.group_obj(-owner_id) if owner_id < 0 else None
    if g is None:
        raise ApiError(100, f"{PARAM_ERR}owner_id is undefined")
    return g


class _EmptyUserWall(Exception):
    """Users are modelled only as authors: an accessible user wall is simply empty."""


def _extended(world: World, owner_ids: set[int]) -> dict[str, list[dict[str, Any]]]:
    profiles = [world.profile(uid) for uid in sorted(i for i in owner_ids if i > 0)]
    groups = []
    for gid in sorted(-i for i in owner_ids if i < 0):
        g = world.group_obj(gid)
        if g is not None:
            groups.append(world.render_group(g, ()))
    return {"profiles": profiles, "groups": groups}


# ---------------------------------------------------------------------- methods


def groups_get_by_id(world: World, params: dict[str, str], ctx: CallContext) -> Any:
    raw = params.get("group_ids", "")
    refs = _split(raw)
    if not refs and params.get("group_id", "").strip():
        refs = [params["group_id"].strip()]
    if len(refs) > MAX_GROUP_IDS:
        raise ApiError(100, f"{PARAM_ERR}group_ids is too long (max {MAX_GROUP_IDS})")
    fields = _split(params.get("fields", ""))
    seen: set[int] = set()
    out: list[dict[str, Any]] = []
    for ref in refs:
        g = world.resolve_group(ref)
        # Unknown ids inside a list are dropped silently; only "nothing valid" is an error.
        if g is None or g.id in seen:
            continue
        seen.add(g.id)
        out.append(world.render_group(g, fields))
    if not out:
        raise ApiError(100, f"{PARAM_ERR}group_ids is undefined")
    if ctx.version >= GROUPS_OBJECT_SINCE:
        return {"groups": out, "profiles": []}
    return out


def utils_resolve_screen_name(world: World, params: dict[str, str], ctx: CallContext) -> Any:
    name = params.get("screen_name", "").strip()
    if not name:
        raise ApiError(100, f"{PARAM_ERR}screen_name is undefined")
    g = world.resolve_group(name) if not name.isdigit() else None
    if g is not None:
        return {"object_id": g.id, "type": g.type}
    low = name.lower()
    if low.startswith("id") and low[2:].isdigit() and world.is_user(int(low[2:])):
        return {"object_id": int(low[2:]), "type": "user"}
    # VK answers a miss with an empty array, not an object nor error 104 (VK_API_NOTES §3).
    return []


def wall_get(world: World, params: dict[str, str], ctx: CallContext) -> Any:
    owner_id = _int(params, "owner_id")
    if owner_id is None:
        domain = params.get("domain", "").strip()
        if domain:
            g = world.resolve_group(domain)
            if g is None:
                low = domain.lower()
                if low.startswith("id") and low[2:].isdigit():
                    owner_id = int(low[2:])
                else:
                    raise ApiError(100, f"{PARAM_ERR}domain is invalid")
            else:
                owner_id = -g.id
    offset = _offset(params)
    count = _count(params, 20)
    flt = params.get("filter", "all").strip() or "all"
    if flt not in ("all", "owner", "others", "postponed", "suggests", "archived", "donut"):
        raise ApiError(100, f"{PARAM_ERR}filter should be one of all, owner, others")
    extended = _flag(params, "extended")
    empty: dict[str, Any] = {"count": 0, "items": []}
    if extended:
        empty.update({"profiles": [], "groups": []})
    if owner_id is None:
        # Without owner_id VK shows the token owner's own wall; our token users have none.
        return empty
    try:
        g = _owner_group(world, owner_id)
    except _EmptyUserWall:
        return empty
    _group_wall_access(g)
    order = world.wall_order(g)
    if flt == "owner":
        order = [p for p in order if p.from_id == -g.id]
    elif flt == "others":
        order = [p for p in order if p.from_id != -g.id]
    elif flt != "all":
        # Postponed/suggested/archived/donut posts are visible to admins only.
        order = []
    page = order[offset : offset + count]
    items = [world.render_post(p, g) for p in page]
    resp: dict[str, Any] = {"count": len(order), "items": items}
    if extended:
        resp.update(_extended(world, _post_owners(g, page)))
    return resp


def _post_owners(g: _Group, posts: list[_Post]) -> set[int]:
    """Every owner id an extended answer about `posts` needs in `profiles` / `groups`."""
    owners: set[int] = {-g.id}
    for p in posts:
        owners.add(p.from_id)
        if p.signer_id:
            owners.add(p.signer_id)
        for ch in p.copy_history:
            owners.add(ch["owner_id"])
            owners.add(ch["from_id"])
    return owners


def wall_get_by_id(world: World, params: dict[str, str], ctx: CallContext) -> Any:
    refs = _split(params.get("posts", ""))
    if not refs:
        raise ApiError(100, f"{PARAM_ERR}posts is undefined")
    items: list[dict[str, Any]] = []
    owners: set[int] = set()
    for ref in refs:
        owner, sep, pid = ref.partition("_")
        try:
            owner_id, post_id = int(owner), int(pid)
        except ValueError:
            raise ApiError(100, f"{PARAM_ERR}posts is invalid") from None
        if not sep:
            raise ApiError(100, f"{PARAM_ERR}posts is invalid")
        # Posts the token cannot see (other walls, closed or gone communities, deleted or
        # unknown posts) are left out of `items` rather than failing the call.
        g = world.group_obj(-owner_id) if owner_id < 0 else None
        p = g.posts_by_id.get(post_id) if g is not None and g.readable else None
        if g is None or p is None or p.deleted:
            continue
        items.append(world.render_post(p, g))
        owners |= _post_owners(g, [p])
    resp: dict[str, Any] = {"items": items}
    if _flag(params, "extended"):
        resp.update(_extended(world, owners))
    return resp


def _find_post(world: World, g: _Group, post_id: int) -> _Post:
    p = g.posts_by_id.get(post_id)
    if p is None:
        raise ApiError(100, f"{PARAM_ERR}post_id is undefined")
    if p.deleted:
        raise ApiError(15, "Access denied: post was deleted")
    return p


def wall_get_comments(world: World, params: dict[str, str], ctx: CallContext) -> Any:
    owner_id = _int(params, "owner_id")
    post_id = _int(params, "post_id")
    if owner_id is None:
        raise ApiError(100, f"{PARAM_ERR}owner_id is undefined")
    if post_id is None or post_id <= 0:
        raise ApiError(100, f"{PARAM_ERR}post_id is undefined")
    try:
        g = _owner_group(world, owner_id)
    except _EmptyUserWall:
        raise ApiError(100, f"{PARAM_ERR}post_id is undefined") from None
    _group_wall_access(g)
    p = _find_post(world, g, post_id)
    if p.comments_closed:
        raise ApiError(212, "Access to post comments denied")
    need_likes = _flag(params, "need_likes")
    preview = _int(params, "preview_length", 90)  # schema: "By default, '90'"
    assert preview is not None
    preview = max(0, preview)
    offset = _offset(params)
    count = _count(params, 10)
    desc = params.get("sort", "asc").strip() == "desc"
    thread_items = _int(params, "thread_items_count", 0)
    assert thread_items is not None
    thread_items = max(0, min(MAX_THREAD_ITEMS, thread_items))
    comment_id = _int(params, "comment_id")
    start_id = _int(params, "start_comment_id")

    if comment_id:
        root = p.by_id.get(comment_id)
        if root is None or root.root is not None:
            raise ApiError(100, f"{PARAM_ERR}comment_id is undefined")
        level = world.visible_replies(p, root)
        if root.deleted and not level:
            raise ApiError(100, f"{PARAM_ERR}comment_id is undefined")
        total = len(level)
    else:
        level = world.visible_top(p)
        total = world.live_count(p)
    if desc:
        level = level[::-1]
    if start_id:
        # Start the page at the given comment (or the first one after it in this order).
        idx = next(
            (i for i, c in enumerate(level) if (c.id <= start_id if desc else c.id >= start_id)),
            len(level),
        )
        offset += idx
    page = level[offset : offset + count]
    if comment_id:
        items = [world.render_comment(c, p, need_likes, preview) for c in page]
    else:
        items = [world.render_top_comment(c, p, need_likes, preview, thread_items) for c in page]
    resp: dict[str, Any] = {
        "count": total,
        "items": items,
        "current_level_count": len(level),
        "can_post": True,
        "show_reply_button": True,
        "groups_can_post": True,
    }
    if _flag(params, "extended"):
        owners: set[int] = {-g.id}
        for it in items:
            owners.add(it["from_id"])
            for sub in it.get("thread", {}).get("items", ()):
                owners.add(sub["from_id"])
        owners.discard(0)
        resp.update(_extended(world, owners))
    return resp


Handler = Callable[[World, dict[str, str], CallContext], Any]


def users_get(world: World, params: dict[str, str], ctx: CallContext) -> Any:
    refs = _split(params.get("user_ids", ""))
    if len(refs) > users.MAX_USER_IDS:
        raise ApiError(100, f"{PARAM_ERR}user_ids is too long (max {users.MAX_USER_IDS})")
    ids = users.user_ids(refs)
    if refs and not ids:
        raise ApiError(113, "Invalid user id")
    fields = _split(params.get("fields", ""))
    return [
        users.render_user(uid, fields, world.user_deactivation(uid), world.user_is_private(uid))
        for uid in ids
    ]


METHODS: dict[str, Handler] = {
    "groups.getById": groups_get_by_id,
    "utils.resolveScreenName": utils_resolve_screen_name,
    "wall.get": wall_get,
    "wall.getById": wall_get_by_id,
    "wall.getComments": wall_get_comments,
    "users.get": users_get,
}


def call_method(world: World, name: str, params: dict[str, str], ctx: CallContext) -> Any:
    handler = METHODS.get(name)
    if handler is None:
        raise ApiError(3, "Unknown method passed")
    with world.lock:
        return handler(world, params, ctx)
