"""Russian full-text search: the SQL functions of migration 0005 and the command."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest

from vk_pipeline.search import SearchInputError
from vk_pipeline.search import search as search_api
from vk_pipeline.storage import PostgresResource
from vk_pipeline_tests.fixtures.postgres import comment_rows, group_rows, post_rows

T0 = datetime(2024, 3, 1, tzinfo=UTC)
TEXTS = {  # comment id → (group, text, days after T0)
    1: (1, "Моя кошка любит рыбу", 0),
    2: (1, "Кошки спят весь день", 1),
    3: (1, "Кофе без сахара", 2),
    4: (2, "Кофейня на углу открылась", 3),
    5: (2, "Кофе и чай на выбор", 4),
    6: (3, "Хороший кофе по утрам", 5),
    7: (3, "Кофе хороший, но дорогой", 6),
    8: (3, "Этот кофе удалили", 7),  # deleted
}
DELETED = frozenset({8})


def write(
    pg: PostgresResource,
    texts: dict[int, tuple[int, str, float]],
    deleted: frozenset[int] = frozenset(),
) -> None:
    groups = sorted({g for g, _, _ in texts.values()} | {1, 2, 3})
    pg.write_frames("groups", group_rows(groups))
    pg.write_frames("posts", pd.concat([post_rows(g, [10]) for g in groups]))
    frames = []
    for cid, (g, text, days) in texts.items():
        frames.append(
            comment_rows(
                g, 10, [cid], text=[text], date=[pd.Timestamp(T0 + timedelta(days=days))],
                is_deleted=[cid in deleted],
            )
        )  # fmt: skip
    pg.write_frames("comments", pd.concat(frames, ignore_index=True))
    pg.execute("ANALYZE vk.comments")


@pytest.fixture
def pg(postgres_resource: PostgresResource) -> PostgresResource:
    write(postgres_resource, TEXTS, DELETED)
    return postgres_resource


def search(pg: PostgresResource, query: str, **kw: Any) -> list[dict[str, Any]]:
    args = "".join(f", {k} => %({k})s" for k in kw)
    with pg.connection() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM vk.search_comments(%(q)s{args})", {"q": query, **kw})
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def ids(rows: list[dict[str, Any]]) -> set[int]:
    return {r["comment_id"] for r in rows}


# --------------------------------------------------------------------------------------------
# Matching


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("кошка", {1, 2}),  # word forms: кошка / кошки share a stem
        ("кошки", {1, 2}),
        ("кофе", {3, 5, 6, 7}),  # not кофейня: another word
        ("кофейня", {4}),
        ('"хороший кофе"', {6}),  # a phrase: the words adjacent and in order
        ("хороший кофе", {6, 7}),  # both words anywhere
        ("кофе -чай", {3, 6, 7}),
        ("кошка OR кофейня", {1, 2, 4}),
        ("КОФЕ", {3, 5, 6, 7}),
        ("и на по", set()),  # stop words only: nothing to match
        ("", set()),
    ],
)
def test_websearch_syntax_and_russian_word_forms(pg, query, expected):
    assert ids(search(pg, query)) == expected


def test_deleted_are_left_out_unless_asked(pg):
    assert 8 not in ids(search(pg, "кофе"))
    rows = search(pg, "кофе", include_deleted=True)
    assert 8 in ids(rows)
    assert [r["is_deleted"] for r in rows if r["comment_id"] == 8] == [True]


def test_group_list_and_date_filters(pg):
    assert ids(search(pg, "кофе", group_ids=[2])) == {5}
    assert ids(search(pg, "кофе", group_ids=[1, 3])) == {3, 6, 7}
    pg.execute("INSERT INTO vk.group_lists (name) VALUES ('утро'), ('пусто')")
    pg.execute(
        "INSERT INTO vk.group_list_members (list_name, group_id) VALUES ('утро', 3), ('утро', 2)"
    )
    assert ids(search(pg, "кофе", list_name="утро")) == {5, 6, 7}
    assert ids(search(pg, "кофе", list_name="утро", group_ids=[2, 1])) == {5}  # both filters
    assert ids(search(pg, "кофе", list_name="пусто")) == set()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unknown group list 'нет'"):
        search(pg, "кофе", list_name="нет")
    # since is inclusive, until exclusive
    assert ids(search(pg, "кофе", since=T0 + timedelta(days=5))) == {6, 7}
    assert ids(search(pg, "кофе", until=T0 + timedelta(days=5))) == {3, 5}
    assert ids(search(pg, "кофе", since=T0 + timedelta(days=4), until=T0 + timedelta(days=6))) == {
        5,
        6,
    }


def test_rows_carry_link_snippet_and_author(pg):
    [row] = search(pg, "кофейня")
    assert row["url"] == "https://vk.com/wall-2_10?reply=4"
    assert row["group_id"] == 2 and row["post_id"] == 10 and row["from_id"] == 1004
    assert row["snippet"] == "<b>Кофейня</b> на углу открылась"
    assert row["date"] == T0 + timedelta(days=3)


def test_reply_links_name_their_thread(postgres_resource):
    write(postgres_resource, {1: (1, "вопрос про чай", 0)})
    postgres_resource.write_frames(
        "comments", comment_rows(1, 10, [2], text=["ответ про чай"], thread_root_id=[1],
                                 parents_stack=[[1]], date=[pd.Timestamp(T0)])
    )  # fmt: skip
    urls = {r["comment_id"]: r["url"] for r in search(postgres_resource, "чай")}
    assert urls == {
        1: "https://vk.com/wall-1_10?reply=1",
        2: "https://vk.com/wall-1_10?reply=2&thread=1",
    }


# --------------------------------------------------------------------------------------------
# Order and pages


@pytest.fixture
def many(postgres_resource: PostgresResource) -> PostgresResource:
    """130 comments about coffee: some say it twice or three times (they rank higher), many
    share a date (ties broken by key)."""
    texts = {}
    for i in range(1, 131):
        repeat = 3 if i % 17 == 0 else 2 if i % 5 == 0 else 1
        texts[i] = (1 + i % 3, " ".join(["кофе"] * repeat) + f" заметка {i}", (i % 9) / 2)
    texts[500] = (1, "про чай", 0)
    write(postgres_resource, texts)
    return postgres_resource


def all_pages(pg: PostgresResource, query: str, lim: int, **kw: Any) -> list[list[dict[str, Any]]]:
    pages, after = [], None
    while True:
        page = search(pg, query, lim=lim, after=after, **kw)
        if page:
            pages.append(page)
        if len(page) < lim:
            return pages
        after = page[-1]["cursor"]


@pytest.mark.parametrize("order", ["rank", "date", "auto"])
def test_keyset_pages_are_disjoint_complete_and_in_one_order(many, order):
    kw = {"order_by": order, "rank_limit": 50}  # auto: 130 matches > 50, so newest first
    [whole] = all_pages(many, "кофе", 1000, **kw)
    pages = all_pages(many, "кофе", 7, **kw)
    flat = [r for p in pages for r in p]
    assert len(pages) == 19 and all(len(p) == 7 for p in pages[:-1])
    assert [r["comment_id"] for r in flat] == [r["comment_id"] for r in whole]
    assert sorted(ids(flat)) == list(range(1, 131))
    used = "date" if order in ("date", "auto") else "rank"
    assert {r["ordered_by"] for r in flat} == {used}
    if used == "rank":
        key = [(r["rank"], r["date"], r["owner_id"], r["comment_id"]) for r in flat]
        best = max(flat, key=lambda r: r["rank"])
        assert "кофе кофе кофе" in best["snippet"].replace("<b>", "").replace("</b>", "")
    else:
        key = [(r["date"], r["owner_id"], r["comment_id"]) for r in flat]
    assert key == sorted(key, reverse=True)
    assert len(set(key)) == len(key)  # a total order: no two rows compare equal


def test_auto_ranks_when_few_match_and_keeps_its_order_across_pages(many):
    few = all_pages(many, "кофе", 10, group_ids=[2], rank_limit=50)  # 43 in group 2
    assert {r["ordered_by"] for p in few for r in p} == {"rank"}
    ranks = [r["rank"] for p in few for r in p]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[-1]


def test_a_cursor_only_works_for_its_own_search(many):
    page = search(many, "кофе", lim=5)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="belongs to another search"):
        search(many, "чай", after=page[-1]["cursor"])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid search cursor"):
        search(many, "кофе", after="not-a-cursor")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="lim must be between"):
        search(many, "кофе", lim=0)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="order_by must be"):
        search(many, "кофе", order_by="random")


def test_search_plan_uses_the_gin_index(postgres_resource):
    texts = {i: (1, f"обычный текст номер {i}" + (" редкость" if i % 997 == 0 else ""), 0)
             for i in range(1, 30_001)}  # fmt: skip
    write(postgres_resource, texts)
    with postgres_resource.connection() as conn:
        # Rows written since the index was built wait in GIN's pending list, which makes the
        # index look expensive; autovacuum (or the pending list limit) merges them normally.
        conn.execute("SELECT gin_clean_pending_list('vk.comments_text_tsv_idx')")
        stmt = conn.execute("SELECT vk._search_sql('comments', 'rank')").fetchone()[0]
        conn.execute("SET LOCAL enable_indexscan = off")  # as the function runs it
        conn.execute(
            "PREPARE page(tsquery, bigint[], timestamptz, timestamptz, boolean, bigint,"
            " timestamptz, bigint, bigint, integer, text, text, text, bigint, tsquery) AS " + stmt
        )
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN EXECUTE page(websearch_to_tsquery('russian', 'редкость'), NULL, NULL,"
                " NULL, false, NULL, NULL, NULL, NULL, 50, '', 'x', 'r', 2001,"
                " websearch_to_tsquery('russian', 'редкость'))"
            ).fetchall()
        )
    assert "Bitmap Index Scan on comments_text_tsv_idx" in plan, plan


def test_posts_search(pg):
    pg.execute("UPDATE vk.posts SET text = 'Пост о кошках' WHERE group_id = 2")
    with pg.connection() as conn:
        rows = conn.execute(
            "SELECT group_id, post_id, url, snippet FROM vk.search_posts('кошка')"
        ).fetchall()
    assert rows == [(2, 10, "https://vk.com/wall-2_10", "Пост о <b>кошках</b>")]


def test_an_odd_schema_name_works(database_url):
    schema = 'Odd "Schema"; --'
    pg = PostgresResource(database_url=database_url, schema_name=schema)
    pg.ensure_schema()
    with pg.connection() as conn:
        conn.execute(psycopg.sql.SQL("SET search_path = {}").format(psycopg.sql.Identifier(schema)))
        conn.execute("INSERT INTO groups (id, status) VALUES (1, 'open')")
        conn.execute("INSERT INTO posts (owner_id, id, group_id, date) VALUES (-1, 1, 1, now())")
        conn.execute(
            "INSERT INTO comments (owner_id, id, group_id, post_id, date, text)"
            " VALUES (-1, 2, 1, 1, now(), 'кошки')"
        )
        rows = conn.execute("SELECT comment_id FROM search_comments('кошка')").fetchall()
    assert rows == [(2,)]


# --------------------------------------------------------------------------------------------
# The Python API validates its input (the command's tests are in vk_pipeline_tests/cli/)


@pytest.mark.parametrize(
    ("query", "kwargs", "message"),
    [
        ("кофе", {"group_ids": [99999999999999999999999]}, "is not a VK group id"),
        ("кофе", {"group_ids": [0]}, "is not a VK group id"),
        ("кофе", {"group_ids": ["1"]}, "is not a VK group id"),
        ("кофе", {"group_ids": list(range(1, 1002))}, "at most 1,000"),
        ("ко\x00фе", {}, "the query contains a NUL character"),
        ("кофе", {"list_name": "a\x00b"}, "the list name contains a NUL character"),
        ("кофе", {"after": "\x00"}, "the cursor contains a NUL character"),
        ("кофе " * 40_000, {}, "at most 1,000"),  # 200 KB: StatementTooComplex before
        (" OR ".join(["кофе"] * 300), {}, "at most 1,000"),
        (" OR ".join(["кофе"] * 20), {}, "39 words and operators; at most 32"),
        ("   ", {}, "the query is empty"),
        ("кофе", {"lim": 0}, "lim: 0 is not a number from 1 to 1,000"),
        ("кофе", {"order": "random"}, "order: 'random' is not one of auto, rank, date"),
        ("кофе", {"since": "2024-01-01"}, "since must be a datetime"),
    ],
)
def test_search_refuses_bad_input_before_the_database(pg, query, kwargs, message):
    with pytest.raises(SearchInputError, match=re.escape(message)) as err:
        search_api(pg, query, **kwargs)
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_database_refusals_are_search_errors_not_psycopg_ones(pg):
    with pytest.raises(SearchInputError, match="unknown group list 'нет'") as err:
        search_api(pg, "кофе", list_name="нет")
    assert not isinstance(err.value, psycopg.Error) and err.value.__context__ is None
    with pytest.raises(SearchInputError, match="invalid search cursor"):
        search_api(pg, "кофе", after="garbage")


def test_a_query_at_the_limits_runs(pg):
    words = " OR ".join(["кофе"] * 16)  # 31 words: under the cap
    assert {r["comment_id"] for r in search_api(pg, words)} == {3, 5, 6, 7}
    assert {r["comment_id"] for r in search_api(pg, "-чай кофе")} == {3, 6, 7}
