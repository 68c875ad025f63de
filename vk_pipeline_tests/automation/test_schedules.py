"""`daily_refresh`: 1,000 registered groups make at most 20 ranged runs, keyed by date and chunk."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from vk_pipeline.automation import build_daily_refresh, daily_refresh
from vk_pipeline.automation.chunks import RANGE_END_TAG, RANGE_START_TAG
from vk_pipeline.automation.schedules import ENV_CRON, ENV_TIMEZONE, refresh_cron
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME

TICK = datetime(2026, 3, 2, 3, 0, tzinfo=ZoneInfo("Europe/Moscow"))


def evaluate(instance: dg.DagsterInstance, when: datetime = TICK) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    result = daily_refresh.evaluate_tick(context)
    assert result.skip_message is None
    return list(result.run_requests or [])


def test_a_thousand_groups_make_twenty_runs_covering_each_group_once():
    keys = [str(100_000 + i) for i in range(1000)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, keys)
        requests = evaluate(instance)
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
        assert [r.run_key for r in evaluate(instance)] == [r.run_key for r in requests]


def test_the_date_is_the_tick_date_in_moscow():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(GROUP_PARTITIONS_NAME, ["1"])
        # 23:30 UTC on March 1st is already March 2nd in Moscow.
        late = datetime(2026, 3, 1, 23, 30, tzinfo=ZoneInfo("UTC"))
        [request] = evaluate(instance, late)
        assert request.run_key == "refresh-2026-03-02-001"


def test_no_groups_skips_with_a_hint():
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
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
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
        result = daily_refresh.evaluate_tick(context)
        assert not result.run_requests
        assert "football_perm" in (result.skip_message or "")
