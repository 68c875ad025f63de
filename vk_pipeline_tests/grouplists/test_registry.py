"""The group-list record on real PostgreSQL: files, rejected lines, lists, registered groups."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from vk_pipeline.emulator import DEMO_TOKEN, World
from vk_pipeline.grouplists import FileReport, GroupRegistry, check_files, parse_bytes
from vk_pipeline.storage import PostgresResource
from vk_pipeline.testing.corpus import Cast, corpus
from vk_pipeline.vk import VKClient, VKResource


@pytest.fixture
def client(emulator) -> Iterator[VKClient]:
    with VKResource(
        access_token=DEMO_TOKEN, api_base_url=emulator.base_url, requests_per_second=1000
    ).get_client() as c:
        yield c


@pytest.fixture
def registry(postgres_resource: PostgresResource) -> GroupRegistry:
    return GroupRegistry(postgres_resource)


def report_for(client: VKClient, text: str | bytes, name: str) -> FileReport:
    data = text.encode() if isinstance(text, str) else text
    [report], _ = check_files([(name, parse_bytes(data, name))], client)
    return report


def rows(database_url: str, query: str, *params) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def test_a_corpus_file_is_recorded_whole(registry, client, small_world: World, database_url):
    rejects = corpus(small_world)[1]
    report = report_for(client, rejects.data, rejects.name)
    record = registry.record(report, tracked=set(), path="/drops/rejects.txt")
    assert record.groups_found == len(rejects.groups) == record.groups_new
    assert record.rejected_count == len(rejects.rejected)
    assert record.new_group_ids == rejects.groups
    assert record.reported_at is None and record.reads == 1
    stored = rows(
        database_url,
        "SELECT line, reason FROM vk.group_file_rejections WHERE file_sha256 = %s ORDER BY line",
        report.sha256,
    )
    assert [line for line, _ in stored] == sorted(rejects.rejected)
    for line, reason in stored:
        assert rejects.rejected[line][0] in reason
    assert registry.list_members("rejects") == rejects.groups
    [lst] = registry.lists()
    assert (lst.name, lst.members, lst.source) == ("rejects", 1, "/drops/rejects.txt")


def test_new_and_known_are_relative_to_the_tracked_groups(registry, client, small_world):
    c = Cast.of(small_world)
    (a, _), (b, _), (d, _) = c.named[:3]
    first = registry.record(report_for(client, f"{a}\n{b}\n", "one.txt"), tracked={a})
    assert (first.groups_new, first.groups_known, first.new_group_ids) == (1, 1, [b])
    second = registry.record(report_for(client, f"{b}\n{d}\n", "two.txt"), tracked={a, b})
    assert (second.groups_new, second.groups_known, second.new_group_ids) == (1, 1, [d])


def test_banned_and_deleted_are_stored_with_their_status(registry, client, small_world):
    c = Cast.of(small_world)
    registry.record(report_for(client, f"club{c.banned}\nclub{c.deleted}\n", "gone.txt"), set())
    status = {g.group_id: g.deactivated for g in registry.registered()}
    assert status == {c.banned: "banned", c.deleted: "deleted"}


def test_an_edited_file_replaces_its_list(registry, client, small_world):
    c = Cast.of(small_world)
    p1, p2 = c.plain[:2]
    registry.record(report_for(client, f"club{p1}\nclub{p2}\n", "cafes.txt"), set())
    registry.record(report_for(client, f"club{p2}\n# p1 moved away\n", "cafes.txt"), {p1, p2})
    assert registry.list_members("cafes") == [p2]
    # Leaving a list does not stop tracking: both stay registered.
    assert {g.group_id for g in registry.registered()} == {p1, p2}


def test_reading_the_same_content_again_counts_the_read(registry, client, small_world):
    report = report_for(client, f"club{small_world.group_ids()[0]}\nid5\n", "again.txt")
    first = registry.record(report, set())
    registry.mark_reported([first.sha256])
    again = registry.record(report, set(), source="cli")
    assert again.reads == 2 and again.reported_at is None and again.run_keys is None
    assert len(registry.rejections(report.sha256)) == 1  # replaced, not doubled
    assert [r.sha256 for r in registry.unreported()] == [report.sha256]


def test_reporting_bookkeeping(registry, client, small_world):
    a = registry.record(report_for(client, f"club{small_world.group_ids()[0]}", "a.txt"), set())
    b = registry.record(report_for(client, f"club{small_world.group_ids()[1]}", "b.txt"), set())
    assert [r.sha256 for r in registry.unreported()] == [a.sha256, b.sha256]
    registry.set_run_keys(a.sha256, ["k-001"])
    registry.mark_reported([a.sha256])
    assert [r.sha256 for r in registry.unreported()] == [b.sha256]
    stored = registry.file(a.sha256)
    assert stored is not None and stored.run_keys == ["k-001"] and stored.reported_at is not None


def test_a_file_error_is_recorded_without_touching_lists(registry, client):
    report = report_for(client, b"\x89PNG\r\n\x1a\n\x00\x00\x00", "IMG.png")
    record = registry.record(report, set())
    assert record.file_error is not None and "PNG" in record.file_error
    assert registry.lists() == [] and registry.registered() == []


def test_removing_keeps_the_row_and_a_new_file_brings_it_back(registry, client, small_world):
    gid = small_world.group_ids()[0]
    registry.record(report_for(client, str(gid), "a.txt"), set())
    registry.mark_removed([gid])
    assert registry.removed_among([gid]) == {gid}
    assert registry.registered() == []
    [removed] = registry.registered(include_removed=True)
    assert removed.group_id == gid and removed.removed_at is not None
    # Another file naming it while it is not tracked registers it again.
    registry.record(report_for(client, f"club{gid}", "b.txt"), tracked=set())
    assert registry.removed_among([gid]) == set()


def test_path_memory(registry):
    registry.remember_paths([("/d/a.txt", 10, 111, "aa"), ("/d/b.txt", 20, 222, "bb")])
    registry.remember_paths([("/d/a.txt", 11, 112, "ab")])
    assert registry.known_paths() == {"/d/a.txt": (11, 112, "ab"), "/d/b.txt": (20, 222, "bb")}
    registry.forget_paths(["/d/b.txt"])
    assert registry.known_paths() == {"/d/b.txt": (20, 222, "bb")}


def test_names_of_registered_groups_resolve_without_vk(registry, client, small_world):
    gid, name = Cast.of(small_world).named[0]
    registry.record(report_for(client, f"@{name}", "a.txt"), set())
    assert registry.ids_for_names([name, "unknown_name"]) == {name: gid}
