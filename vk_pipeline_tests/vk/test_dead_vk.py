"""A VK that accepts connections and never answers holds a client, and a crawl, for a bounded
total time (`max_unavailable_seconds`), then fails clearly and without step retries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from vk_pipeline.emulator import DEMO_TOKEN
from vk_pipeline.resources import build_resources
from vk_pipeline.testing import crawl
from vk_pipeline.vk import VKFatalError, VKResource


@pytest.fixture
def dead_vk() -> Iterator[str]:
    """A listening socket that accepts and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/method"
    finally:
        stop.set()
        thread.join(timeout=2)
        for s in held:
            s.close()
        server.close()


def test_a_client_gives_up_after_max_unavailable_seconds(dead_vk: str):
    vk = VKResource(
        access_token=DEMO_TOKEN,
        api_base_url=dead_vk,
        timeout_seconds=0.5,
        max_attempts=50,
        max_unavailable_seconds=2.0,
    )
    started = time.monotonic()
    with vk.get_client() as client, pytest.raises(VKFatalError) as info:
        client.call("groups.getById", group_ids="1")
    took = time.monotonic() - started
    assert "max_unavailable_seconds=2" in str(info.value)
    assert took < 2.0 + 0.5 + 1.0  # the cap, one request timeout, slack


def test_a_crawl_against_a_dead_vk_fails_once_within_the_bound(dead_vk: str, database_url: str):
    resources = build_resources(
        database_url=database_url,
        tokens=DEMO_TOKEN,
        vk_api_base_url=dead_vk,
        timeout_seconds=0.5,
        max_unavailable_seconds=2.0,
    )
    with dg.instance_for_test() as instance:
        started = time.monotonic()
        result, _ = crawl.crawl(instance, resources, ["1", "2"], {"as_of": "2026-01-01"})
        took = time.monotonic() - started
    assert not result.success
    events = [e.event_type for e in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "max_unavailable_seconds" in str(failure.event_specific_data)
    assert took < 30, took
