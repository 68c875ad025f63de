from vk_pipeline.vk import SlidingWindowLimiter


class FakeClock:
    """Deterministic time for the limiter's own arithmetic (the HTTP behaviour is tested live)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def sends(limiter: SlidingWindowLimiter, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        limiter.acquire()
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
    times = sends(limiter, clock, 3)
    assert times == [0.0, 2.0, 4.0]


def test_penalty_holds_every_request_back():
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.penalize(1.1)
    limiter.acquire()
    assert clock.now >= 1.1
