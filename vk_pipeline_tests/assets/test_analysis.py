"""The analysis assets against truth computed here from the emulator's world, and the
incremental build against a full rebuild of the same database."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest

from vk_pipeline.assets import vk_assets
from vk_pipeline.assets.analysis import analysis_assets
from vk_pipeline.emulator import World
from vk_pipeline.testing.crawl import range_tags
from vk_pipeline_tests.assets.conftest import Pipeline

ANALYSIS = dg.AssetSelection.groups("analysis")
TABLE_KEYS = {
    "post_stats": ("owner_id", "post_id"),
    "group_activity_daily": ("group_id", "day"),
    "top_commenters": ("group_id", "from_id"),
    "hashtags_mentions_links": ("group_id", "day", "source", "kind", "value"),
}


def run(
    p: Pipeline, selection: dg.AssetSelection | None = None, **config: Any
) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"analysis": {"config": config}}} if config else None
    result = dg.materialize(
        [*vk_assets, *analysis_assets],
        instance=p.instance,
        resources=p.resources,
        selection=selection,
        run_config=run_config,
        tags=range_tags(p.keys),
    )
    assert result.success
    return result


def meta(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The asset's latest materialization's metadata: a range run's totals are there."""
    *_, event = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def snapshot(p: Pipeline, table: str) -> list[tuple]:
    """The table's rows without computed_at, in key order."""
    columns = [
        c
        for (c,) in p.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'vk'"
            " AND table_name = %s AND column_name <> 'computed_at' ORDER BY ordinal_position",
            table,
        )
    ]
    order = ", ".join(TABLE_KEYS[table])
    return p.query(f"SELECT {', '.join(columns)} FROM vk.{table} ORDER BY {order}")


def rows_by_key(p: Pipeline, table: str, columns: str) -> dict[tuple, tuple]:
    keys = TABLE_KEYS[table]
    rows = p.query(f"SELECT {', '.join(keys)}, {columns} FROM vk.{table}")
    return {r[: len(keys)]: r[len(keys) :] for r in rows}


# --------------------------------------------------------------------------------------------
# Truth, computed from the world's VK objects (what a full crawl stores)


def day(ts: int) -> Any:
    return datetime.fromtimestamp(ts, UTC).date()


def visible(world: World, gid: int, pid: int) -> tuple[list[dict], list[dict]]:
    comments = world.comments(gid, pid)
    return [c for c in comments if not c.get("deleted")], [c for c in comments if c.get("deleted")]


def depth_of(comments: list[dict]) -> int:
    by_id = {c["id"]: c for c in comments}

    def depth(c: dict) -> int:
        if not c.get("parents_stack"):
            return 1
        target = c.get("reply_to_comment")
        if target is None or target == c["parents_stack"][0] or target not in by_id:
            return 2
        return depth(by_id[target]) + 1

    return max((depth(c) for c in comments), default=0)


def truth_post_stats(world: World) -> dict[tuple, tuple]:
    out = {}
    for gid in world.group_ids():
        members = world.group(gid).get("members_count")
        for post in world.posts(gid):
            live, stubs = visible(world, gid, post["id"])
            replies = [c for c in live if c.get("parents_stack")]
            threads = Counter(c["parents_stack"][0] for c in replies)
            likes, reposts = post["likes"]["count"], post["reposts"]["count"]
            engagement = likes + len(live) + reposts
            first = min((c["date"] for c in live), default=None)
            out[(-gid, post["id"])] = (
                len(live),
                len(live) - len(replies),
                len(replies),
                len(stubs),
                len({c["from_id"] for c in live}),
                sum(c["from_id"] == -gid for c in live),
                max(threads.values(), default=0),
                depth_of(live + stubs),
                engagement,
                pytest.approx(engagement / members) if members else None,
                None if first is None else pytest.approx((first - post["date"]) / 60),
                post.get("views", {}).get("count"),
            )
    return out


def truth_activity(world: World) -> dict[tuple, tuple]:
    out = {}
    for gid in world.group_ids():
        posts = world.posts(gid)
        if not posts:
            continue
        comments, stubs, per_post = [], [], {}
        for post in posts:
            live, deleted = visible(world, gid, post["id"])
            comments += live
            stubs += deleted
            per_post[post["id"]] = len(live)
        # An author's first comment counts even if it was deleted since (its stub shows it).
        first_day = {}
        for c in comments + stubs:
            first_day[c["from_id"]] = min(
                first_day.get(c["from_id"], day(c["date"])), day(c["date"])
            )
        days = {day(p["date"]) for p in posts} | {day(c["date"]) for c in comments}
        for d in days:
            ps = [p for p in posts if day(p["date"]) == d]
            cs = [c for c in comments if day(c["date"]) == d]
            out[(gid, d)] = (
                len(ps),
                len(cs),
                sum(bool(c.get("parents_stack")) for c in cs),
                len({c["from_id"] for c in cs}),
                sum(f == d for f in first_day.values()),
                statistics.median(per_post[p["id"]] for p in ps) if ps else None,
            )
    return out


def truth_top(world: World, top_n: int) -> dict[tuple, tuple]:
    out = {}
    for gid in world.group_ids():
        comments = [c for p in world.posts(gid) for c in visible(world, gid, p["id"])[0]]
        if not comments:
            continue
        end = max(c["date"] for c in comments)
        per: dict[int, list[dict]] = defaultdict(list)
        for c in comments:
            per[c["from_id"]].append(c)
        d30 = {a: sum(c["date"] > end - 30 * 86400 for c in cs) for a, cs in per.items()}
        by_all = sorted(per, key=lambda a: (-len(per[a]), a))
        by_30 = sorted((a for a in per if d30[a]), key=lambda a: (-d30[a], a))
        rank_all = {a: i + 1 for i, a in enumerate(by_all)}
        rank_30 = {a: i + 1 for i, a in enumerate(by_30)}
        for a in per:
            if rank_all[a] <= top_n or rank_30.get(a, top_n + 1) <= top_n:
                out[(gid, a)] = (len(per[a]), d30[a], rank_all[a], rank_30.get(a))
    return out


HASHTAG = re.compile(r"(?<![\w/&#])#(\w*[^\W\d_]\w*)")
MENTION = re.compile(r"\[([A-Za-z][\w.]*)\|[^\]]*\]")


def truth_entities(world: World) -> dict[tuple, tuple]:
    found: dict[tuple, list[int]] = defaultdict(list)  # key → occurrences per item

    def add(gid: int, source: str, ts: int, text: str, attachments: list[dict]) -> None:
        per_item = Counter()
        for tag in HASHTAG.findall(text or ""):
            per_item[("hashtag", tag.lower())] += 1
        for m in MENTION.findall(text or ""):
            per_item[("mention", re.sub(r"^(?:public|event)(\d+)$", r"club\1", m.lower()))] += 1
        for a in attachments or []:
            if a.get("type") == "link":
                url = re.sub(r"^[a-z]+://(www\.)?", "", a["link"]["url"])
                host, _, rest = url.partition("/")
                per_item[("link", host.lower() + ("/" + rest if _ else ""))] += 1
        for (kind, value), n in per_item.items():
            found[(gid, day(ts), source, kind, value)].append(n)

    for gid in world.group_ids():
        for post in world.posts(gid):
            add(gid, "post", post["date"], post["text"], post.get("attachments"))
            for c in visible(world, gid, post["id"])[0]:
                add(gid, "comment", c["date"], c["text"], c.get("attachments"))
    return {k: (sum(v), len(v)) for k, v in found.items()}


# --------------------------------------------------------------------------------------------
# Tests


def test_first_build_equals_truth(pipeline: Pipeline):
    result = run(pipeline, top_n=5)
    world = pipeline.world

    stats = rows_by_key(
        pipeline,
        "post_stats",
        "comments, top_level_comments, replies, deleted_comments, unique_commenters,"
        " community_comments, largest_thread, reply_depth, engagement, engagement_rate,"
        " minutes_to_first_comment, views",
    )
    truth = truth_post_stats(world)
    assert set(stats) == set(truth)
    assert stats == truth
    assert max(v[7] for v in stats.values()) >= 3, "some replies answer replies"

    activity = rows_by_key(
        pipeline,
        "group_activity_daily",
        "posts, comments, replies, unique_commenters, new_commenters, median_comments_per_post",
    )
    assert activity == truth_activity(world)

    top = rows_by_key(
        pipeline, "top_commenters", "comments_all_time, comments_30d, rank_all_time, rank_30d"
    )
    assert top == truth_top(world, 5)

    entities = rows_by_key(pipeline, "hashtags_mentions_links", "occurrences, items")
    truth = truth_entities(world)
    assert entities == truth
    assert {k[3] for k in truth} == {"hashtag", "mention", "link"}

    m = meta(result, "post_stats")
    assert m["modes"] == {"rebuild": len(pipeline.keys)}
    # Each partition's materialization counts and previews its own group's rows.
    per_partition = {
        e.materialization.partition: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.asset_key.path == ["post_stats"]
    }
    assert sum(p["dagster/row_count"] for p in per_partition.values()) == len(stats)
    # The column schema once, on the last (the asset's latest) materialization.
    with_schema = [k for k, p in per_partition.items() if "dagster/column_schema" in p]
    assert with_schema == [list(per_partition)[-1]]
    # So are the run's totals: its modes and per-group table.
    assert [k for k, p in per_partition.items() if "modes" in p] == with_schema
    assert [k for k, p in per_partition.items() if "per_group" in p] == with_schema
    for key, p in per_partition.items():
        assert p["dagster/row_count"] == sum(1 for owner, _ in stats if owner == -int(key))
        if p["dagster/row_count"]:
            header, _, *lines = p["preview"].splitlines()
            assert "group_id" in header and "engagement_rate" in header
            assert len(lines) == min(5, p["dagster/row_count"])
            assert {line.split("|")[1].strip() for line in lines} == {key}


def test_incremental_build_equals_a_full_rebuild(pipeline: Pipeline):
    run(pipeline)
    world = pipeline.world
    change = world.advance(days=1, new_posts=0.05, commented_posts=0.05, edits=0.02, deletions=0.02)
    touched = {g for g, _ in change["affected"]}
    result = run(pipeline)  # the crawl refreshes; the analysis patches what changed
    modes = meta(result, "post_stats")["per_group"]
    assert {modes[str(g)]["mode"] for g in touched} == {"incremental"}
    assert {modes[k]["mode"] for k in pipeline.keys if int(k) not in touched} <= {"unchanged"}
    assert meta(result, "group_activity_daily")["modes"].keys() <= {"rebuild", "unchanged"}
    incremental = {t: snapshot(pipeline, t) for t in TABLE_KEYS}

    rebuilt = run(pipeline, ANALYSIS, full_rebuild=True)
    assert meta(rebuilt, "post_stats")["modes"] == {"rebuild": len(pipeline.keys)}
    for table in TABLE_KEYS:
        assert snapshot(pipeline, table) == incremental[table], table

    # Nothing changed since: nothing is recomputed, nothing moves, and one query for the whole
    # run tells so (no group's state row is even rewritten).
    state_sql = "SELECT asset, group_id, built_at FROM vk.analysis_state ORDER BY 1, 2"
    with psycopg.connect(pipeline.database_url) as conn:
        state_before = conn.execute(state_sql).fetchall()
    again = run(pipeline, ANALYSIS)
    with psycopg.connect(pipeline.database_url) as conn:
        assert conn.execute(state_sql).fetchall() == state_before
    for table in TABLE_KEYS:
        assert meta(again, table)["modes"] == {"unchanged": len(pipeline.keys)}
        assert meta(again, table)["rows_written"] == 0
        assert snapshot(pipeline, table) == incremental[table], table


def test_one_batch_of_rebuilt_and_incremental_groups_equals_a_full_rebuild(pipeline: Pipeline):
    """The changed groups of a run are built together: one group rebuilt (its state lost), the
    others patched, in the same statements."""
    run(pipeline)
    change = pipeline.world.advance(
        days=1, new_posts=0.1, commented_posts=0.1, edits=0.02, deletions=0.02
    )
    touched = sorted({g for g, _ in change["affected"]})
    assert len(touched) >= 2, "the world change should touch two groups"
    forgotten = touched[0]
    with psycopg.connect(pipeline.database_url) as conn:
        conn.execute("DELETE FROM vk.analysis_state WHERE group_id = %s", (forgotten,))
    result = run(pipeline)
    per_group = meta(result, "post_stats")["per_group"]
    assert per_group[str(forgotten)]["mode"] == "rebuild"
    assert {per_group[str(g)]["mode"] for g in touched[1:]} == {"incremental"}
    # Its every stored post (tombstones too) is rewritten; the batch's counts are per group.
    [(stored,)] = pipeline.query("SELECT count(*) FROM vk.posts WHERE group_id = %s", forgotten)
    assert per_group[str(forgotten)]["rows_written"] == stored
    built = {t: snapshot(pipeline, t) for t in TABLE_KEYS}
    run(pipeline, ANALYSIS, full_rebuild=True)
    for table in TABLE_KEYS:
        assert snapshot(pipeline, table) == built[table], table


def test_members_change_moves_engagement_rates_without_a_rebuild(pipeline: Pipeline):
    run(pipeline)
    gid = max(pipeline.world.group_ids(), key=lambda g: len(pipeline.world.posts(g)))
    with psycopg.connect(pipeline.database_url) as conn:
        # What the groups asset writes when VK reports twice the members.
        conn.execute(
            "UPDATE vk.groups SET members_count = members_count * 2, last_changed_at = now()"
            " WHERE id = %s",
            (gid,),
        )
    before = dict(
        pipeline.query(
            "SELECT post_id, engagement_rate FROM vk.post_stats WHERE group_id = %s", gid
        )
    )
    tables = {t: snapshot(pipeline, t) for t in TABLE_KEYS if t != "post_stats"}
    result = run(pipeline, ANALYSIS)
    assert meta(result, "post_stats")["per_group"][str(gid)]["mode"] == "incremental"
    # Only post_stats reads the group row: the other tables are left as they were.
    for table, rows in tables.items():
        assert meta(result, table)["per_group"][str(gid)]["mode"] == "unchanged", table
        assert snapshot(pipeline, table) == rows, table
    # ... and the watermark moved on: a second build finds nothing to do.
    again = run(pipeline, ANALYSIS)
    assert meta(again, "post_stats")["modes"] == {"unchanged": len(pipeline.keys)}
    after = dict(
        pipeline.query(
            "SELECT post_id, engagement_rate FROM vk.post_stats WHERE group_id = %s", gid
        )
    )
    assert before.keys() == after.keys()
    assert any(r for r in before.values())
    for pid, rate in before.items():
        assert after[pid] == (None if rate is None else pytest.approx(rate / 2)), pid
    incremental = snapshot(pipeline, "post_stats")
    run(pipeline, ANALYSIS, full_rebuild=True)
    assert snapshot(pipeline, "post_stats") == incremental


def test_a_stale_full_build_is_redone(pipeline: Pipeline):
    run(pipeline)
    with psycopg.connect(pipeline.database_url) as conn:
        conn.execute(
            "UPDATE vk.analysis_state SET full_built_at = full_built_at - interval '8 days'"
        )
        # a row changed outside the crawl (a manual fix): only a rebuild sees it
        conn.execute(
            "UPDATE vk.comments SET from_id = 42 WHERE (owner_id, id) ="
            " (SELECT owner_id, id FROM vk.comments WHERE NOT is_deleted ORDER BY id LIMIT 1)"
        )
    result = run(pipeline, ANALYSIS, rebuild_after_days=7, top_n=100_000)
    assert meta(result, "top_commenters")["modes"] == {"rebuild": len(pipeline.keys)}
    [(n,)] = pipeline.query("SELECT count(*) FROM vk.top_commenters WHERE from_id = 42")
    assert n == 1


@pytest.mark.parametrize(
    ("text", "attachments", "expected"),
    [
        ("Смотрите #новости #Город", None, [("hashtag", "новости"), ("hashtag", "город")]),
        ("#2024 год, &#123; и site.ru/#anchor", None, []),
        ("#тег@club1 и #tag_2", None, [("hashtag", "тег"), ("hashtag", "tag_2")]),
        ("[id123|Мария], привет", None, [("mention", "id123")]),
        ("[public55|Паблик] [event7|Встреча] [durov|Павел]", None,
         [("mention", "club55"), ("mention", "club7"), ("mention", "durov")]),
        ("@durov. и *id77, но не mail@example.ru", None, [("mention", "durov"), ("mention", "id77")]),
        ("Ссылка: https://VK.com/Wall-1_2?x=1). и www.Example.org/a,", None,
         [("link", "vk.com/Wall-1_2?x=1"), ("link", "example.org/a")]),
        ("тут vk.cc/abc!", None, [("link", "vk.cc/abc")]),
        ("", [{"type": "link", "link": {"url": "https://www.News.ru/a"}}, {"type": "photo"}],
         [("link", "news.ru/a")]),
        (None, None, []),
    ],
)  # fmt: skip
def test_extract_entities(postgres_resource, text, attachments, expected):
    rows = postgres_resource.execute(
        "SELECT kind, value FROM vk.extract_entities(%s, %s::jsonb)",
        (text, None if attachments is None else psycopg.types.json.Jsonb(attachments)),
    )
    assert sorted(rows) == sorted(expected)


def test_list_group_ids(postgres_resource):
    postgres_resource.execute("INSERT INTO vk.group_lists (name) VALUES ('msk'), ('empty')")
    postgres_resource.execute(
        "INSERT INTO vk.group_list_members (list_name, group_id) VALUES ('msk', 2), ('msk', 1)"
    )
    assert postgres_resource.execute("SELECT vk.list_group_ids('msk')") == [([1, 2],)]
    assert postgres_resource.execute("SELECT vk.list_group_ids('empty')") == [([],)]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown group list 'nope'"):
        postgres_resource.execute("SELECT vk.list_group_ids('nope')")


def test_window_end_is_the_newest_comment(pipeline: Pipeline):
    run(pipeline)
    rows = pipeline.query(
        "SELECT t.group_id, max(t.window_end), max(c.date) FROM vk.top_commenters t"
        " JOIN vk.comments c ON c.group_id = t.group_id AND NOT c.is_deleted GROUP BY t.group_id"
    )
    assert rows and all(w == newest for _, w, newest in rows)
    assert all(
        isinstance(w, datetime) and w < datetime.now(UTC) + timedelta(days=1) for _, w, _ in rows
    )
