"""Day-by-day changes: what `World.advance` does to a world as its clock moves on.

New posts and comments (drawn by the world's `Generator`, from its pools and counters), edits,
and deletions, including the silent ones VK's `comments.count` does not show. The RNG is the
caller's (seeded from the spec and the advance counter), so the same advances give the same
world.
"""

from __future__ import annotations

import math
import random
from typing import Any

from vk_pipeline.emulator import texts
from vk_pipeline.emulator.generate import Generator
from vk_pipeline.emulator.state import DAY, Comment, Group, Post, visible_replies, visible_top


def stochastic_round(x: float, rng: random.Random) -> int:
    base = math.floor(x)
    return base + (1 if rng.random() < x - base else 0)


def change(
    kind: str, action: str, gid: int, oid: int, post_id: int | None, before: str, at: int
) -> dict[str, Any]:
    """One entry of the world's change log: what changed and what it said before."""
    return {
        "object": kind,
        "kind": action,
        "owner_id": -gid,
        "id": oid,
        "post_id": post_id,
        "text_before": before,
        "at": at,
    }


def visible_comments(p: Post) -> list[Comment]:
    """The comments and replies a reader of the post sees (stubs included)."""
    out: list[Comment] = []
    for c in visible_top(p):
        out.append(c)
        out.extend(visible_replies(p, c))
    return out


def advance(
    world: dict[int, Group],
    gen: Generator,
    rng: random.Random,
    start: int,
    days: float,
    new_posts: float,
    commented: float,
    edits: float,
    deletions: float,
    silent: bool = False,
    log: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Change the groups of `world` (by id) from time `start` over `days`; see `World.advance`.

    Returns the summary `World.advance` returns, whose "now" is the new time of the world.
    Every edit, deletion (a post's visible comments go with it) is appended to `log`.
    """
    record = log.append if log is not None else (lambda _entry: None)
    end = start + max(1, int(days * DAY))
    groups = [g for g in world.values() if g.readable]
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
    n_del_posts = 0 if silent else stochastic_round(len(live_posts) * deletions * 0.2, rng)
    recent = sorted(live_posts, key=lambda p: p.date)[-max(1, len(live_posts) // 10) :]
    recent = [p for p in recent if p.id != world[p.gid].pinned]
    for p in rng.sample(recent, min(n_del_posts, len(recent))):
        p.deleted = True
        g = world[p.gid]
        g.deleted_post_ids.add(p.id)
        g.wall_order = None
        deleted_keys.append((p.gid, p.id))
        affected.add((p.gid, p.id))
        record(change("post", "deleted", p.gid, p.id, None, p.text, end))
        for c in visible_comments(p):
            if not c.deleted:
                record(change("comment", "deleted", p.gid, c.id, p.id, c.text, end))
    live_posts = [p for p in live_posts if not p.deleted]

    # 2. New posts, proportional to the size of each wall.
    events: dict[int, list[tuple[int, int, Post | Comment]]] = {g.id: [] for g in groups}
    seq = 0
    n_new = stochastic_round(len(live_posts) * new_posts, rng)
    weights = [len(g.posts) + 1.0 for g in groups]
    fresh: list[Post] = []
    for g in rng.choices(groups, weights=weights, k=n_new) if groups else []:
        p = Post(g.id, rng.randint(start + 1, end))
        gen.fill_post(p, g, rng, history_start=start - gen.spec.history_days * DAY, now=start)
        p.edited = 0
        events[g.id].append((p.date, seq, p))
        seq += 1
        fresh.append(p)

    # 3. New comments: on a sample of existing posts (old ones too) and on most new posts.
    pool = [p for p in live_posts if not p.comments_closed]
    targets = rng.sample(pool, min(len(pool), stochastic_round(len(pool) * commented, rng)))
    targets += [p for p in fresh if not p.comments_closed and rng.random() < 0.5]
    pending: dict[int, list[Comment]] = {}
    for p in targets:
        m = min(200, int(rng.paretovariate(1.3)))
        lo = max(start, p.date)
        new: list[Comment] = []
        roots = [c for c in visible_top(p) if not c.deleted] if p.id else []
        for _ in range(m):
            if roots and rng.random() < 0.4:
                root = rng.choice(roots)
                thread = gen.gen_thread(p, root, 1, rng, end, start=lo)
                new.extend(thread)
                summary["new_replies"] += 1
            else:
                d = rng.randint(lo + 1, end) if end > lo + 1 else end
                c = gen.new_comment(p, d, rng, None, None)
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
        owner: dict[int, Post] = {}
        for p in targets:
            if p.gid == g.id:
                for c in pending.get(id(p), []):
                    owner[id(c)] = p
        evs.sort(key=lambda e: (e[0], e[1]))
        for _, _, obj in evs:
            obj.id = g.next_id
            g.next_id += 1
            if isinstance(obj, Post):
                obj.hash = gen.post_hash(g.id, obj.id)
                g.posts.append(obj)
                g.posts_by_id[obj.id] = obj
                new_keys.append((g.id, obj.id))
                affected.add((g.id, obj.id))
            else:
                p = owner[id(obj)]
                p.attach(obj)
                affected.add((g.id, p.id))
        g.wall_order = None
    summary["new_posts"] = len(fresh)
    live_posts = [p for g in groups for p in g.posts if not p.deleted]

    # 4. Edits of posts and comments.
    n_post_edits = 0 if silent else stochastic_round(len(live_posts) * edits, rng)
    for p in rng.sample(live_posts, min(len(live_posts), n_post_edits)):
        p.edited = rng.randint(max(start, p.date) + 1, end) if end > max(start, p.date) else end
        record(change("post", "edited", p.gid, p.id, None, p.text, end))
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
    n_edit = stochastic_round(len(live_comments) * edits, rng)
    for p, c in rng.sample(live_comments, min(n_edit, len(live_comments))):
        c.edited = min(end, max(c.date + 1, rng.randint(start + 1, end)))
        record(change("comment", "edited", p.gid, c.id, p.id, c.text, end))
        c.text = c.text + " (ред.)"
        affected.add((p.gid, p.id))
        summary["edited_comments"] += 1

    # 5. Comment deletions: half among roots with live replies (they turn into stubs),
    # half among any comment (most vanish).
    n_del = stochastic_round(len(live_comments) * deletions, rng)
    roots_with_replies = [
        (p, c) for p, c in live_comments if c.root is None and visible_replies(p, c)
    ]
    stubs = n_del if silent else n_del // 2
    chosen = rng.sample(roots_with_replies, min(len(roots_with_replies), stubs))
    if not silent:
        chosen += rng.sample(live_comments, min(len(live_comments), n_del - len(chosen)))
    for p, c in chosen:
        if c.deleted:
            continue
        # Whether VK keeps a stub or drops the comment, a reader sees it go.
        record(change("comment", "deleted", p.gid, c.id, p.id, c.text, end))
        c.deleted = True
        p.invalidate()
        summary["deleted_comments"] += 1
        if c.root is None and visible_replies(p, c):
            summary["stubbed_comments"] += 1
        affected.add((p.gid, p.id))
    for p, _ in chosen:
        p.invalidate()

    summary["deleted_posts"] = len(deleted_keys)
    summary["new_post_keys"] = sorted(new_keys)
    summary["deleted_post_keys"] = sorted(deleted_keys)
    summary["affected"] = sorted(affected)
    return summary
