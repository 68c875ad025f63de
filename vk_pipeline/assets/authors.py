"""The `authors` asset: who wrote the run's groups' comments and signed their posts.

Users come from users.get (1,000 ids a call, packed into `execute`, vk/users.py), communities
that commented from groups.getById. Only authors never fetched, or fetched longer ago than
`refresh_after_days`, are asked for; a pack of profiles is committed as it arrives, so a rerun
after a failure asks only for the rest.
"""

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd
from psycopg import sql
from pydantic import Field

from vk_pipeline.assets.comments import comments
from vk_pipeline.assets.common import (
    VK_ASSET,
    failing_fast,
    group_ids,
    partition_metadata,
    preview,
    run_metadata,
)
from vk_pipeline.assets.posts import posts
from vk_pipeline.assets.rows import frame
from vk_pipeline.storage import COMMIT, FrameStream, PostgresResource
from vk_pipeline.vk import VKResource, fetch_groups, fetch_users
from vk_pipeline.vk.users import CALLS_PER_EXECUTE

AUTHOR_COLUMNS = {
    "id": "Int64",
    "kind": "object",
    "first_name": "object",
    "last_name": "object",
    "name": "object",
    "screen_name": "object",
    "sex": "Int64",
    "bdate": "object",
    "city_id": "Int64",
    "city": "object",
    "country_id": "Int64",
    "country": "object",
    "deactivated": "object",
    "is_closed": "boolean",
    "fetched_at": "datetime64[ns, UTC]",
    "raw": "object",
}
# A deleted account is all VK forgets: only these are written, the last known name stays.
GONE_COLUMNS = {
    c: AUTHOR_COLUMNS[c] for c in ("id", "kind", "deactivated", "is_closed", "fetched_at")
}

TODO_SQL = """
WITH ids AS (
    SELECT from_id AS id FROM {comments} WHERE group_id = ANY(%(g)s) AND from_id IS NOT NULL
    UNION SELECT signer_id FROM {posts} WHERE group_id = ANY(%(g)s) AND signer_id IS NOT NULL
    UNION SELECT from_id FROM {posts} WHERE group_id = ANY(%(g)s) AND from_id IS NOT NULL
)
SELECT i.id, a.id IS NOT NULL FROM ids i LEFT JOIN {authors} a ON a.id = i.id
WHERE i.id <> 0 AND (a.id IS NULL OR a.fetched_at < now() - make_interval(secs => %(age)s))
ORDER BY i.id
"""


class AuthorsConfig(dg.Config):
    refresh_after_days: float = Field(
        default=30.0, ge=0, description="Profiles fetched longer ago than this are fetched again."
    )
    calls_per_request: int = Field(
        default=CALLS_PER_EXECUTE,
        ge=1,
        le=25,
        description="users.get calls of 1,000 ids packed into one execute. 25 x 1,000 profiles "
        "exceed VK's 5 MB execute response; the client halves a pack VK refuses as too big.",
    )


def _title(obj: Any) -> tuple[int | None, str | None]:
    if isinstance(obj, Mapping):
        return obj.get("id"), obj.get("title")
    return None, None


def user_row(p: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    city_id, city = _title(p.get("city"))
    country_id, country = _title(p.get("country"))
    first, last = p.get("first_name"), p.get("last_name")
    return {
        "id": int(p["id"]),
        "kind": "user",
        "first_name": first,
        "last_name": last,
        "name": " ".join(x for x in (first, last) if x) or None,
        "screen_name": p.get("screen_name"),
        "sex": p.get("sex"),
        "bdate": p.get("bdate"),
        "city_id": city_id,
        "city": city,
        "country_id": country_id,
        "country": country,
        "deactivated": p.get("deactivated"),
        "is_closed": p.get("is_closed"),
        "fetched_at": fetched_at,
        "raw": dict(p),
    }


def group_author_row(gid: int, g: Mapping[str, Any] | None, fetched_at: datetime) -> dict[str, Any]:
    g = g or {}
    return {
        "id": -gid,
        "kind": "group",
        "name": g.get("name"),
        "screen_name": g.get("screen_name"),
        "deactivated": g.get("deactivated"),
        "is_closed": bool(g["is_closed"]) if "is_closed" in g else None,
        "fetched_at": fetched_at,
        "raw": dict(g) if g else None,
    }


@dg.asset(
    **{k: v for k, v in VK_ASSET.items() if k != "freshness_policy"},
    deps=[comments, posts],
    metadata={"write_mode": "upsert"},
)
def authors(
    context: dg.AssetExecutionContext,
    config: AuthorsConfig,
    vk: VKResource,
    postgres: PostgresResource,
) -> FrameStream:
    """Profiles of the groups' commenters and post signers: name, screen name, sex, city, country, birth date, deactivated / closed."""
    schema = postgres.schema_name
    query = sql.SQL(TODO_SQL).format(
        comments=sql.Identifier(schema, "comments"),
        posts=sql.Identifier(schema, "posts"),
        authors=sql.Identifier(schema, "authors"),
    )
    todo = postgres.execute(
        query, {"g": group_ids(context), "age": config.refresh_after_days * 86_400}
    )
    metadata: dict[str, Any] = {}
    return FrameStream(_fetch(context, config, vk, todo, metadata), metadata=metadata)


def _fetch(
    context: dg.AssetExecutionContext,
    config: AuthorsConfig,
    vk: VKResource,
    todo: list[tuple[Any, ...]],
    metadata: dict[str, Any],
) -> Iterator[pd.DataFrame | object]:
    started = time.monotonic()
    users = [int(i) for i, _ in todo if i > 0]
    communities = [-int(i) for i, _ in todo if i < 0]
    counts = {
        "new": sum(1 for _, known in todo if not known),
        "refreshed": sum(1 for _, known in todo if known),
        "profiles": 0,
        "deactivated": 0,
        "not_returned": 0,
        "communities": len(communities),
    }
    context.log.info(
        f"authors: {len(users):,} users and {len(communities):,} communities to fetch "
        f"({counts['new']:,} new, {counts['refreshed']:,} stale)"
    )
    client = vk.get_client(warn=context.log.warning)
    try:
        with failing_fast(), client:
            for chunk in fetch_users(client, users, calls_per_request=config.calls_per_request):
                now = datetime.now(UTC)
                rows = [user_row(p, now) for p in chunk.profiles]
                live = [r for r in rows if r["deactivated"] != "deleted"]
                gone = [r for r in rows if r["deactivated"] == "deleted"]
                gone += [{"id": i, "kind": "user", "fetched_at": now} for i in chunk.missing]
                counts["profiles"] += len(chunk.profiles)
                counts["deactivated"] += sum(1 for r in rows if r["deactivated"])
                counts["not_returned"] += len(chunk.missing)
                df = frame(live, AUTHOR_COLUMNS)
                metadata.setdefault(
                    "preview", preview(df, ["id", "name", "screen_name", "sex", "bdate", "city"])
                )
                yield df
                yield frame(gone, GONE_COLUMNS)
                yield COMMIT
            if communities:
                now = datetime.now(UTC)
                results = fetch_groups(client, [str(g) for g in communities])
                yield frame(
                    [group_author_row(int(r.key), r.group, now) for r in results], AUTHOR_COLUMNS
                )
                yield COMMIT
    finally:
        metadata.update(run_metadata(client.stats, started, **counts))
        # Authors are shared between groups, so a partition has no rows of its own; a key that
        # is not a group id still says it was skipped, as on the other VK assets.
        partition_metadata(context, {})
