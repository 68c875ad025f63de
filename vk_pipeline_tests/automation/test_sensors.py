"""`group_file_sensor` on built contexts with a real instance, Postgres and the emulator."""

from __future__ import annotations

import shutil

import dagster as dg
import psycopg

from vk_pipeline.automation import build_group_file_sensor
from vk_pipeline.automation.chunks import CHUNK_TAG, MAX_GROUPS_PER_RUN
from vk_pipeline.automation.events import GROUP_LISTS_KEY
from vk_pipeline.automation.sensors import FILE_TAG, LIST_TAG, SHA_TAG, Cursor
from vk_pipeline.emulator import FaultSpec
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.testing.corpus import PNG_BYTES
from vk_pipeline_tests.automation.conftest import Harness


def ids(h: Harness, start: int, count: int) -> list[int]:
    return h.world.group_ids()[start : start + count]


def listing(group_ids: list[int], junk: tuple[str, ...] = ()) -> str:
    return "\n".join([*(f"club{g}" for g in group_ids), *junk]) + "\n"


def skip(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message or "" if result.skip_reason else ""


def event_for(result: dg.SensorResult, file_name: str):
    [event] = [e for e in result.asset_events if e.metadata["file"].value == file_name]
    assert event.asset_key == GROUP_LISTS_KEY
    return event


def test_a_dropped_file_registers_its_groups_and_loads_only_the_new_ones(harness: Harness):
    groups = ids(harness, 0, 100)
    known = [str(g) for g in groups[:2]]
    harness.instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, known)
    junk = ("id12345", "https://t.me/coffee", "Кофейня без ссылки")
    harness.drop("coffee shops.txt", listing(groups, junk))

    result, runs = harness.step()

    new = [str(g) for g in groups[2:]]
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [new]
    assert sorted(k for run in runs for k in harness.keys_of(run)) == sorted(new)
    assert len(runs) == 2 and all(len(harness.keys_of(r)) <= MAX_GROUPS_PER_RUN for r in runs)
    [sha] = {r.tags[SHA_TAG] for r in runs}
    assert {r.tags[FILE_TAG] for r in runs} == {"coffee shops.txt"}
    assert {r.tags[LIST_TAG] for r in runs} == {"coffee shops"}
    assert [r.run_key for r in runs] == [f"grouplist-{sha[:16]}-001", f"grouplist-{sha[:16]}-002"]
    assert [r.tags[CHUNK_TAG] for r in runs] == ["1/2", "2/2"]

    event = event_for(result, "coffee shops.txt")
    assert isinstance(event, dg.AssetMaterialization)
    assert event.metadata["groups_new"].value == 98
    assert event.metadata["groups_known"].value == 2
    assert event.metadata["rejected_lines"].value == 3
    table = event.metadata["rejections"].value
    for line in (101, 102, 103):
        assert f"| {line} |" in table
    assert "user's profile" in table and "t.me" in table

    # Nothing left to do on the next tick.
    again, more = harness.step()
    assert more == [] and not again.asset_events and not again.dynamic_partitions_requests
    assert again.skip_reason is not None


def test_same_content_twice_or_renamed_launches_nothing(harness: Harness):
    path = harness.drop("cafes.txt", listing(ids(harness, 0, 5)))
    _, runs = harness.step()
    assert len(runs) == 1
    shutil.copy(path, harness.folder / "cafes (1).txt")
    path.rename(harness.folder / "кофейни.txt")
    result, runs = harness.step()
    assert runs == [] and not result.asset_events and not result.dynamic_partitions_requests
    assert harness.registry.unreported() == []


def test_a_lost_tick_is_reported_again_with_the_same_run_keys(harness: Harness):
    harness.drop("a.txt", listing(ids(harness, 0, 60)))
    first = harness.tick()
    # The daemon added partitions and launched the runs, then died before storing the cursor.
    launched = harness.apply(first, keep_cursor=False)
    assert len(launched) == 2

    second = harness.tick()  # same (old) cursor: the file is reported again ...
    assert [r.run_key for r in second.run_requests] == [r.run_key for r in first.run_requests]
    assert harness.apply(second) == []  # ... and its run keys launch nothing new

    third, runs = harness.step()  # the second tick's cursor confirms the file
    assert runs == [] and not third.asset_events
    # A sensor restarted from scratch (no cursor at all) reads nothing again either.
    fresh = harness.tick(cursor=None)
    assert (
        not fresh.run_requests and not fresh.asset_events and not fresh.dynamic_partitions_requests
    )


def test_an_edited_file_is_read_again_and_loads_what_it_adds(harness: Harness):
    first, extra = ids(harness, 0, 4), ids(harness, 4, 3)
    harness.drop("list.txt", listing(first))
    harness.step()
    harness.drop("list.txt", listing(first + extra), age=30)  # edited: new content, new mtime
    result, runs = harness.step()
    assert [harness.keys_of(r) for r in runs] == [[str(g) for g in extra]]
    assert event_for(result, "list.txt").metadata["groups_known"].value == len(first)
    assert harness.registry.list_members("list") == first + extra


def test_a_bad_file_never_fails_the_tick_nor_blocks_the_others(harness: Harness):
    good = ids(harness, 10, 3)
    harness.drop("IMG_2041.png", PNG_BYTES)
    harness.drop("notes.txt", "Купить кофе\nПозвонить маме\n")
    harness.drop("good.txt", listing(good))
    result, runs = harness.step()
    assert [k for r in runs for k in harness.keys_of(r)] == [str(g) for g in good]
    picture = event_for(result, "IMG_2041.png")
    assert isinstance(picture, dg.AssetObservation)
    assert "PNG image" in picture.metadata["file_error"].value
    notes = event_for(result, "notes.txt")
    assert notes.metadata["rejected_lines"].value == 2 and notes.metadata["groups_found"].value == 0


def test_files_still_being_written_wait_for_the_next_tick(harness: Harness):
    harness.sensor = build_group_file_sensor(folder=harness.folder, settle=30)
    path = harness.drop("fresh.txt", listing(ids(harness, 0, 2)), age=0)
    result, runs = harness.step()
    assert runs == [] and "still being written" in skip(result)
    assert harness.registry.unreported() == []
    harness.drop(path.name, path.read_bytes(), age=60)
    _, runs = harness.step()
    assert len(runs) == 1


def test_vk_unavailable_defers_the_file_without_failing(harness: Harness):
    harness.server.set_faults("*", FaultSpec(http_5xx=1.0))
    harness.drop("later.txt", listing(ids(harness, 0, 2)))
    result, runs = harness.step()
    assert runs == [] and "VK unavailable" in skip(result)
    assert harness.registry.unreported() == [] and harness.registry.known_paths() == {}
    harness.server.clear_faults()
    _, runs = harness.step()
    assert [k for r in runs for k in harness.keys_of(r)] == [str(g) for g in ids(harness, 0, 2)]


def test_a_removed_group_is_not_brought_back_by_its_old_file(harness: Harness):
    groups = ids(harness, 0, 3)
    path = harness.drop("a.txt", listing(groups))
    harness.step()
    gone = str(groups[1])
    harness.instance.delete_dynamic_partition(GROUP_PARTITIONS_NAME, gone)
    harness.registry.mark_removed([groups[1]])
    harness.drop(path.name, path.read_bytes(), age=5)  # touched, same content
    _result, runs = harness.step()
    assert runs == [] and gone not in harness.partitions()


def test_ten_files_cost_one_vk_request(harness: Harness):
    for i in range(10):
        harness.drop(f"list{i}.txt", listing(ids(harness, i * 10, 12)))  # overlapping by 2
    harness.server.reset_stats()
    result, runs = harness.step()
    assert harness.server.stats()["http_requests"] == 1
    all_new = [str(g) for g in ids(harness, 0, 102)]
    assert sorted(k for r in runs for k in harness.keys_of(r)) == sorted(all_new)
    assert sum(e.metadata["groups_new"].value for e in result.asset_events) == 102


def test_rejections_are_stored_per_file(harness: Harness, registry_db: str):
    harness.drop("mixed.txt", "club100001\nid7\nvk.com/feed\n")
    harness.step()
    with psycopg.connect(registry_db) as conn:
        stored = conn.execute(
            "SELECT f.file_name, r.line, r.reason FROM vk.group_file_rejections r "
            "JOIN vk.group_files f ON f.sha256 = r.file_sha256 ORDER BY r.line"
        ).fetchall()
    assert [(name, line) for name, line, _ in stored] == [("mixed.txt", 2), ("mixed.txt", 3)]


def test_cursor_survives_garbage():
    assert Cursor.parse("not json").reported == []
    assert Cursor.parse(Cursor(["a", "b"]).dump()).reported == ["a", "b"]
