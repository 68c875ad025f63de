"""The in-process limiter's arithmetic on a fake clock (its HTTP behaviour is tested live)."""

import threading
import time

from vk_pipeline.budget import SlidingWindowLimiter


class FakeClock:
    """Deterministic time for the limiter's own arithmetic."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def sends(limiter: SlidingWindowLimiter, clock: FakeClock, n: int, keys=("a",)) -> list[float]:
    times = []
    for _ in range(n):
        limiter.acquire(list(keys))
        times.append(clock.now)
    return times


def test_never_more_than_rate_in_any_window_and_no_idle_budget():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, margin=0.05, clock=clock, sleep=clock.sleep)
    times = sends(limiter, clock, 30)
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 1.05 - 1e-9
    # The budget is used: 30 sends take 9 windows of 1.05 s, not more.
    assert times[-1] <= 9 * 1.05 + 1e-9


def test_fractional_rate_spreads_requests():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(0.5, margin=0.0, clock=clock, sleep=clock.sleep)
    assert sends(limiter, clock, 3) == [0.0, 2.0, 4.0]


def test_penalty_holds_every_request_of_that_key_back():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.acquire(["a"])
    limiter.penalize("a", 1.1)
    assert limiter.acquire(["a", "b"]) == "b"  # the other token is not held back
    assert clock.now == 0.0
    limiter.acquire(["a"])
    assert clock.now >= 1.1


def test_several_keys_multiply_the_budget_and_each_keeps_its_own():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, margin=0.0, clock=clock, sleep=clock.sleep)
    keys = ["a", "b", "c"]
    used = [limiter.acquire(keys) for _ in range(9)]
    assert clock.now == 0.0  # 9 sends at once: 3 per key
    assert sorted(used) == sorted(keys * 3)
    limiter.acquire(keys)
    assert clock.now == 1.0


def test_a_key_out_of_quota_is_skipped_for_that_method_only():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(100, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.exhaust("a", "wall.get", 3600, "error 29")
    assert {limiter.acquire(["a", "b"], {"wall.get"}) for _ in range(10)} == {"b"}
    assert limiter.acquire(["a"], {"wall.get"}) is None
    assert limiter.acquire(["a"], {"wall.getComments"}) == "a"
    assert 3599 <= limiter.quota_resets(["a"], "wall.get") <= 3600
    assert limiter.quota_resets(["a", "b"], "wall.get") is None
    clock.now += 3601
    assert limiter.acquire(["a"], {"wall.get"}) == "a"


def test_threads_waiting_together_are_served_in_turn():
    limiter = SlidingWindowLimiter(20, margin=0.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            limiter.acquire(["a"])
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) == 40
    for i in range(len(stamps) - 20):
        assert stamps[i + 20] - stamps[i] >= 1.0 - 0.01


def test_a_slot_missed_by_a_late_wake_up_is_given_up_for_a_fresh_one():
    clock = FakeClock()
    late = [0.5]

    def sleep(seconds: float) -> None:  # the first sleep overshoots by half a second
        clock.now += seconds + (late.pop() if late else 0.0)

    limiter = SlidingWindowLimiter(3, margin=0.0, clock=clock, sleep=sleep)
    for _ in range(3):
        limiter.acquire(["a"])
    limiter.acquire(["a"])  # reserved 1.0, woke at 1.5: 1.0 is left unused, 1.5 taken
    assert clock.now == 1.5
    assert list(limiter._keys["a"].sent) == [0.0, 1.0, 1.5]
    # The abandoned slot still counts: the window from 1.0 holds 1.0, 1.5 and one more.
    limiter.acquire(["a"])
    assert clock.now == 1.5
    limiter.acquire(["a"])
    assert clock.now == 2.0
