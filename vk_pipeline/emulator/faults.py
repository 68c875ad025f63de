"""Seeded fault injection for the emulator (transport failures and retryable VK errors).

Every HTTP request to a method with a spec draws the same number of variates (and every call
inside execute the same smaller number), whatever the probabilities, so changing one fault's
rate does not reshuffle when the others happen.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any

# Retryable API errors the injector can produce instead of the real answer.
INJECTED_ERRORS: dict[int, str] = {
    1: "Unknown error occurred",
    6: "Too many requests per second",
    9: "Flood control",
    10: "Internal server error",
}


HTTP_5XX_STATUSES = (500, 502, 503, 504)
REQUEST_DRAWS = 10  # variates drawn per HTTP request with a spec
INNER_DRAWS = 3  # variates drawn per call inside execute with a spec


@dataclass(frozen=True)
class FaultSpec:
    """Per-request probabilities (0..1) of each fault; they are drawn independently.

    Transport faults (one at most per request, in this order): `http_5xx`, `non_json`, `drop`,
    `truncated`. `slow` combines with any of them. API errors (one at most, in this order):
    `error_6` (request level only), `error_1`, `error_9`, `error_10` (also per call inside
    execute).
    """

    http_5xx: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 5.0
    drop: float = 0.0
    non_json: float = 0.0
    truncated: float = 0.0
    error_1: float = 0.0
    error_6: float = 0.0
    error_9: float = 0.0
    error_10: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "slow_seconds":
                if not value >= 0:
                    raise ValueError(f"FaultSpec.slow_seconds must be >= 0, got {value!r}")
            elif not 0 <= value <= 1:
                raise ValueError(
                    f"FaultSpec.{f.name} must be a probability in [0, 1], got {value!r}"
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in data.items()})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Decision:
    """What to do with one request; transport faults are mutually exclusive."""

    transport: str | None = None  # "http_5xx" | "non_json" | "drop" | "truncated"
    status: int = 200
    slow_seconds: float = 0.0
    error_code: int | None = None
    cut: float = 0.5  # for "truncated": the fraction of the body that is sent


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"faults:{seed}")
        self._lock = threading.Lock()
        self._specs: dict[str, FaultSpec] = {}

    def set(self, method: str, spec: FaultSpec) -> None:
        with self._lock:
            self._specs[method] = spec

    def clear(self, method: str | None = None) -> None:
        with self._lock:
            if method is None:
                self._specs.clear()
            else:
                self._specs.pop(method, None)

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {m: s.to_dict() for m, s in self._specs.items()}

    def _spec(self, method: str) -> FaultSpec | None:
        return self._specs.get(method) or self._specs.get("*")

    def decide(self, method: str) -> Decision:
        """Faults for one HTTP request to `method` (a specific spec wins over "*")."""
        d = Decision()
        with self._lock:
            spec = self._spec(method)
            if spec is None:
                return d
            # Always draw the same number of variates so one fault's probability does not
            # shift the sequence seen by the others.
            r = [self._rng.random() for _ in range(REQUEST_DRAWS)]
        if r[0] < spec.http_5xx:
            d.transport = "http_5xx"
            d.status = HTTP_5XX_STATUSES[min(3, int(r[0] / spec.http_5xx * 4))]
        elif r[1] < spec.non_json:
            d.transport = "non_json"
        elif r[2] < spec.drop:
            d.transport = "drop"
        elif r[3] < spec.truncated:
            d.transport = "truncated"
            d.cut = r[9]
        if r[4] < spec.slow:
            d.slow_seconds = spec.slow_seconds
        if r[5] < spec.error_6:
            d.error_code = 6
        else:
            d.error_code = self._pick_error(spec, r[6:9])
        return d

    def inner_error(self, method: str) -> int | None:
        """Injected API error for a call made inside execute: error_1/9/10 only (error 6 is
        the per-request rate limit, and execute is one request)."""
        with self._lock:
            spec = self._spec(method)
            if spec is None:
                return None
            r = [self._rng.random() for _ in range(INNER_DRAWS)]
        return self._pick_error(spec, r)

    @staticmethod
    def _pick_error(spec: FaultSpec, r: list[float]) -> int | None:
        if r[0] < spec.error_1:
            return 1
        if r[1] < spec.error_9:
            return 9
        if r[2] < spec.error_10:
            return 10
        return None
