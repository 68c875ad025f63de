"""Revisions and counter snapshots written by the upsert itself, against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg
import pytest

from vk_pipeline.search import search
from vk_pipeline.storage import PostgresResource, write_frames
from vk_pipeline_tests.fixtures.postgres import comment_rows, group_rows, post_rows

GID = 100001


@pytest.fixture
def conn(postgres_resource: PostgresResource) -> Iterator[psycopg.Connection[Any]]:
    with postgres_resource.connection() as connection:
        # Each write its own transaction, as the IO manager's commit units are.
        connection.autocommit = True
        yield connection
        connection.autocommit = False


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM vk.{table}").fetchone()
    assert row is not None
    return int(row[0])


def _tomb(cid: int) -> pd.DataFrame:
    return comment_rows(GID, 1, [cid])[["owner_id", "id", "group_id", "post_id"]].assign(
        is_deleted=True, deleted_seen_at=pd.Timestamp("2024-03-01", tz="UTC")
    )


def _setup(conn: psycopg.Connection[Any]) -> None:
    write_frames(conn, "groups", group_rows([GID], members_count=pd.array([10], dtype="Int64")))
    write_frames(conn, "posts", post_rows(GID, [1], views_count=pd.array([5], dtype="Int64")))
    write_frames(conn, "comments", comment_rows(GID, 1, [10, 11]))


def test_edit_delete_restore_make_revisions_with_the_previous_version(
    conn: psycopg.Connection[Any], postgres_resource: PostgresResource
) -> None:
    _setup(conn)
    assert _count(conn, "comment_revisions") == 0

    edited = comment_rows(GID, 1, [10, 11])
    edited.loc[0, "text"] = "кофе был холодный (ред.)"
    write_frames(conn, "comments", edited)
    # The same read again: nothing changed, nothing recorded.
    write_frames(conn, "comments", edited)
    assert _count(conn, "comment_revisions") == 1

    write_frames(conn, "comments", _tomb(10))
    write_frames(conn, "comments", _tomb(10))
    live = conn.execute(
        "SELECT text, from_id, is_deleted FROM vk.comments WHERE id = 10"
    ).fetchone()
    # A deleted comment keeps its last known text and author next to the flag.
    assert live == ("кофе был холодный (ред.)", 1010, True)

    write_frames(conn, "comments", edited.iloc[[0]].assign(is_deleted=False))
    history = conn.execute(
        "SELECT version, kind, is_deleted, text, valid_from <= coalesce(valid_to, 'infinity')"
        " FROM vk.comment_history(%s, 10)",
        (-GID,),
    ).fetchall()
    assert history == [
        (1, "edited", False, "comment 10", True),
        (2, "deleted", False, "кофе был холодный (ред.)", True),
        (3, "restored", True, "кофе был холодный (ред.)", True),
        (4, "current", False, "кофе был холодный (ред.)", True),
    ]
    bounds = conn.execute(
        "SELECT valid_from, valid_to FROM vk.comment_revisions WHERE id = 10 ORDER BY valid_to"
    ).fetchall()
    # Versions follow one another without gaps.
    assert [b[0] for b in bounds[1:]] == [b[1] for b in bounds[:-1]]
    assert _count(conn, "comment_revisions") == 3


def test_attachments_change_is_an_edit_and_other_fields_are_not(
    conn: psycopg.Connection[Any],
) -> None:
    _setup(conn)
    rows = comment_rows(GID, 1, [10], likes_count=pd.array([3], dtype="Int64"))
    rows["raw"] = [{"attachments": [{"type": "photo"}], "likes": {"count": 3}}]
    write_frames(conn, "comments", rows)  # attachments appear: an edit
    rows["likes_count"] = pd.array([9], dtype="Int64")
    rows["raw"] = [{"attachments": [{"type": "photo"}], "likes": {"count": 9}}]
    write_frames(conn, "comments", rows)  # only likes moved: no revision
    kinds = conn.execute("SELECT kind, attachments FROM vk.comment_revisions").fetchall()
    assert kinds == [("edited", None)]


def test_a_rolled_back_change_leaves_no_revision(conn: psycopg.Connection[Any]) -> None:
    _setup(conn)
    edited = comment_rows(GID, 1, [10], text="другой текст")
    with pytest.raises(RuntimeError), conn.transaction():
        write_frames(conn, "comments", edited)
        assert _count(conn, "comment_revisions") == 1
        raise RuntimeError("crash after the write")
    assert _count(conn, "comment_revisions") == 0
    text = conn.execute("SELECT text FROM vk.comments WHERE id = 10").fetchone()
    assert text == ("comment 10",)


def test_post_edit_and_deletion_through_the_update_only_path(
    conn: psycopg.Connection[Any],
) -> None:
    _setup(conn)
    edit = post_rows(GID, [1], views_count=pd.array([5], dtype="Int64"), text="post 1 UPD")
    edit["edited"] = pd.Timestamp("2024-01-02", tz="UTC")
    write_frames(conn, "posts", edit)
    # A post tombstone lacks `date` (NOT NULL), so it can only update: the other statement path.
    tomb = pd.DataFrame(
        {
            "owner_id": pd.array([-GID], dtype="Int64"),
            "id": pd.array([1], dtype="Int64"),
            "group_id": pd.array([GID], dtype="Int64"),
            "is_deleted": [True],
        }
    )
    write_frames(conn, "posts", tomb)
    write_frames(conn, "posts", tomb)
    rows = conn.execute(
        "SELECT kind, is_deleted, text, edited IS NOT NULL FROM vk.post_history(%s, 1)", (-GID,)
    ).fetchall()
    assert rows == [
        ("edited", False, "post 1", False),
        ("deleted", False, "post 1 UPD", True),
        ("current", True, "post 1 UPD", True),
    ]


def test_counter_snapshots_are_appended_only_when_they_change(
    conn: psycopg.Connection[Any],
) -> None:
    _setup(conn)
    assert conn.execute("SELECT views FROM vk.post_counters").fetchall() == [(5,)]
    assert conn.execute("SELECT members_count FROM vk.group_counters").fetchall() == [(10,)]
    same = post_rows(GID, [1], views_count=pd.array([5], dtype="Int64"))
    write_frames(conn, "posts", same)
    write_frames(conn, "posts", same.assign(views_count=pd.array([50], dtype="Int64")))
    write_frames(conn, "posts", same.assign(views_count=pd.array([50], dtype="Int64")))
    # The comment-sync state touches the row without touching its counters.
    sync = same[["owner_id", "id"]].assign(comments_status="ok")
    write_frames(conn, "posts", sync)
    views = conn.execute("SELECT views FROM vk.post_counters ORDER BY observed_at").fetchall()
    assert views == [(5,), (50,)]

    grown = group_rows([GID], members_count=pd.array([12], dtype="Int64"))
    grown["raw"] = [{"counters": {"photos": 3}}]
    write_frames(conn, "groups", grown)
    write_frames(conn, "groups", grown)
    write_frames(conn, "groups", group_rows([GID + 1]))  # nothing known: no snapshot
    series = conn.execute(
        "SELECT members_count, counters FROM vk.group_audience_daily(%s)", (GID,)
    ).fetchall()
    assert series == [(12, {"photos": 3})]
    assert _count(conn, "group_counters") == 2


def test_search_include_deleted_finds_a_deleted_comments_last_text(
    conn: psycopg.Connection[Any], postgres_resource: PostgresResource
) -> None:
    _setup(conn)
    write_frames(conn, "comments", comment_rows(GID, 1, [10], text="пропавший самовар"))
    write_frames(conn, "comments", _tomb(10))
    assert search(postgres_resource, "самовар") == []
    found = search(postgres_resource, "самовар", include_deleted=True)
    assert [(r["comment_id"], r["is_deleted"]) for r in found] == [(10, True)]
