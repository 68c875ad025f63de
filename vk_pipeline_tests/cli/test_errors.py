"""Every error a user can cause is one line naming the input; `--debug` shows the traceback."""

from __future__ import annotations

import dagster as dg
import pytest

from vk_pipeline import local
from vk_pipeline_tests.cli.conftest import cli


@pytest.fixture
def instance(monkeypatch) -> dg.DagsterInstance:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "not-a-url",
            "DATABASE_URL is neither a postgresql:// URL nor a libpq key=value string",
        ),
        ("host=db password=hunter2 junk", "DATABASE_URL is neither a postgresql:// URL"),
        ("mysql://u:hunter2@db/x", "DATABASE_URL is not a valid PostgreSQL URL (scheme 'mysql')"),
        ("postgresql://u:hunter2@db:notaport/x", "DATABASE_URL is not a valid PostgreSQL URL"),
    ],
)
def test_a_database_url_that_is_no_url(monkeypatch, instance, url, message):
    monkeypatch.setenv("DATABASE_URL", url)
    ran = cli("groups", "list")
    assert ran.code == 2 and ran.out == ""
    assert ran.err == f"error: {message}{ran.err.split(message, 1)[1]}"
    assert len(ran.err.splitlines()) == 1 and "hunter2" not in ran.err


def test_an_unreachable_database(monkeypatch, instance):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:1/x")
    ran = cli("groups", "list")
    assert ran.code == 3 and ran.out == ""
    [line] = ran.err.splitlines()
    assert line.startswith(
        "error: DATABASE_URL: cannot connect to PostgreSQL at host 127.0.0.1, port 1, "
        "database 'x' as user 'u': "
    )
    assert "Connection refused" in line and "hunter2" not in line


def test_an_unreachable_dagster_storage(monkeypatch, tmp_path, database_url):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((local.PROJECT_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://u:hunter2@127.0.0.1:1/dg")
    ran = cli("groups", "list")
    assert ran.code == 3
    [line] = ran.err.splitlines()
    assert line.startswith(
        "error: Dagster's storage (DAGSTER_POSTGRES_URL: host 127.0.0.1, port 1, database 'dg'): "
        "cannot connect ("
    )
    assert "hunter2" not in line


def test_no_instance_and_no_setup(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    ran = cli("groups", "list")
    assert ran.code == 3
    assert ran.err == (
        f"error: DAGSTER_HOME is not set, nor in {local.setup_path()}: start `make dev`, or "
        "point DAGSTER_HOME at the Dagster instance the daemon uses\n"
    )


def test_no_token_and_no_setup(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("club1\n")
    ran = cli("groups", "check", str(path))
    assert ran.code == 2 and "VK_ACCESS_TOKEN (or VK_ACCESS_TOKENS) is not set" in ran.err


def test_usage_mistakes_are_one_line_too():
    ran = cli("groups", "lst")
    assert ran.code == 2
    assert ran.err == (
        "error: No such command 'lst'. Did you mean 'list'? "
        "(see python -m vk_pipeline groups --help)\n"
    )
    ran = cli("groups", "add")
    assert ran.code == 2 and len(ran.err.splitlines()) == 1


def test_debug_shows_the_traceback(monkeypatch, instance):
    monkeypatch.setenv("DATABASE_URL", "not-a-url")
    assert cli("groups", "list").exception is None  # one line, no traceback
    ran = cli("--debug", "groups", "list")  # the exception itself, raised out of the program
    assert isinstance(ran.exception, local.SettingError)
    assert str(ran.exception).startswith("DATABASE_URL is neither")
