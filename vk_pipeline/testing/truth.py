"""The database against the emulator's world: what is stored, what VK serves, and whether they
are equal."""

from __future__ import annotations

import psycopg

from vk_pipeline.emulator import World

Stored = tuple[dict[tuple[int, int], str], dict[tuple[int, int], str]]


def stored(url: str) -> Stored:
    """Live posts and comments in the database: (group, id) → text."""
    with psycopg.connect(url) as conn:
        posts = {
            (g, i): t
            for g, i, t in conn.execute(
                "SELECT group_id, id, text FROM vk.posts WHERE NOT is_deleted"
            ).fetchall()
        }
        comments = {
            (-o, i): t
            for o, i, t in conn.execute(
                "SELECT owner_id, id, text FROM vk.comments WHERE NOT is_deleted"
            ).fetchall()
        }
    return posts, comments


def truth(world: World, groups: list[int] | None = None) -> Stored:
    """Live posts and comments as the world serves them: (group, id) → text."""
    gids = groups if groups is not None else world.group_ids()
    posts = {(g, p["id"]): p["text"] for g in gids for p in world.posts(g)}
    comments = {
        (g, c["id"]): c["text"]
        for g in gids
        for p in world.posts(g)
        for c in world.comments(g, p["id"])
        if not c.get("deleted")
    }
    return posts, comments


def matches_truth(world: World, url: str, groups: list[int] | None = None) -> bool:
    """Live posts and comments (replies included) with their texts, exactly."""
    return stored(url) == truth(world, groups)


def duplicates(url: str) -> int:
    """Rows stored twice under one key (impossible with the primary keys; checked anyway)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) - count(DISTINCT (owner_id, id)) FROM vk.comments)"
            " + (SELECT count(*) - count(DISTINCT (owner_id, id)) FROM vk.posts)"
        ).fetchone()
    return int(row[0]) if row else 0
