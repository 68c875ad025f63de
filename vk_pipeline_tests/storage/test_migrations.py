"""Schema migrations: fresh, re-run, odd schema names, concurrent starters, the CLI."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest

from vk_pipeline.storage import PostgresResource, load_migrations, migrate, write_frames
from vk_pipeline.storage.__main__ import main as cli
from vk_pipeline.storage.migrations import SCHEMA_PLACEHOLDER, applied_versions, lock_key
from vk_pipeline_tests.fixtures.postgres import group_rows

ALL_VERSIONS = [m.version for m in load_migrations()]


def _tables(url: str, schema: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


def test_migrations_are_ordered_and_parameterised() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert migrations[0].version == 1
    assert all(SCHEMA_PLACEHOLDER in m.sql for m in migrations)
    assert lock_key("vk") == lock_key("vk") != lock_key("vk2")


def test_migrate_from_empty_and_rerun(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        applied = migrate(conn, "vk")
        assert [m.version for m in applied] == [m.version for m in load_migrations()]
        assert migrate(conn, "vk") == []
        assert applied_versions(conn, "vk") == [m.version for m in load_migrations()]
        row = conn.execute(
            "SELECT name, applied_at IS NOT NULL FROM vk.schema_migrations"
        ).fetchone()
        assert row == ("initial", True)
    assert {"comments", "groups", "posts", "schema_migrations"} <= set(_tables(database_url, "vk"))


@pytest.mark.parametrize("schema", ['Odd "Schema"; DROP SCHEMA public; --', "Ünïcode схема"])
def test_schema_name_is_quoted(database_url: str, schema: str) -> None:
    resource = PostgresResource(database_url=database_url, schema_name=schema)
    assert resource.ensure_schema() == ALL_VERSIONS
    assert resource.ensure_schema() == []
    assert "groups" in _tables(database_url, schema)
    assert _tables(database_url, "vk") == []
    with resource.connection() as conn:
        write_frames(conn, "groups", group_rows([1]), schema=schema)
    assert resource.read_frame("groups")["id"].tolist() == [1]
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'"
        ).fetchone() == (1,)


def test_invalid_schema_name(database_url: str) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(ValueError):
        migrate(conn, "")


def test_concurrent_threads_migrate_once(database_url: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            with psycopg.connect(database_url) as conn:
                barrier.wait()
                results.append([m.version for m in migrate(conn, "vk")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [[], [], [], ALL_VERSIONS]


def test_concurrent_processes_via_cli(database_url: str) -> None:
    command = [
        sys.executable,
        "-m",
        "vk_pipeline.storage",
        "migrate",
        "--database-url",
        database_url,
    ]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    joined = " ".join(out for out, _ in outputs)
    assert joined.count(f"migrated to version(s) {ALL_VERSIONS}") == 1
    assert joined.count("is up to date") == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM vk.schema_migrations").fetchone() == (
            len(ALL_VERSIONS),
        )


def test_cli_reports_unreachable_without_password(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(["migrate", "--database-url", "postgresql://u:hunter2@127.0.0.1:1/nowhere"])
    assert code == 2
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and "nowhere" in err and "hunter2" not in err
