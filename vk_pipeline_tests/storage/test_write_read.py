"""The bulk COPY/upsert layer against a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg
import pytest

from vk_pipeline.storage import PostgresResource, StorageError, read_frame, write_frames
from vk_pipeline_tests.fixtures.postgres import comment_rows, group_rows, post_rows

BIG = 2**40 + 7  # VK ids outgrow int32
ODD_TEXTS = [
    "",
    "Привет, мир! Ёжик в тумане",
    "emoji 👍🏽🔥 and ZWJ 👨‍👩‍👧 and RTL שלום",
    "tab\tnewline\ncarriage\rreturn \"quotes\" 'single' back\\slash \\N \\.",
    "'); DROP TABLE vk.groups; --",
    "NULL",
    '{braces,"in",array}',
    "\u2028line sep\u2029 and combining é and \U0001f600",
    " leading and trailing spaces ",
]


@pytest.fixture
def conn(postgres_resource: PostgresResource) -> Iterator[psycopg.Connection[Any]]:
    with postgres_resource.connection() as connection:
        yield connection


def _parents(conn: psycopg.Connection[Any], groups: list[int], posts: dict[int, list[int]]) -> None:
    write_frames(conn, "groups", group_rows(groups))
    for group_id, post_ids in posts.items():
        write_frames(conn, "posts", post_rows(group_id, post_ids))


def _by_key(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return frame.sort_values(key).reset_index(drop=True)


def _cell(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    return value


def test_groups_round_trip_every_type(conn: psycopg.Connection[Any]) -> None:
    n = len(ODD_TEXTS)
    frame = pd.DataFrame(
        {
            "id": pd.array([BIG + i for i in range(n)], dtype="Int64"),
            "screen_name": ODD_TEXTS,
            "name": [None if i % 2 else t for i, t in enumerate(ODD_TEXTS)],
            "status": ["ok"] * n,
            "is_closed": pd.array([0, 1, 2, None] + [0] * (n - 4), dtype="Int64"),
            "members_count": pd.array([2**53 + 1, None] + [i for i in range(n - 2)], dtype="Int64"),
            "verified": pd.array([True, False, None] + [True] * (n - 3), dtype="boolean"),
            "fetch_error_code": pd.array([None] * n, dtype="Int64"),
            "raw": [
                {"nested": {"list": [1, 2.5, None, True], "text": t}, "big": BIG, "empty": {}}
                for t in ODD_TEXTS
            ],
        }
    )
    frame.loc[1, "raw"] = None
    stats = write_frames(conn, "groups", frame)
    assert (stats.rows, stats.inserted, stats.updated, stats.unchanged) == (n, n, 0, 0)

    back = _by_key(read_frame(conn, "groups"), ["id"])
    assert str(back["id"].dtype) == "Int64"
    assert str(back["verified"].dtype) == "boolean"
    assert str(back["first_seen_at"].dtype) == "datetime64[us, UTC]"
    for column in frame.columns:
        expected = [_cell(v) for v in frame[column].tolist()]
        actual = [_cell(v) for v in back[column].tolist()]
        assert actual == expected, column
    # '' and NULL stay apart; untouched optional columns are NULL.
    assert back.loc[0, "screen_name"] == ""
    assert back.loc[1, "name"] is None
    assert back["description"].isna().all()


def test_posts_and_comments_round_trip(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [BIG], {})
    moscow = pd.Timestamp("2024-03-10 23:59:59.123456", tz="Europe/Moscow")
    posts = post_rows(BIG, [1, 2, 3])
    posts["date"] = pd.Series([moscow, moscow + pd.Timedelta(days=400), moscow])
    posts["edited"] = pd.Series([pd.NaT, moscow, pd.NaT], dtype="datetime64[us, UTC]")
    posts["text"] = [ODD_TEXTS[3], "", None]
    posts["attachment_types"] = [["photo", "video"], [], None]
    posts["is_pinned"] = pd.array([True, None, False], dtype="boolean")
    posts["views_count"] = pd.array([2**31 - 1, None, 0], dtype="Int64")
    write_frames(conn, "posts", posts)

    comments = comment_rows(BIG, 1, [10, 11, 12, 13])
    comments["from_id"] = pd.array([-BIG, BIG, None, 1], dtype="Int64")
    comments["parents_stack"] = [[], [10], [10, BIG], None]
    comments["attachment_types"] = [['quote"d', "back\\slash", "NULL", None], ["a,b"], [], None]
    comments["text"] = [ODD_TEXTS[2], ODD_TEXTS[4], "", None]
    comments["raw"] = [[1, "два", {"три": None}], {"deep": {"er": [BIG, -1.5]}}, 42, None]
    write_frames(conn, "comments", comments)

    back_posts = _by_key(read_frame(conn, "posts"), ["id"])
    assert back_posts["date"].tolist() == posts["date"].dt.tz_convert("UTC").tolist()
    assert back_posts.loc[0, "edited"] is pd.NaT
    assert back_posts["attachment_types"].tolist() == [["photo", "video"], [], None]
    assert back_posts["text"].tolist() == [ODD_TEXTS[3], "", None]
    assert [_cell(v) for v in back_posts["is_pinned"]] == [True, None, False]
    assert [_cell(v) for v in back_posts["views_count"]] == [2**31 - 1, None, 0]
    assert back_posts["is_deleted"].tolist() == [False, False, False]  # column default

    back = _by_key(read_frame(conn, "comments"), ["id"])
    assert [_cell(v) for v in back["from_id"]] == [-BIG, BIG, None, 1]
    assert back["parents_stack"].tolist() == [[], [10], [10, BIG], None]
    assert back["attachment_types"].tolist() == comments["attachment_types"].tolist()
    assert back["text"].tolist() == [ODD_TEXTS[2], ODD_TEXTS[4], "", None]
    assert back["raw"].tolist() == comments["raw"].tolist()


def test_str_in_jsonb_column_is_json_text(conn: psycopg.Connection[Any]) -> None:
    frame = group_rows([1, 2])
    frame["raw"] = ['{"a": [1, "б"]}', '"just a string"']
    write_frames(conn, "groups", frame)
    assert read_frame(conn, "groups", ["raw"])["raw"].tolist() == [{"a": [1, "б"]}, "just a string"]
    bad = group_rows([3])
    bad["raw"] = ["not json"]
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        write_frames(conn, "groups", bad)


def test_nul_characters_are_stripped(conn: psycopg.Connection[Any]) -> None:
    frame = group_rows([1])
    frame["name"] = ["a\x00b"]
    frame["raw"] = [{"k\x00": "v\x00w"}]
    write_frames(conn, "groups", frame)
    back = read_frame(conn, "groups")
    assert back.loc[0, "name"] == "ab"
    assert back.loc[0, "raw"] == {"k": "vw"}


def test_epoch_seconds_and_naive_timestamps(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [1], {})
    posts = post_rows(1, [1, 2])
    posts["date"] = [1_700_000_000, 1_700_000_001]
    posts["edited"] = pd.Series(pd.to_datetime(["2024-01-01 10:00", None]))  # naive = UTC
    write_frames(conn, "posts", posts)
    back = _by_key(read_frame(conn, "posts", ["id", "date", "edited"]), ["id"])
    assert back["date"].tolist() == [
        pd.Timestamp(1_700_000_000, unit="s", tz="UTC"),
        pd.Timestamp(1_700_000_001, unit="s", tz="UTC"),
    ]
    assert back.loc[0, "edited"] == pd.Timestamp("2024-01-01 10:00", tz="UTC")


def test_upsert_is_idempotent_and_keeps_last_changed_at(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [1], {1: [1, 2]})
    batch = comment_rows(1, 1, list(range(1, 101)), raw=[{"i": i} for i in range(100)])
    first = write_frames(conn, "comments", batch)
    assert (first.inserted, first.updated) == (100, 0)
    before = read_frame(conn, "comments", ["id", "first_seen_at", "last_changed_at"])

    second = write_frames(conn, "comments", batch)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 100)
    after = read_frame(conn, "comments", ["id", "first_seen_at", "last_changed_at"])
    pd.testing.assert_frame_equal(_by_key(before, ["id"]), _by_key(after, ["id"]))

    changed = batch.copy()
    changed.loc[changed["id"] <= 3, "text"] = "edited"
    changed = pd.concat([changed, comment_rows(1, 2, [500])], ignore_index=True)
    third = write_frames(conn, "comments", changed)
    assert (third.inserted, third.updated, third.unchanged) == (1, 3, 97)
    final = _by_key(read_frame(conn, "comments"), ["id"])
    bumped = final[final["last_changed_at"] > before["last_changed_at"].max()]["id"].tolist()
    assert sorted(bumped) == [1, 2, 3, 500]
    assert (final["first_seen_at"].iloc[:100] == _by_key(before, ["id"])["first_seen_at"]).all()


def test_partial_columns_leave_the_rest(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [1], {1: [1, 2]})
    write_frames(conn, "comments", comment_rows(1, 1, [1, 2, 3], likes_count=[5, 6, 7]))
    seen = pd.Timestamp("2024-05-05", tz="UTC")
    tombstones = pd.DataFrame(
        {
            "owner_id": pd.array([-1], dtype="Int64"),
            "id": pd.array([2], dtype="Int64"),
            "is_deleted": [True],
            "deleted_seen_at": [seen],
        }
    )
    stats = write_frames(conn, "comments", tombstones)
    assert (stats.inserted, stats.updated) == (0, 1)

    annotate = pd.DataFrame(
        {
            "owner_id": pd.array([-1, -1], dtype="Int64"),
            "id": pd.array([1, 2], dtype="Int64"),
            "comments_synced_count": pd.array([3, 0], dtype="Int64"),
            "comments_synced_at": [seen, seen],
            "comments_status": ["ok", "closed"],
        }
    )
    assert write_frames(conn, "posts", annotate).updated == 2

    ghost = tombstones.assign(id=pd.array([99], dtype="Int64"))
    with pytest.raises(StorageError, match="no existing row"):
        write_frames(conn, "comments", ghost)

    back = _by_key(read_frame(conn, "comments"), ["id"])
    assert back["is_deleted"].tolist() == [False, True, False]
    assert back["text"].tolist() == ["comment 1", "comment 2", "comment 3"]
    assert [_cell(v) for v in back["likes_count"]] == [5, 6, 7]
    assert back.loc[1, "deleted_seen_at"] == seen
    posts = _by_key(read_frame(conn, "posts"), ["id"])
    assert posts["text"].tolist() == ["post 1", "post 2"]
    assert posts["comments_status"].tolist() == ["ok", "closed"]


def test_frames_must_carry_the_primary_key(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(StorageError, match="primary key"):
        write_frames(conn, "groups", pd.DataFrame({"status": ["ok"]}))
    with pytest.raises(StorageError, match="no column"):
        write_frames(conn, "groups", group_rows([1], nonsense=[1]))


def test_duplicate_keys_last_wins(conn: psycopg.Connection[Any]) -> None:
    frame = group_rows([1, 2, 1], name=["first", "two", "last"])
    stats = write_frames(conn, "groups", frame)
    assert (stats.rows, stats.inserted) == (2, 2)
    # Across chunks the later chunk wins as well (the fast path falls back to upsert).
    stats = write_frames(
        conn, "groups", iter([group_rows([5], name=["a"]), group_rows([5], name=["b"])])
    )
    assert (stats.rows, stats.inserted, stats.updated) == (2, 1, 1)
    names = dict(read_frame(conn, "groups", ["id", "name"]).itertuples(index=False))
    assert names == {1: "last", 2: "two", 5: "b"}


def test_replace_only_touches_its_partition(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [1, 2], {1: [1], 2: [1]})
    write_frames(conn, "comments", comment_rows(1, 1, [1, 2, 3]))
    write_frames(conn, "comments", comment_rows(2, 1, [1, 2]))
    stats = write_frames(
        conn,
        "comments",
        comment_rows(1, 1, [3, 4], text=["new 3", "new 4"]),
        mode="replace",
        partition_column="group_id",
        partition_values=["1"],
    )
    assert (stats.deleted, stats.inserted) == (3, 2)
    back = read_frame(conn, "comments", ["group_id", "id", "text"])
    assert sorted(back.itertuples(index=False, name=None)) == [
        (1, 3, "new 3"),
        (1, 4, "new 4"),
        (2, 1, "comment 1"),
        (2, 2, "comment 2"),
    ]
    sliced = read_frame(conn, "comments", ["id"], partition_column="group_id", partition_values=[2])
    assert sorted(sliced["id"].tolist()) == [1, 2]
    with pytest.raises(StorageError, match="outside the partition"):
        write_frames(
            conn,
            "comments",
            comment_rows(2, 1, [9]),
            partition_column="group_id",
            partition_values=["1"],
        )


def test_generator_is_one_transaction(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [1], {1: [1]})
    write_frames(conn, "comments", comment_rows(1, 1, [1]))

    def chunks() -> Iterator[pd.DataFrame]:
        yield comment_rows(1, 1, [2, 3])
        yield comment_rows(1, 1, [1], text=["changed"])
        raise RuntimeError("API went away mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        write_frames(conn, "comments", chunks(), chunk_rows=1)
    back = read_frame(conn, "comments", ["id", "text"])
    assert back["id"].tolist() == [1] and back["text"].tolist() == ["comment 1"]

    stats = write_frames(conn, "comments", (comment_rows(1, 1, [i]) for i in range(2, 12)))
    assert (stats.chunks, stats.inserted) == (10, 10)


def test_streamed_memory_bounded_chunks(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [1], {1: [1]})
    stats = write_frames(conn, "comments", comment_rows(1, 1, list(range(1, 1001))), chunk_rows=300)
    assert (stats.chunks, stats.rows, stats.inserted) == (4, 1000, 1000)
    again = write_frames(conn, "comments", comment_rows(1, 1, list(range(1, 1001))), chunk_rows=300)
    assert again.unchanged == 1000


def test_columns_subset_on_read(conn: psycopg.Connection[Any]) -> None:
    _parents(conn, [1], {1: [1, 2, 3]})
    back = read_frame(conn, "posts", ["owner_id", "id", "comments_count"])
    assert list(back.columns) == ["owner_id", "id", "comments_count"]
    assert len(back) == 3
    empty = read_frame(conn, "comments", ["id", "date", "raw"])
    assert len(empty) == 0
    assert [str(t) for t in empty.dtypes] == ["Int64", "datetime64[us, UTC]", "object"]
    with pytest.raises(StorageError):
        read_frame(conn, "posts", ["nope"])


def test_unknown_table_and_bad_partition_key(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        write_frames(conn, "nope", group_rows([1]))
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        read_frame(conn, "groups", partition_column="id", partition_values=["1; DROP TABLE x"])


def test_concurrent_writers_on_different_partitions(postgres_resource: PostgresResource) -> None:
    with postgres_resource.connection() as conn:
        _parents(conn, [1, 2, 3, 4], {g: [1] for g in (1, 2, 3, 4)})
    errors: list[BaseException] = []

    def writer(group_id: int) -> None:
        try:
            for mode in ("upsert", "replace", "upsert"):
                postgres_resource.write_frames(
                    "comments",
                    (comment_rows(group_id, 1, list(range(s, s + 200))) for s in (1, 201, 401)),
                    mode=mode,  # type: ignore[arg-type]
                    partition_column="group_id",
                    partition_values=[str(group_id)],
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(g,)) for g in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    counts = postgres_resource.execute(
        "SELECT group_id, count(*) FROM vk.comments GROUP BY 1 ORDER BY 1"
    )
    assert counts == [(1, 600), (2, 600), (3, 600), (4, 600)]


def test_injection_looking_names_and_values(
    conn: psycopg.Connection[Any], postgres_resource: PostgresResource
) -> None:
    evil = "'); DROP TABLE vk.groups; --"
    write_frames(conn, "groups", group_rows([1], name=[evil], status=[evil]))
    back = read_frame(
        conn, "groups", ["name", "status"], partition_column="id", partition_values=[1]
    )
    assert back.loc[0, "name"] == evil and back.loc[0, "status"] == evil
    with pytest.raises(StorageError):
        write_frames(conn, 'groups"; DROP TABLE vk.groups; --', group_rows([2]))
    assert read_frame(conn, "groups", ["id"])["id"].tolist() == [1]
