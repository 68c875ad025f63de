"""Deterministic synthetic VK world: communities, wall posts, comments and threads.

Everything is generated from `WorldSpec.seed`; `World.advance()` mutates the world with an RNG
derived from the seed and the advance counter, so two worlds built from the same spec and
advanced with the same arguments are identical.

`World` is the facade the server, the tests and the benchmarks hold: it owns the state and the
lock, answers lookups and the ground truth, and hands the work to its modules: `state.py` (the
objects and what VK shows of them), `generate.py` (the seeded world), `render.py` (objects as
VK API 5.199 serves them, used both by the HTTP methods and by the ground truth, so "truth" is
exactly what the API serves) and `changes.py` (what a day does to the world).
"""

from __future__ import annotations

import random
import threading
from typing import Any

from vk_pipeline.emulator import changes, render, state, users
from vk_pipeline.emulator.generate import Generator
from vk_pipeline.emulator.growth import grow, restore
from vk_pipeline.emulator.state import Group, WorldSpec, to_json_copy


class World:
    """A deterministic synthetic VK: see the module docstring."""

    def __init__(self, spec: WorldSpec | None = None) -> None:
        self.spec = spec or WorldSpec()
        self.lock = threading.RLock()
        self.now = self.spec.now
        self._advance_count = 0
        rng = random.Random(self.spec.seed)
        self._gen = Generator(self.spec, rng)
        self._groups = self._gen.generate(rng)
        self._by_name = {g.screen_name: g for g in self._groups.values()}
        # Every edit, deletion and restore `advance` made, oldest first (see changes.change).
        self.change_log: list[dict[str, Any]] = []
        self._deactivated: dict[int, str] = {}
        self._peaks: dict[tuple[int, int], tuple[int, int, int, int]] = {}

    # ------------------------------------------------------------------ lookups

    def group_obj(self, gid: int) -> Group | None:
        return self._groups.get(gid)

    def resolve_group(self, ref: str) -> Group | None:
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
        return uid in self._gen.user_set

    def user_deactivation(self, uid: int) -> str | None:
        """ "deleted", "banned" or None: what users.get says of the account now."""
        return self._deactivated.get(uid) or users.initial_deactivation(uid)

    def deactivate_user(self, uid: int, kind: str = "deleted") -> None:
        with self.lock:
            self._deactivated[uid] = kind

    # What VK shows of the state, and in what shape: methods.py reaches these through the world.
    user_is_private = staticmethod(render.user_is_private)
    wall_order = staticmethod(state.wall_order)
    live_count = staticmethod(state.live_count)
    visible_top = staticmethod(state.visible_top)
    visible_replies = staticmethod(state.visible_replies)
    render_group = staticmethod(render.render_group)
    render_post = staticmethod(render.render_post)
    thread_info = staticmethod(render.thread_info)
    render_comment = staticmethod(render.render_comment)
    render_top_comment = staticmethod(render.render_top_comment)
    profile = staticmethod(render.profile)

    # ------------------------------------------------------------------ ground truth

    def group_ids(self) -> list[int]:
        with self.lock:
            return sorted(self._groups)

    def group(self, gid: int) -> dict[str, Any]:
        with self.lock:
            g = self._groups[gid]
            return to_json_copy(self.render_group(g, render.GROUP_FIELDS))

    def group_kind(self, gid: int) -> str:
        with self.lock:
            return self._groups[gid].kind

    def posts(self, gid: int) -> list[dict[str, Any]]:
        with self.lock:
            g = self._groups[gid]
            if not g.readable:
                return []
            return to_json_copy([self.render_post(p, g) for p in self.wall_order(g)])

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
            return to_json_copy([d for _, d in out])

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
        restores: float = 0.0,
        growth: float = 0.0,
    ) -> dict[str, Any]:
        """Move the clock forward and mutate the world deterministically.

        Fractions are relative to the current number of live posts (posts, comment targets,
        post edits and post deletions) or live comments (comment edits and deletions).
        `silent` keeps to the changes VK's `comments.count` does not show: comment edits and
        deletions of comments with live replies (they stay as stubs); no post is edited or
        deleted and no comment vanishes.
        `restores`: fraction of earlier-deleted comments that come back; `growth` > 0: post
        counters grow with age and members_count drifts (emulator/growth.py). Both draw from
        an RNG of their own. Edits, deletions and restores go to `change_log`.
        """
        with self.lock:
            self._advance_count += 1
            rng = random.Random(f"{self.spec.seed}:advance:{self._advance_count}")
            summary = changes.advance(
                self._groups,
                self._gen,
                rng,
                start=self.now,
                days=days,
                new_posts=new_posts,
                commented=commented_posts,
                edits=edits,
                deletions=deletions,
                silent=silent,
                log=self.change_log,
            )
            self.now = summary["now"]
            extra = random.Random(f"{self.spec.seed}:history:{self._advance_count}")
            if restores > 0:
                just = {
                    (-e["owner_id"], e["id"])
                    for e in self.change_log
                    if e["object"] == "comment" and e["at"] == self.now
                }
                summary["restored_comments"] = restore(
                    self._groups, extra, restores, self.now, just, self.change_log
                )
            if growth > 0:
                summary["grown_posts"] = grow(self._groups, self._peaks, extra, self.now, days)
            return summary
