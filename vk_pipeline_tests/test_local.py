"""The local setup's pure parts: the demo world dated today, Dagster's storage URL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from vk_pipeline.emulator import World
from vk_pipeline.local import (
    DEMO_WORLD,
    SettingError,
    check_database_url,
    demo_world,
    sqlalchemy_postgres_url,
)


def test_the_demo_world_is_dated_today_with_the_same_content():
    day = date(2026, 3, 14)
    spec = demo_world(day)
    assert spec.now == int(datetime(2026, 3, 14, tzinfo=UTC).timestamp())
    dated, undated = World(spec), World(DEMO_WORLD)
    assert dated.group_ids() == undated.group_ids()
    shift = spec.now - DEMO_WORLD.now
    gid = next(g for g in dated.group_ids() if dated.posts(g))
    a, b = dated.posts(gid), undated.posts(gid)
    assert [p["text"] for p in a] == [p["text"] for p in b]
    assert [p["date"] - q["date"] for p, q in zip(a, b, strict=True)] == [shift] * len(a)
    # Every post lies before the dated "now", as a crawl today would find them.
    assert max(p["date"] for p in a) < spec.now


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/dagster", "postgresql+psycopg2://u:p@db:5432/dagster"),
        ("postgres://u@db/dagster", "postgresql+psycopg2://u@db/dagster"),
        ("postgresql+psycopg://u@db/dagster", "postgresql+psycopg2://u@db/dagster"),
        (
            # The embedded server's socket directory, escaped as SQLAlchemy writes a query.
            "postgresql://postgres:@/dagster?host=/tmp/pg",
            "postgresql+psycopg2://postgres:@/dagster?host=%2Ftmp%2Fpg",
        ),
    ],
)
def test_dagster_storage_urls_use_psycopg2(url: str, expected: str):
    assert sqlalchemy_postgres_url(url) == expected


@pytest.mark.parametrize(
    "bad", ["mysql://u:hunter2@db/x", "host=db password=hunter2 dbname=x", "not-a-url"]
)
def test_a_non_postgres_url_is_refused_without_showing_its_password(bad: str):
    with pytest.raises(ValueError, match="DAGSTER_POSTGRES_URL") as err:
        sqlalchemy_postgres_url(bad)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/x",
        "postgres://u@db/x",
        "postgresql+psycopg://u@db/x",
        "postgresql://postgres:@/vk_pipeline?host=/tmp/pgdata",  # the embedded server's socket
        "host=db port=5432 dbname=x user=u",
    ],
)
def test_database_urls_of_every_form_pass(url: str):
    check_database_url(url)


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-url",
        "",
        "mysql://u:hunter2@db/x",
        "host=db password=hunter2 junk",
        "postgresql://u:hunter2@db:port/x",
    ],
)
def test_a_database_url_that_is_none_is_refused_without_its_password(bad: str):
    with pytest.raises(SettingError, match=r"^DATABASE_URL ") as err:
        check_database_url(bad)
    assert "hunter2" not in str(err.value)
