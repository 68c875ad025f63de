"""Deterministic synthetic VK world: communities, wall posts, comments and threads.

Everything is generated from `WorldSpec.seed`; `World.advance()` mutates the world with an RNG
derived from the seed and the advance counter, so two worlds built from the same spec and
advanced with the same arguments are identical.

Object shapes follow VK API 5.199 (`wall_wallpost_full`, `wall_wall_comment`,
`groups_group_full`); the renderers here are used both by the HTTP server and by the
ground-truth accessors, so "truth" is exactly what the API serves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vk_pipeline.emulator import texts

DAY = 86_400
GROUP_ID_BASE = 100_001
# 2025-01-01T00:00:00Z: a fixed clock keeps worlds reproducible across runs.
DEFAULT_NOW = 1_735_689_600

KINDS = ("open", "closed", "private", "banned", "deleted", "wall_off")
SPECIAL_KINDS = ("closed", "private", "banned", "deleted", "wall_off")

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


class _Comment:
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
        root: _Comment | None,
        reply_to: _Comment | None,
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


class _Post:
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
        self.top: list[_Comment] = []
        self.threads: dict[int, list[_Comment]] = {}
        self.by_id: dict[int, _Comment] = {}
        self.vis_top: list[_Comment] | None = None
        self.live_count: int | None = None

    def invalidate(self) -> None:
        self.vis_top = None
        self.live_count = None


class _Group:
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
        self.posts: list[_Post] = []
        self.posts_by_id: dict[int, _Post] = {}
        self.deleted_post_ids: set[int] = set()
        self.wall_order: list[_Post] | None = None

    @property
    def readable(self) -> bool:
        return self.kind == "open"


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder)."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    raw = [w * total / s for w in weights]
    out = [int(x) for x in raw]
    rest = total - sum(out)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[:rest]:
        out[i] += 1
    return out


def _stochastic_round(x: float, rng: random.Random) -> int:
    base = math.floor(x)
    return base + (1 if rng.random() < x - base else 0)


def _to_json_copy(value: Any) -> Any:
    # A JSON round trip is both a deep copy and a guarantee that truth has wire types.
    return json.loads(json.dumps(value, ensure_ascii=False))


class World:
    """A deterministic synthetic VK: see the module docstring."""

    def __init__(self, spec: WorldSpec | None = None) -> None:
        self.spec = spec or WorldSpec()
        self.lock = threading.RLock()
        self.now = self.spec.now
        self._advance_count = 0
        self._groups: dict[int, _Group] = {}
        self._by_name: dict[str, _Group] = {}
        self._photo_seq = 457_239_017
        self._video_seq = 456_239_100
        rng = random.Random(self.spec.seed)
        self._users = self._make_users(rng)
        self._user_set = frozenset(self._users)
        self._post_texts = [texts.make_text(rng, 1, 5) for _ in range(600)]
        self._comment_texts = [texts.make_text(rng, 1, 2) for _ in range(1500)]
        self._generate(rng)

    # ------------------------------------------------------------------ generation

    def _make_users(self, rng: random.Random) -> list[int]:
        n = max(200, min(20_000, self.spec.comments // 25))
        return rng.sample(range(1_000_000, 900_000_000), n)

    def _pick_user(self, rng: random.Random) -> int:
        # A few users write most comments, as on real walls.
        return self._users[int(len(self._users) * rng.random() ** 2)]

    def _generate(self, rng: random.Random) -> None:
        spec = self.spec
        kinds = ["open"] * spec.groups
        if spec.special_groups:
            kinds += list(SPECIAL_KINDS)
        used_names: set[str] = set()
        for i, kind in enumerate(kinds):
            gid = GROUP_ID_BASE + i
            g = _Group(gid, kind)
            self._fill_group_meta(g, rng, used_names)
            self._groups[gid] = g
            self._by_name[g.screen_name] = g

        open_groups = [g for g in self._groups.values() if g.kind == "open"]
        if open_groups:
            # The big community has an open wall, so wall.get filter=others has something.
            open_groups[0].type, open_groups[0].wall = "group", 1
        weights = [rng.lognormvariate(0.0, 1.2) for _ in open_groups]
        if len(open_groups) >= 3:
            weights[0] = max(weights) * 2  # one big community
            weights[-1] = 0.0  # and one with an empty wall
        counts = _apportion(spec.posts, weights)

        history = spec.history_days * DAY
        all_posts: list[_Post] = []
        for g, n in zip(open_groups, counts, strict=True):
            dates = sorted(rng.randint(self.now - history, self.now - 3600) for _ in range(n))
            for d in dates:
                p = _Post(g.id, d)
                self._fill_post(p, g, rng, history_start=self.now - history)
                g.posts.append(p)
                all_posts.append(p)

        # A few posts always have comments closed, however small the world.
        want_closed = min(3, len(all_posts) // 50) - sum(p.comments_closed for p in all_posts)
        for p in rng.sample(all_posts, max(0, want_closed)):
            p.comments_closed = True

        # Heavy-tailed comments per post: many posts without any, a few with thousands.
        cw = [
            0.0 if (p.comments_closed or rng.random() < 0.35) else rng.lognormvariate(0.0, 1.6)
            for p in all_posts
        ]
        hot = -1
        if all_posts and sum(cw) > 0:
            hot = max(range(len(cw)), key=cw.__getitem__)
            if spec.comments >= 1000:
                # Guarantee one post big enough for a >100-reply thread.
                need = 350 / spec.comments
                share = cw[hot] / sum(cw)
                if share < need:
                    others = sum(cw) - cw[hot]
                    cw[hot] = need * others / (1 - need)
        ccounts = _apportion(spec.comments, cw)

        by_group: dict[int, list[tuple[_Post, int]]] = {}
        for i, (p, c) in enumerate(zip(all_posts, ccounts, strict=True)):
            by_group.setdefault(p.gid, []).append((p, c if i != hot else -c))
        for g in open_groups:
            events: list[tuple[int, int, _Post | _Comment]] = []
            seq = 0
            for p, c in by_group.get(g.id, []):
                events.append((p.date, seq, p))
                seq += 1
                for cm in self._gen_comments(p, abs(c), rng, long_thread=c < 0):
                    events.append((cm.date, seq, cm))
                    seq += 1
            g.next_id = rng.randint(1, 40)
            self._assign_ids(g, events)
            self._pin(g, rng)

        self._add_reposts(open_groups, rng)
        if spec.hostile_texts:
            self._plant_hostile_texts(open_groups)
        for g in self._groups.values():
            g.wall_order = None

    def _plant_hostile_texts(self, groups: list[_Group]) -> None:
        rng = random.Random(f"{self.spec.seed}:hostile")
        posts = [p for g in groups for p in g.posts]
        comments = [c for p in posts for c in p.by_id.values()]
        for text in texts.HOSTILE:
            if posts:
                rng.choice(posts).text = text
            if comments:
                rng.choice(comments).text = text

    def _fill_group_meta(self, g: _Group, rng: random.Random, used: set[str]) -> None:
        title, slug, activity = rng.choice(texts.GROUP_TOPICS)
        city, city_slug = rng.choice(texts.CITIES)
        g.name = f"{title} {city}"
        if rng.random() < 0.3:
            g.name += " " + rng.choice(("🔥", "❤️", "📢", "✨", "🐾"))
        base = f"{slug}_{city_slug}"
        screen = base
        # VK keeps the default "club<ID>" address for communities that never chose a name.
        if rng.random() < 0.3 or screen in used:
            screen = f"club{g.id}"
        used.add(screen)
        g.screen_name = screen
        g.type = rng.choice(("page", "page", "group", "group", "event"))
        g.activity = activity
        g.description = texts.make_text(rng, 1, 3)
        g.status = rng.choice(texts.STATUSES)
        g.verified = 1 if rng.random() < 0.1 else 0
        g.site = f"https://{base.replace('_', '-')}.example.ru" if rng.random() < 0.5 else ""
        g.members_count = int(rng.lognormvariate(8.5, 1.8))
        g.wall = rng.choice((1, 2, 3)) if g.type != "page" else 1
        g.counters = {
            "photos": int(rng.lognormvariate(5, 1.5)),
            "albums": rng.randint(0, 30),
            "topics": rng.randint(0, 20),
            "videos": int(rng.lognormvariate(3, 1.5)),
            "articles": rng.randint(0, 10),
            "docs": rng.randint(0, 15),
        }
        if g.kind == "closed":
            g.is_closed, g.type = 1, "group"
        elif g.kind == "private":
            g.is_closed, g.type = 2, "group"
        elif g.kind == "banned":
            g.deactivated = "banned"
        elif g.kind == "deleted":
            g.deactivated = "deleted"
        elif g.kind == "wall_off":
            g.wall, g.type = 0, "group"

    def _fill_post(self, p: _Post, g: _Group, rng: random.Random, history_start: int) -> None:
        if g.wall == 1 and g.type != "page" and rng.random() < 0.15:
            p.from_id = self._pick_user(rng)
        elif rng.random() < 0.08:
            p.signer_id = self._pick_user(rng)
        r = rng.random()
        if r < 0.4:
            p.attachments = [
                self._photo(-g.id, p.date, rng) for _ in range(1 + int(rng.random() ** 3 * 4))
            ]
        elif r < 0.5:
            p.attachments = [self._link(rng)]
        elif r < 0.58:
            p.attachments = [self._video(-g.id, p.date, rng)]
        p.text = "" if (p.attachments and rng.random() < 0.2) else rng.choice(self._post_texts)
        p.likes = int(rng.lognormvariate(2.5, 1.5))
        p.wall_reposts = int(p.likes * rng.random() * 0.2)
        p.mail_reposts = int(p.likes * rng.random() * 0.1)
        # VK has no `views` for posts older than its view counter; the oldest 5 % model that.
        oldest = history_start + (self.now - history_start) // 20
        p.views = None if p.date < oldest else p.likes * rng.randint(20, 60) + rng.randint(0, 500)
        p.marked_as_ads = 1 if rng.random() < 0.01 else 0
        if rng.random() < 0.05:
            p.edited = min(self.now, p.date + rng.randint(60, 5 * DAY))
        p.comments_closed = rng.random() < 0.012
        p.source = rng.choice(
            (
                {"type": "vk"},
                {"type": "vk"},
                {"type": "vk", "platform": "android"},
                {"type": "api"},
                {"type": "rss"},
            )
        )

    def _photo(self, owner_id: int, date: int, rng: random.Random) -> dict[str, Any]:
        self._photo_seq += rng.randint(1, 30)
        pid = self._photo_seq
        key = hashlib.md5(f"{self.spec.seed}p{pid}".encode()).hexdigest()[:18]
        w, h = rng.choice(((1280, 960), (1080, 1350), (1920, 1080), (807, 1080)))
        sizes = []
        for t, scale in (("s", 75), ("m", 130), ("x", 604), ("y", 807), ("z", 1280), ("w", 2560)):
            f = min(1.0, scale / max(w, h))
            sizes.append(
                {
                    "height": max(1, int(h * f)),
                    "type": t,
                    "width": max(1, int(w * f)),
                    "url": f"https://sun9-{pid % 80}.userapi.com/impg/{key}/{t}.jpg?size={w}x{h}",
                }
            )
        return {
            "type": "photo",
            "photo": {
                "album_id": -7,  # VK's pseudo-album for wall photos
                "date": date,
                "id": pid,
                "owner_id": owner_id,
                "access_key": key,
                "has_tags": False,
                "sizes": sizes,
                "text": "",
            },
        }

    def _link(self, rng: random.Random) -> dict[str, Any]:
        n = rng.randint(1, 99_999)
        host = rng.choice(("lenta.example.ru", "habr.example.com", "rbc.example.ru"))
        return {
            "type": "link",
            "link": {
                "url": f"https://{host}/news/{n}",
                "title": texts.SENTENCES[n % len(texts.SENTENCES)],
                "caption": host,
                "description": "",
                "is_favorite": False,
            },
        }

    def _video(self, owner_id: int, date: int, rng: random.Random) -> dict[str, Any]:
        self._video_seq += rng.randint(1, 20)
        vid = self._video_seq
        key = hashlib.md5(f"{self.spec.seed}v{vid}".encode()).hexdigest()[:18]
        return {
            "type": "video",
            "video": {
                "access_key": key,
                "can_add": 1,
                "comments": rng.randint(0, 50),
                "date": date,
                "description": "",
                "duration": rng.randint(5, 3600),
                "image": [
                    {
                        "url": f"https://sun9-{vid % 80}.userapi.com/video/{key}/{w}.jpg",
                        "width": w,
                        "height": w * 9 // 16,
                        "with_padding": 1,
                    }
                    for w in (130, 320, 800, 1280)
                ],
                "id": vid,
                "owner_id": owner_id,
                "title": rng.choice(texts.SENTENCES)[:60],
                "type": "video",
                "views": rng.randint(10, 100_000),
            },
        }

    def _comment_text(self, rng: random.Random, reply_to: _Comment | None) -> str:
        text = rng.choice(self._comment_texts)
        if reply_to is not None and reply_to.from_id > 0 and rng.random() < 0.5:
            # VK clients prefix replies with a mention of the replied user.
            first, _ = texts.person_name(reply_to.from_id)
            text = f"[id{reply_to.from_id}|{first}], {text}"
        return text

    def _new_comment(
        self,
        p: _Post,
        date: int,
        rng: random.Random,
        root: _Comment | None,
        reply_to: _Comment | None,
    ) -> _Comment:
        from_id = -p.gid if rng.random() < 0.03 else self._pick_user(rng)
        att = None
        if rng.random() < 0.03:
            att = [self._photo(from_id, date, rng)]
        likes = int(rng.paretovariate(1.5)) - 1
        return _Comment(
            from_id, date, self._comment_text(rng, reply_to), root, reply_to, likes, att
        )

    def _gen_thread(
        self, p: _Post, root: _Comment, k: int, rng: random.Random, upto: int, start: int = 0
    ) -> list[_Comment]:
        lo = max(root.date, start)
        span = max(1, upto - lo)
        dates = sorted(min(upto, lo + max(1, int(span * rng.random() ** 3))) for _ in range(k))
        out: list[_Comment] = []
        prev = [c for c in p.threads.get(root.id, []) if not c.deleted] if root.id else []
        for d in dates:
            target = root
            pool = out or prev
            if pool and rng.random() < 0.3:
                target = rng.choice(pool)
            out.append(self._new_comment(p, d, rng, root, target))
        return out

    def _gen_comments(
        self, p: _Post, n: int, rng: random.Random, long_thread: bool = False
    ) -> list[_Comment]:
        if n <= 0:
            return []
        n_replies = round(n * 0.4) if n >= 3 else 0
        n_top = n - n_replies
        span = max(1, self.now - p.date)
        dates = sorted(p.date + max(1, int(span * rng.random() ** 4)) for _ in range(n_top))
        tops = [self._new_comment(p, min(self.now, d), rng, None, None) for d in dates]
        out: list[_Comment] = list(tops)
        per_root = [0] * n_top
        if n_replies:
            if long_thread and n_replies >= 120:
                per_root[0] = 120
                rest = n_replies - 120
            else:
                rest = n_replies
            w = [rng.lognormvariate(0.0, 1.5) for _ in range(n_top)]
            for i in rng.choices(range(n_top), weights=w, k=rest):
                per_root[i] += 1
        for root, k in zip(tops, per_root, strict=True):
            if k:
                out.extend(self._gen_thread(p, root, k, rng, self.now))
        # Generation-time deletions: roots with replies become stubs, other comments vanish.
        for i, root in enumerate(tops):
            if rng.random() < (0.02 if per_root[i] else 0.01):
                root.deleted = True
        for c in out[n_top:]:
            if rng.random() < 0.01:
                c.deleted = True
        return out

    def _post_hash(self, gid: int, post_id: int) -> str:
        digest = hashlib.sha1(f"{self.spec.seed}:{gid}:{post_id}".encode()).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:27]

    def _assign_ids(self, g: _Group, events: list[tuple[int, int, _Post | _Comment]]) -> None:
        """Number posts and comments of one wall chronologically and attach comments.

        Posts and comments share one id counter per wall on VK, so post ids have gaps. The
        event list is built post-first (a post, then its comments), which `seq` preserves.
        """
        by_seq = list(events)
        events.sort(key=lambda e: (e[0], e[1]))
        for _, _, obj in events:
            obj.id = g.next_id
            g.next_id += 1
        current: _Post | None = None
        touched: list[_Post] = []
        for _, _, obj in by_seq:
            if isinstance(obj, _Post):
                current = obj
                obj.hash = self._post_hash(g.id, obj.id)
                g.posts_by_id[obj.id] = obj
                touched.append(obj)
            else:
                assert current is not None
                self._attach(current, obj)
        for p in touched:
            p.top.sort(key=lambda c: c.id)
            for thread in p.threads.values():
                thread.sort(key=lambda c: c.id)
        g.posts.sort(key=lambda p: p.id)

    def _attach(self, p: _Post, c: _Comment) -> None:
        p.by_id[c.id] = c
        if c.root is None:
            p.top.append(c)
        else:
            p.threads.setdefault(c.root.id, []).append(c)
        p.invalidate()

    def _pin(self, g: _Group, rng: random.Random) -> None:
        live = [p for p in g.posts if not p.deleted]
        if len(live) >= 5 and (rng.random() < 0.6 or g.id == GROUP_ID_BASE):
            # Pin an old post so that "pinned first regardless of date" matters.
            g.pinned = live[rng.randrange(len(live) // 2)].id

    def _add_reposts(self, groups: list[_Group], rng: random.Random) -> None:
        if len(groups) < 2:
            return
        for g in groups:
            others = [o for o in groups if o.id != g.id and o.posts]
            if not others:
                continue
            for p in g.posts:
                if p.attachments or rng.random() >= 0.05:
                    continue
                src_g = rng.choice(others)
                older = [q for q in src_g.posts if q.date < p.date and not q.copy_history]
                if not older:
                    continue
                q = rng.choice(older)
                p.copy_history = [self._copy_item(q)]
                if rng.random() < 0.6:
                    p.text = ""

    def _copy_item(self, q: _Post) -> dict[str, Any]:
        # copy_history entries carry the original post without counters (as VK serves them).
        d: dict[str, Any] = {
            "type": "post",
            "attachments": q.attachments,
            "date": q.date,
            "from_id": q.from_id,
            "id": q.id,
            "owner_id": -q.gid,
            "post_source": q.source,
            "post_type": "post",
            "text": q.text,
        }
        if q.signer_id:
            d["signer_id"] = q.signer_id
        return _to_json_copy(d)

    # ------------------------------------------------------------------ lookups

    def group_obj(self, gid: int) -> _Group | None:
        return self._groups.get(gid)

    def resolve_group(self, ref: str) -> _Group | None:
        """A group by numeric id, screen name or the default `club<ID>`-style address."""
        ref = ref.strip()
        if ref.isdigit():
            return self._groups.get(int(ref))
        low = ref.lower()
        g = self._by_name.get(low)
        if g is not None:
            return g
        for prefix in ("club", "public", "event"):
            rest = low[len(prefix) :]
            if low.startswith(prefix) and rest.isdigit():
                return self._groups.get(int(rest))
        return None

    def is_user(self, uid: int) -> bool:
        return uid in self._user_set

    @staticmethod
    def user_is_private(uid: int) -> bool:
        return uid % 5 == 0

    def wall_order(self, g: _Group) -> list[_Post]:
        if g.wall_order is None:
            live = [p for p in g.posts if not p.deleted]
            pinned = [p for p in live if p.id == g.pinned]
            rest = sorted((p for p in live if p.id != g.pinned), key=lambda p: p.id, reverse=True)
            g.wall_order = pinned + rest
        return g.wall_order

    def live_count(self, p: _Post) -> int:
        """What VK's `comments.count` shows: every visible comment and reply, including the stub
        a deleted comment leaves while it still has live replies. So deleting such a comment, or
        editing any, leaves the count as it was (the silent changes a crawler must re-verify)."""
        if p.live_count is None:
            live = sum(1 for c in p.by_id.values() if not c.deleted)
            p.live_count = live + sum(1 for c in self.visible_top(p) if c.deleted)
        return p.live_count

    def visible_top(self, p: _Post) -> list[_Comment]:
        if p.vis_top is None:
            p.vis_top = [
                c
                for c in p.top
                if not c.deleted or any(not r.deleted for r in p.threads.get(c.id, ()))
            ]
        return p.vis_top

    @staticmethod
    def visible_replies(p: _Post, root: _Comment) -> list[_Comment]:
        return [r for r in p.threads.get(root.id, ()) if not r.deleted]

    # ------------------------------------------------------------------ rendering

    def render_group(self, g: _Group, fields: Iterable[str]) -> dict[str, Any]:
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

    def render_post(self, p: _Post, g: _Group) -> dict[str, Any]:
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
                "count": self.live_count(p),
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

    @staticmethod
    def thread_info(
        items: list[dict[str, Any]], count: int, can_post: bool = True
    ) -> dict[str, Any]:
        return {
            "count": count,
            "items": items,
            "can_post": can_post,
            "show_reply_button": can_post,
            "groups_can_post": can_post,
        }

    def render_comment(
        self,
        c: _Comment,
        p: _Post,
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
        self,
        c: _Comment,
        p: _Post,
        need_likes: bool,
        preview_length: int,
        thread_items: int,
    ) -> dict[str, Any]:
        d = self.render_comment(c, p, need_likes, preview_length)
        replies = self.visible_replies(p, c)
        items = [
            self.render_comment(r, p, need_likes, preview_length) for r in replies[:thread_items]
        ]
        d["thread"] = self.thread_info(items, len(replies))
        return d

    def profile(self, uid: int) -> dict[str, Any]:
        first, last = texts.person_name(uid)
        private = self.user_is_private(uid)
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

    # ------------------------------------------------------------------ ground truth

    def group_ids(self) -> list[int]:
        with self.lock:
            return sorted(self._groups)

    def group(self, gid: int) -> dict[str, Any]:
        with self.lock:
            g = self._groups[gid]
            return _to_json_copy(self.render_group(g, GROUP_FIELDS))

    def group_kind(self, gid: int) -> str:
        with self.lock:
            return self._groups[gid].kind

    def posts(self, gid: int) -> list[dict[str, Any]]:
        with self.lock:
            g = self._groups[gid]
            if not g.readable:
                return []
            return _to_json_copy([self.render_post(p, g) for p in self.wall_order(g)])

    def comments(
        self, gid: int, post_id: int, need_likes: bool = True, preview_length: int = 0
    ) -> list[dict[str, Any]]:
        """Every visible comment and reply of a post ordered by id (= chronologically).

        Items look like wall.getComments items with the given `need_likes`/`preview_length`
        and thread_items_count=0: top-level ones carry `thread` with `items: []`.
        """
        with self.lock:
            g = self._groups[gid]
            p = g.posts_by_id.get(post_id)
            if not g.readable or p is None or p.deleted or p.comments_closed:
                return []
            out: list[tuple[int, dict[str, Any]]] = []
            for c in self.visible_top(p):
                out.append((c.id, self.render_top_comment(c, p, need_likes, preview_length, 0)))
                for r in self.visible_replies(p, c):
                    out.append((r.id, self.render_comment(r, p, need_likes, preview_length)))
            out.sort(key=lambda t: t[0])
            return _to_json_copy([d for _, d in out])

    def post_ids_with_comments_closed(self, gid: int) -> set[int]:
        with self.lock:
            g = self._groups[gid]
            if not g.readable:
                return set()
            return {p.id for p in g.posts if p.comments_closed and not p.deleted}

    def stats(self) -> dict[str, int]:
        """Sizes of the visible world (what a perfect crawler would collect)."""
        with self.lock:
            posts = comments = stubs = 0
            for g in self._groups.values():
                if not g.readable:
                    continue
                for p in g.posts:
                    if p.deleted:
                        continue
                    posts += 1
                    if p.comments_closed:
                        continue
                    n_stubs = sum(1 for c in self.visible_top(p) if c.deleted)
                    comments += self.live_count(p) - n_stubs
                    stubs += n_stubs
            return {
                "groups": len(self._groups),
                "posts": posts,
                "comments": comments,
                "stubs": stubs,
            }

    # ------------------------------------------------------------------ evolution

    def advance(
        self,
        days: float = 1.0,
        new_posts: float = 0.02,
        commented_posts: float = 0.01,
        edits: float = 0.005,
        deletions: float = 0.005,
        silent: bool = False,
    ) -> dict[str, Any]:
        """Move the clock forward and mutate the world deterministically.

        Fractions are relative to the current number of live posts (posts, comment targets,
        post edits and post deletions) or live comments (comment edits and deletions).
        `silent` keeps to the changes VK's `comments.count` does not show: comment edits and
        deletions of comments with live replies (they stay as stubs); no post is edited or
        deleted and no comment vanishes.
        """
        with self.lock:
            return self._advance(days, new_posts, commented_posts, edits, deletions, silent)

    def _advance(
        self,
        days: float,
        new_posts: float,
        commented: float,
        edits: float,
        deletions: float,
        silent: bool = False,
    ) -> dict[str, Any]:
        self._advance_count += 1
        rng = random.Random(f"{self.spec.seed}:advance:{self._advance_count}")
        start = self.now
        end = start + max(1, int(days * DAY))
        groups = [g for g in self._groups.values() if g.readable]
        live_posts = [p for g in groups for p in g.posts if not p.deleted]
        affected: set[tuple[int, int]] = set()
        summary: dict[str, Any] = {
            "days": days,
            "now": end,
            "new_posts": 0,
            "new_comments": 0,
            "new_replies": 0,
            "edited_posts": 0,
            "edited_comments": 0,
            "deleted_posts": 0,
            "deleted_comments": 0,
            "stubbed_comments": 0,
        }
        new_keys: list[tuple[int, int]] = []
        deleted_keys: list[tuple[int, int]] = []

        # 1. Deletions of a few recent posts (never the pinned one).
        n_del_posts = 0 if silent else _stochastic_round(len(live_posts) * deletions * 0.2, rng)
        recent = sorted(live_posts, key=lambda p: p.date)[-max(1, len(live_posts) // 10) :]
        recent = [p for p in recent if p.id != self._groups[p.gid].pinned]
        for p in rng.sample(recent, min(n_del_posts, len(recent))):
            p.deleted = True
            g = self._groups[p.gid]
            g.deleted_post_ids.add(p.id)
            g.wall_order = None
            deleted_keys.append((p.gid, p.id))
            affected.add((p.gid, p.id))
        live_posts = [p for p in live_posts if not p.deleted]

        # 2. New posts, proportional to the size of each wall.
        events: dict[int, list[tuple[int, int, _Post | _Comment]]] = {g.id: [] for g in groups}
        seq = 0
        n_new = _stochastic_round(len(live_posts) * new_posts, rng)
        weights = [len(g.posts) + 1.0 for g in groups]
        fresh: list[_Post] = []
        for g in rng.choices(groups, weights=weights, k=n_new) if groups else []:
            p = _Post(g.id, rng.randint(start + 1, end))
            self._fill_post(p, g, rng, history_start=start - self.spec.history_days * DAY)
            p.edited = 0
            events[g.id].append((p.date, seq, p))
            seq += 1
            fresh.append(p)

        # 3. New comments: on a sample of existing posts (old ones too) and on most new posts.
        pool = [p for p in live_posts if not p.comments_closed]
        targets = rng.sample(pool, min(len(pool), _stochastic_round(len(pool) * commented, rng)))
        targets += [p for p in fresh if not p.comments_closed and rng.random() < 0.5]
        pending: dict[int, list[_Comment]] = {}
        for p in targets:
            m = min(200, int(rng.paretovariate(1.3)))
            lo = max(start, p.date)
            new: list[_Comment] = []
            roots = [c for c in self.visible_top(p) if not c.deleted] if p.id else []
            for _ in range(m):
                if roots and rng.random() < 0.4:
                    root = rng.choice(roots)
                    thread = self._gen_thread(p, root, 1, rng, end, start=lo)
                    new.extend(thread)
                    summary["new_replies"] += 1
                else:
                    d = rng.randint(lo + 1, end) if end > lo + 1 else end
                    c = self._new_comment(p, d, rng, None, None)
                    new.append(c)
                    roots.append(c)
            pending[id(p)] = new
            summary["new_comments"] += len(new)
            for c in new:
                events[p.gid].append((c.date, seq, c))
                seq += 1

        for g in groups:
            evs = events[g.id]
            if not evs:
                continue
            # Comments keep a reference to their post through `pending`.
            owner: dict[int, _Post] = {}
            for p in targets:
                if p.gid == g.id:
                    for c in pending.get(id(p), []):
                        owner[id(c)] = p
            evs.sort(key=lambda e: (e[0], e[1]))
            for _, _, obj in evs:
                obj.id = g.next_id
                g.next_id += 1
                if isinstance(obj, _Post):
                    obj.hash = self._post_hash(g.id, obj.id)
                    g.posts.append(obj)
                    g.posts_by_id[obj.id] = obj
                    new_keys.append((g.id, obj.id))
                    affected.add((g.id, obj.id))
                else:
                    p = owner[id(obj)]
                    self._attach(p, obj)
                    affected.add((g.id, p.id))
            g.wall_order = None
        summary["new_posts"] = len(fresh)
        live_posts = [p for g in groups for p in g.posts if not p.deleted]

        # 4. Edits of posts and comments.
        n_post_edits = 0 if silent else _stochastic_round(len(live_posts) * edits, rng)
        for p in rng.sample(live_posts, min(len(live_posts), n_post_edits)):
            p.edited = rng.randint(max(start, p.date) + 1, end) if end > max(start, p.date) else end
            p.text = (p.text + " UPD: " + rng.choice(texts.SENTENCES)).strip()
            affected.add((p.gid, p.id))
            summary["edited_posts"] += 1
        live_comments = [
            (p, c)
            for p in live_posts
            if not p.comments_closed
            for c in p.by_id.values()
            if not c.deleted
        ]
        n_edit = _stochastic_round(len(live_comments) * edits, rng)
        for p, c in rng.sample(live_comments, min(n_edit, len(live_comments))):
            c.edited = min(end, max(c.date + 1, rng.randint(start + 1, end)))
            c.text = c.text + " (ред.)"
            affected.add((p.gid, p.id))
            summary["edited_comments"] += 1

        # 5. Comment deletions: half among roots with live replies (they turn into stubs),
        # half among any comment (most vanish).
        n_del = _stochastic_round(len(live_comments) * deletions, rng)
        roots_with_replies = [
            (p, c) for p, c in live_comments if c.root is None and self.visible_replies(p, c)
        ]
        stubs = n_del if silent else n_del // 2
        chosen = rng.sample(roots_with_replies, min(len(roots_with_replies), stubs))
        if not silent:
            chosen += rng.sample(live_comments, min(len(live_comments), n_del - len(chosen)))
        for p, c in chosen:
            if c.deleted:
                continue
            c.deleted = True
            p.invalidate()
            summary["deleted_comments"] += 1
            if c.root is None and self.visible_replies(p, c):
                summary["stubbed_comments"] += 1
            affected.add((p.gid, p.id))
        for p, _ in chosen:
            p.invalidate()

        self.now = end
        summary["deleted_posts"] = len(deleted_keys)
        summary["new_post_keys"] = sorted(new_keys)
        summary["deleted_post_keys"] = sorted(deleted_keys)
        summary["affected"] = sorted(affected)
        return summary
