"""Optional day-by-day changes the default `advance` leaves out: counters that grow and deleted
comments that come back. Drawn from an RNG of their own, so a world advanced without them is the
same as before they existed.

Growth: a post's views, likes and reposts approach the values it was generated with along
1 - exp(-age / tau) (views fastest), for posts younger than `GROWTH_DAYS`; a community's
`members_count` drifts by a small daily percentage.
"""

from __future__ import annotations

import math
import random
from typing import Any

from vk_pipeline.emulator.changes import change, stochastic_round
from vk_pipeline.emulator.state import DAY, Group

GROWTH_DAYS = 14
TAU_HOURS = {"views": 18.0, "likes": 10.0, "reposts": 30.0}


def grow(
    world: dict[int, Group],
    peaks: dict[tuple[int, int], tuple[int, int, int, int]],
    rng: random.Random,
    now: int,
    days: float,
) -> int:
    """Bring post counters to their value at `now`; returns the number of posts touched."""
    touched = 0
    for g in world.values():
        if not g.readable:
            continue
        if g.members_count:
            g.members_count = max(
                0, g.members_count + round(g.members_count * rng.gauss(0.002, 0.002) * days)
            )
        for p in g.posts:
            age_h = (now - p.date) / 3600
            if p.deleted or age_h < 0 or age_h > GROWTH_DAYS * 24:
                continue
            key = (g.id, p.id)
            if key not in peaks:
                peaks[key] = (p.views or 0, p.likes, p.wall_reposts, p.mail_reposts)
            views, likes, wall, mail = peaks[key]

            def part(total: int, name: str) -> int:
                return round(total * (1 - math.exp(-age_h / TAU_HOURS[name])))  # noqa: B023

            if p.views is not None:
                p.views = part(views, "views")
            p.likes = part(likes, "likes")
            p.wall_reposts = part(wall, "reposts")
            p.mail_reposts = part(mail, "reposts")
            touched += 1
    return touched


def restore(
    world: dict[int, Group],
    rng: random.Random,
    fraction: float,
    now: int,
    just_deleted: set[tuple[int, int]],
    log: list[dict[str, Any]],
) -> int:
    """Bring back `fraction` of the deleted comments of live posts (not those deleted in this
    same step: a reader could not have seen them go)."""
    deleted = [
        (p, c)
        for g in world.values()
        if g.readable
        for p in g.posts
        if not p.deleted and not p.comments_closed
        for c in p.by_id.values()
        if c.deleted and (g.id, c.id) not in just_deleted
    ]
    n = stochastic_round(len(deleted) * fraction, rng)
    for p, c in rng.sample(deleted, min(n, len(deleted))):
        log.append(change("comment", "restored", p.gid, c.id, p.id, c.text, now))
        c.deleted = False
        p.invalidate()
    return min(n, len(deleted))


__all__ = ["DAY", "grow", "restore"]
