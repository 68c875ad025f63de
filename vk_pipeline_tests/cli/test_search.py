"""`python -m vk_pipeline search`: arguments, output, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from vk_pipeline.storage import PostgresResource
from vk_pipeline_tests.cli.conftest import Ran, cli
from vk_pipeline_tests.test_search import DELETED, TEXTS, write


@pytest.fixture
def pg(postgres_resource: PostgresResource) -> PostgresResource:
    write(postgres_resource, TEXTS, DELETED)
    return postgres_resource


def search(pg: PostgresResource, *argv: str) -> Ran:
    return cli("search", "--database-url", pg.database_url or "", *argv)


def comment_ids(out: str) -> set[int]:
    return {
        int(line.split("reply=")[1].split()[0]) for line in out.splitlines() if "reply=" in line
    }


def test_prints_group_link_date_author_and_snippet(pg):
    ran = search(pg, "кофе -чай", "--group", "3", "--order", "date")
    assert (ran.code, ran.err) == (0, "")
    lines = ran.out.splitlines()
    assert lines[0] == (
        "1. group 3  https://vk.com/wall-3_10?reply=7  2024-03-07 00:00 UTC  author https://vk.com/id1007"
        f"  rank {0.0607927:.4f}"
    )
    assert lines[1] == "   **Кофе** хороший, но дорогой"
    assert lines[2].startswith("2. group 3  https://vk.com/wall-3_10?reply=6")
    assert lines[-1] == "2 result(s), newest first"


def test_pages_with_after(pg):
    ran = search(pg, "кофе", "--limit", "2", "--order", "rank")
    assert ran.code == 0
    cursor = ran.out.splitlines()[-1].split("--after ")[1]
    data = json.loads(search(pg, "кофе", "--limit=2", "--after", cursor, "--json").out)
    first, second = comment_ids(ran.out), {r["comment_id"] for r in data["results"]}
    assert first | second == {3, 5, 6, 7} and not first & second
    assert data["next_cursor"] == data["results"][-1]["cursor"]


def test_json_escapes_text_and_marks_highlights(postgres_resource):
    write(postgres_resource, {1: (1, "Символы: <b>не html</b> & кофе", 0)})
    ran = search(
        postgres_resource, "кофе", "--json", "--since", "2024-03-01", "--until", "2024-03-01"
    )
    [row] = json.loads(ran.out)["results"]
    assert row["snippet_html"].endswith("&amp; <b>кофе</b>")
    assert "<b>кофе</b>" not in row["snippet"] and row["snippet"].endswith("& кофе")
    assert row["url"] == "https://vk.com/wall-1_10?reply=1"


@pytest.mark.parametrize(
    "argv",
    [
        ["--", "-чай", "кофе"],  # after --
        ["-чай кофе"],  # one quoted argument that starts with -
        ["-чай", "кофе"],  # separate words
        ["кофе", "-чай"],
        ["-чай", "--order", "date", "кофе"],  # options anywhere
    ],
)
def test_a_query_starting_with_minus_is_an_exclusion_not_an_option(pg, argv):
    ran = search(pg, *argv)
    assert ran.code == 0, ran.err
    assert comment_ids(ran.out) == {3, 6, 7}


def test_no_results_and_posts(pg):
    ran = search(pg, "жираф")
    assert (ran.code, ran.out) == (0, "no results\n")
    pg.execute("UPDATE vk.posts SET text = 'Кофе для всех' WHERE group_id = 1")
    ran = search(pg, "кофе", "--posts")
    assert ran.code == 0 and ran.out.startswith("1. group 1  https://vk.com/wall-1_10  ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["кофе", "--since", "2024-13-01"], "--since: '2024-13-01' is not a date"),
        (["кофе", "--list", "нет"], "unknown group list 'нет'"),
        (["кофе", "--after", "garbage"], "invalid search cursor 'garbage'"),
        (["кофе", "--group", "abc"], "'abc' is not a VK group id"),
        (["кофе", "--group", "99999999999999999999999"], "is not a VK group id (1 to "),
        (["кофе", "--limit", "0"], "--limit: '0' is not a number from 1 to 1,000"),
        (["  "], "the query is empty"),
        (["кофе " * 40_000], "the query is 200,000 characters long; at most 1,000"),
        ([" OR ".join(["кофе"] * 40)], "79 words and operators; at most 32"),
        (["ко\x00фе"], "the query contains a NUL character"),
        (
            ["кофе", "--grup", "3"],
            "No such option '--grup'. Did you mean '--group'? (see python -m vk_pipeline search --help)",
        ),
    ],
)
def test_bad_input_is_one_line_naming_it(pg, argv, message):
    ran = search(pg, *argv)
    assert ran.code == 2
    [line] = ran.err.splitlines()
    assert line.startswith("error: ") and message in line
    assert "psycopg" not in line and ran.exception is None


def test_an_unreachable_database_is_one_line_without_the_password():
    ran = cli("search", "кофе", "--database-url", "postgresql://u:hunter2@127.0.0.1:1/x")
    assert ran.code == 3
    [line] = ran.err.splitlines()
    assert line.startswith("error: --database-url: cannot connect to PostgreSQL at host 127.0.0.1")
    assert "hunter2" not in line


def test_prints_the_authors_name_and_profile_link_once_fetched(pg):
    pg.execute(
        "INSERT INTO vk.authors (id, kind, name, screen_name, fetched_at)"
        " VALUES (1007, 'user', 'Анна Петрова', 'anna_p', now())"
    )
    ran = search(pg, "кофе -чай", "--group", "3", "--order", "date")
    assert "  author Анна Петрова (https://vk.com/anna_p)  " in ran.out.splitlines()[0]
    data = json.loads(search(pg, "кофе -чай", "--group", "3", "--json").out)
    named = [r for r in data["results"] if r["from_id"] == 1007]
    assert named and named[0]["author_name"] == "Анна Петрова"
    assert named[0]["author_url"] == "https://vk.com/anna_p"
