"""Generation: a world's communities, walls, comments and threads, drawn from one seeded RNG.

`Generator` keeps what generation draws once (the users, pools of texts, attachment ids) so
that `World.advance` draws new posts and comments from the same pools and counters. Every
draw happens in a fixed order, so a spec always gives the same world.
"""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any

from vk_pipeline.emulator import texts
from vk_pipeline.emulator.state import (
    DAY,
    GROUP_ID_BASE,
    SPECIAL_KINDS,
    Comment,
    Group,
    Post,
    WorldSpec,
    to_json_copy,
)


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


class Generator:
    """Makes the groups, posts and comments of one world (see the module docstring)."""

    def __init__(self, spec: WorldSpec, rng: random.Random) -> None:
        self.spec = spec
        self._photo_seq = 457_239_017
        self._video_seq = 456_239_100
        self.users = self._make_users(rng)
        self.user_set = frozenset(self.users)
        self._post_texts = [texts.make_text(rng, 1, 5) for _ in range(600)]
        self._comment_texts = [texts.make_text(rng, 1, 2) for _ in range(1500)]

    def _make_users(self, rng: random.Random) -> list[int]:
        n = max(200, min(20_000, self.spec.comments // 25))
        return rng.sample(range(1_000_000, 900_000_000), n)

    def _pick_user(self, rng: random.Random) -> int:
        # A few users write most comments, as on real walls.
        return self.users[int(len(self.users) * rng.random() ** 2)]

    def generate(self, rng: random.Random) -> dict[int, Group]:
        """Every community of the spec, by id, with walls and comments as of `spec.now`."""
        spec = self.spec
        now = spec.now
        groups: dict[int, Group] = {}
        kinds = ["open"] * spec.groups
        if spec.special_groups:
            kinds += list(SPECIAL_KINDS)
        used_names: set[str] = set()
        for i, kind in enumerate(kinds):
            gid = GROUP_ID_BASE + i
            g = Group(gid, kind)
            self._fill_group_meta(g, rng, used_names)
            groups[gid] = g

        open_groups = [g for g in groups.values() if g.kind == "open"]
        if open_groups:
            # The big community has an open wall, so wall.get filter=others has something.
            open_groups[0].type, open_groups[0].wall = "group", 1
        weights = [rng.lognormvariate(0.0, 1.2) for _ in open_groups]
        if len(open_groups) >= 3:
            weights[0] = max(weights) * 2  # one big community
            weights[-1] = 0.0  # and one with an empty wall
        counts = _apportion(spec.posts, weights)

        history = spec.history_days * DAY
        all_posts: list[Post] = []
        for g, n in zip(open_groups, counts, strict=True):
            dates = sorted(rng.randint(now - history, now - 3600) for _ in range(n))
            for d in dates:
                p = Post(g.id, d)
                self.fill_post(p, g, rng, history_start=now - history, now=now)
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

        by_group: dict[int, list[tuple[Post, int]]] = {}
        for i, (p, c) in enumerate(zip(all_posts, ccounts, strict=True)):
            by_group.setdefault(p.gid, []).append((p, c if i != hot else -c))
        for g in open_groups:
            events: list[tuple[int, int, Post | Comment]] = []
            seq = 0
            for p, c in by_group.get(g.id, []):
                events.append((p.date, seq, p))
                seq += 1
                for cm in self._gen_comments(p, abs(c), rng, now, long_thread=c < 0):
                    events.append((cm.date, seq, cm))
                    seq += 1
            g.next_id = rng.randint(1, 40)
            self._assign_ids(g, events)
            self._pin(g, rng)

        self._add_reposts(open_groups, rng)
        if spec.hostile_texts:
            self._plant_hostile_texts(open_groups)
        for g in groups.values():
            g.wall_order = None
        return groups

    def _plant_hostile_texts(self, groups: list[Group]) -> None:
        rng = random.Random(f"{self.spec.seed}:hostile")
        posts = [p for g in groups for p in g.posts]
        comments = [c for p in posts for c in p.by_id.values()]
        for text in texts.HOSTILE:
            if posts:
                rng.choice(posts).text = text
            if comments:
                rng.choice(comments).text = text

    def _fill_group_meta(self, g: Group, rng: random.Random, used: set[str]) -> None:
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

    def fill_post(
        self, p: Post, g: Group, rng: random.Random, history_start: int, now: int
    ) -> None:
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
        oldest = history_start + (now - history_start) // 20
        p.views = None if p.date < oldest else p.likes * rng.randint(20, 60) + rng.randint(0, 500)
        p.marked_as_ads = 1 if rng.random() < 0.01 else 0
        if rng.random() < 0.05:
            p.edited = min(now, p.date + rng.randint(60, 5 * DAY))
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

    def _comment_text(self, rng: random.Random, reply_to: Comment | None) -> str:
        text = rng.choice(self._comment_texts)
        if reply_to is not None and reply_to.from_id > 0 and rng.random() < 0.5:
            # VK clients prefix replies with a mention of the replied user.
            first, _ = texts.person_name(reply_to.from_id)
            text = f"[id{reply_to.from_id}|{first}], {text}"
        return text

    def new_comment(
        self,
        p: Post,
        date: int,
        rng: random.Random,
        root: Comment | None,
        reply_to: Comment | None,
    ) -> Comment:
        from_id = -p.gid if rng.random() < 0.03 else self._pick_user(rng)
        att = None
        if rng.random() < 0.03:
            att = [self._photo(from_id, date, rng)]
        likes = int(rng.paretovariate(1.5)) - 1
        return Comment(from_id, date, self._comment_text(rng, reply_to), root, reply_to, likes, att)

    def gen_thread(
        self, p: Post, root: Comment, k: int, rng: random.Random, upto: int, start: int = 0
    ) -> list[Comment]:
        lo = max(root.date, start)
        span = max(1, upto - lo)
        dates = sorted(min(upto, lo + max(1, int(span * rng.random() ** 3))) for _ in range(k))
        out: list[Comment] = []
        prev = [c for c in p.threads.get(root.id, []) if not c.deleted] if root.id else []
        for d in dates:
            target = root
            pool = out or prev
            if pool and rng.random() < 0.3:
                target = rng.choice(pool)
            out.append(self.new_comment(p, d, rng, root, target))
        return out

    def _gen_comments(
        self, p: Post, n: int, rng: random.Random, now: int, long_thread: bool = False
    ) -> list[Comment]:
        if n <= 0:
            return []
        n_replies = round(n * 0.4) if n >= 3 else 0
        n_top = n - n_replies
        span = max(1, now - p.date)
        dates = sorted(p.date + max(1, int(span * rng.random() ** 4)) for _ in range(n_top))
        tops = [self.new_comment(p, min(now, d), rng, None, None) for d in dates]
        out: list[Comment] = list(tops)
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
                out.extend(self.gen_thread(p, root, k, rng, now))
        # Generation-time deletions: roots with replies become stubs, other comments vanish.
        for i, root in enumerate(tops):
            if rng.random() < (0.02 if per_root[i] else 0.01):
                root.deleted = True
        for c in out[n_top:]:
            if rng.random() < 0.01:
                c.deleted = True
        return out

    def post_hash(self, gid: int, post_id: int) -> str:
        digest = hashlib.sha1(f"{self.spec.seed}:{gid}:{post_id}".encode()).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:27]

    def _assign_ids(self, g: Group, events: list[tuple[int, int, Post | Comment]]) -> None:
        """Number posts and comments of one wall chronologically and attach comments.

        Posts and comments share one id counter per wall on VK, so post ids have gaps. The
        event list is built post-first (a post, then its comments), which `seq` preserves.
        """
        by_seq = list(events)
        events.sort(key=lambda e: (e[0], e[1]))
        for _, _, obj in events:
            obj.id = g.next_id
            g.next_id += 1
        current: Post | None = None
        touched: list[Post] = []
        for _, _, obj in by_seq:
            if isinstance(obj, Post):
                current = obj
                obj.hash = self.post_hash(g.id, obj.id)
                g.posts_by_id[obj.id] = obj
                touched.append(obj)
            else:
                assert current is not None
                current.attach(obj)
        for p in touched:
            p.top.sort(key=lambda c: c.id)
            for thread in p.threads.values():
                thread.sort(key=lambda c: c.id)
        g.posts.sort(key=lambda p: p.id)

    def _pin(self, g: Group, rng: random.Random) -> None:
        live = [p for p in g.posts if not p.deleted]
        if len(live) >= 5 and (rng.random() < 0.6 or g.id == GROUP_ID_BASE):
            # Pin an old post so that "pinned first regardless of date" matters.
            g.pinned = live[rng.randrange(len(live) // 2)].id

    def _add_reposts(self, groups: list[Group], rng: random.Random) -> None:
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

    def _copy_item(self, q: Post) -> dict[str, Any]:
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
        return to_json_copy(d)
