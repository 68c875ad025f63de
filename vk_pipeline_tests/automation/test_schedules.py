"""`daily_refresh`: ranged runs keyed by date and chunk, sized by the VK work stored groups cost."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest

from vk_pipeline.automation import build_daily_refresh, daily_refresh
from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.automation.schedules import ENV_CRON, ENV_TIMEZONE, refresh_cron
from vk_pipeline.automation.sizing import MAX_GROUPS_PER_SIZED_RUN, RUN_BUDGET_REQUESTS
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME
from vk_pipeline.storage import PostgresResource

TICK = datetime(2026, 3, 2, 3, 0, tzinfo=ZoneInfo("Europe/Moscow"))


# Nothing listens here: the store cannot be read, and the schedule must still refresh everything.
UNREACHABLE = PostgresResource(
    database_url="postgresql://postgres@127.0.0.1:9/none", connect_timeout=1
)


def evaluate(
    instance: dg.DagsterInstance,
    when: datetime = TICK,
    postgres: PostgresResource = UNREACHABLE,
) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources={"postgres": postgres}
    )
    result = daily_refresh.evaluate_tick(context)
    assert result.skip_message is None
    return list(result.run_requests or [])


def store_walls(postgres: PostgresResource, walls: dict[int, tuple[int, int]]) -> None:
    """Groups listed before, each with `posts` recent posts of `comments` comments each."""
    with psycopg.connect(postgres.resolved_url()) as conn:
        for gid, (posts, comments) in walls.items():
            conn.execute("INSERT INTO vk.groups (id, status) VALUES (%s, 'open')", (gid,))
            conn.execute(
                "INSERT INTO vk.wall_listings (group_id, listed_at) VALUES (%s, now())", (gid,)
            )
            conn.execute(
                "INSERT INTO vk.posts (owner_id, id, group_id, date, comments_count)"
                " SELECT -%(g)s, i, %(g)s, %(day)s, %(c)s FROM generate_series(1, %(n)s) i",
                {"g": gid, "n": posts, "c": comments, "day": TICK},
            )


@pytest.mark.parametrize("store", ["empty", "unreachable"])
def test_a_thousand_new_groups_make_twenty_runs_covering_each_group_once(
    store: str, postgres_resource: PostgresResource
):
    keys = [str(100_000 + i) for i in range(1000)]
    postgres = postgres_resource if store == "empty" else UNREACHABLE
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        requests = evaluate(instance, postgres=postgres)
        assert len(requests) <= 20
        covered: list[str] = []
        for r in requests:
            lo, hi = keys.index(r.tags[RANGE_START_TAG]), keys.index(r.tags[RANGE_END_TAG])
            assert hi - lo + 1 <= 50
            covered.extend(keys[lo : hi + 1])
        assert covered == keys
        assert [r.run_key for r in requests] == [
            f"refresh-2026-03-02-{n:03d}" for n in range(1, 21)
        ]
        # Evaluating the same tick again asks for exactly the same run keys: the scheduler's
        # run-key check then launches nothing (test_daemon.py runs that path).
        assert [r.run_key for r in evaluate(instance, postgres=postgres)] == [
            r.run_key for r in requests
        ]


def test_stored_groups_are_sized_by_their_expected_vk_work(postgres_resource: PostgresResource):
    # 1,200 quiet groups (3 posts without comments), then a busy one whose recent posts hold
    # more comment pages than a run's budget, then 60 new groups.
    quiet = {100_000 + i: (3, 0) for i in range(1200)}
    busy = {200_000: (400, 1500)}  # 400 posts x 15 pages = 240 requests of recent comments
    store_walls(postgres_resource, {**quiet, **busy})
    keys = [str(g) for g in [*quiet, *busy]] + [str(300_000 + i) for i in range(60)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        requests = evaluate(instance, postgres=postgres_resource)
    sizes = [int(r.tags["vk_pipeline/groups"]) for r in requests]
    # Quiet groups: as few runs as the cap allows, of even size; the busy group alone; new ones
    # at most 50 a run.
    quiet_runs = math.ceil(1200 / MAX_GROUPS_PER_SIZED_RUN)
    assert sizes[:quiet_runs] == [1200 // quiet_runs] * quiet_runs
    busy_run = requests[quiet_runs]
    assert busy_run.tags[RANGE_START_TAG] == busy_run.tags[RANGE_END_TAG] == "200000"
    assert len(sizes) == quiet_runs + 1 + 2 and sum(sizes[-2:]) == 60
    assert all(size <= 50 for size in sizes[-2:])
    assert RUN_BUDGET_REQUESTS < 240


def test_the_date_is_the_tick_date_in_moscow():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, ["1"])
        # 23:30 UTC on March 1st is already March 2nd in Moscow.
        late = datetime(2026, 3, 1, 23, 30, tzinfo=ZoneInfo("UTC"))
        [request] = evaluate(instance, late)
        assert request.run_key == "refresh-2026-03-02-001"


def test_no_groups_skips_with_a_hint():
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=TICK, resources={"postgres": UNREACHABLE}
        )
        result = daily_refresh.evaluate_tick(context)
        assert result.run_requests == [] or result.run_requests is None
        assert "groups add" in (result.skip_message or "")


def test_defaults_and_configuration(monkeypatch):
    assert daily_refresh.cron_schedule == "0 3 * * *"
    assert daily_refresh.execution_timezone == "Europe/Moscow"
    assert daily_refresh.default_status == dg.DefaultScheduleStatus.RUNNING
    monkeypatch.setenv(ENV_CRON, "30 4 * * 1-5")
    monkeypatch.setenv(ENV_TIMEZONE, "Asia/Yekaterinburg")
    configured = build_daily_refresh()
    assert configured.cron_schedule == "30 4 * * 1-5"
    assert configured.execution_timezone == "Asia/Yekaterinburg"


@pytest.mark.parametrize(
    "name, value", [(ENV_CRON, "every day"), (ENV_TIMEZONE, "Moscow/Red_Square")]
)
def test_bad_configuration_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        build_daily_refresh()
    monkeypatch.delenv(name)
    assert refresh_cron() == "0 3 * * *"


def test_keys_that_are_not_group_ids_are_in_no_run():
    # 10 groups, a key typed by hand into the UI in the middle and one at the end.
    keys = [str(100_001 + i) for i in range(5)] + ["football_perm"]
    keys += [str(100_006 + i) for i in range(5)] + ["-5"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        requests = evaluate(instance)
        covered: list[str] = []
        for r in requests:
            lo, hi = keys.index(r.tags[RANGE_START_TAG]), keys.index(r.tags[RANGE_END_TAG])
            covered.extend(keys[lo : hi + 1])
        assert covered == [k for k in keys if k.isdigit()]
        assert len(requests) == 2


def test_only_bad_keys_skip_naming_them():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, ["football_perm"])
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=TICK, resources={"postgres": UNREACHABLE}
        )
        result = daily_refresh.evaluate_tick(context)
        assert not result.run_requests
        assert "football_perm" in (result.skip_message or "")
