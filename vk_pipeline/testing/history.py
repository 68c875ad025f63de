"""What stored revisions should be, from the emulator's change log: shared by the asset tests and
benchmarks/history_bench.py.

A reader sees the net change of each row between two crawls: edited then deleted reads as one
deletion of the text it had at the first crawl; a row born after the last crawl has no earlier
version anyone saw. `expected_revisions` folds the log entries of one interval that way.
The text of a restored row's previous version is what the reader last saw of it (a comment met
only as a deleted stub was seen with none), so restores are compared by key and kind only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import psycopg

Key = tuple[str, int, int]  # (object, owner_id, id)


def stored_keys(database_url: str, schema: str = "vk") -> set[Key]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT 'comment', owner_id, id FROM \"{schema}\".comments"
            f" UNION ALL SELECT 'post', owner_id, id FROM \"{schema}\".posts"
        ).fetchall()
    return {(str(o), int(a), int(b)) for o, a, b in rows}


def expected_revisions(
    entries: Iterable[dict[str, Any]], known: set[Key]
) -> dict[Key, tuple[str, str]]:
    """key → (kind, text before) for one interval's log entries, keys stored before it only."""
    out: dict[Key, tuple[str, str]] = {}
    for e in entries:
        key = (e["object"], int(e["owner_id"]), int(e["id"]))
        if key not in known:
            continue
        if key not in out:
            out[key] = (e["kind"], "" if e["kind"] == "restored" else e["text_before"])
        elif e["kind"] == "deleted":
            out[key] = ("deleted", out[key][1])
    return out


def stored_revisions(database_url: str, schema: str = "vk") -> Counter[tuple[Key, str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT 'comment', owner_id, id, kind, text FROM \"{schema}\".comment_revisions"
            f" UNION ALL SELECT 'post', owner_id, id, kind, text FROM \"{schema}\".post_revisions"
        ).fetchall()
    return Counter(
        ((str(o), int(a), int(b)), str(k), "" if k == "restored" else str(t or ""))
        for o, a, b, k, t in rows
    )
