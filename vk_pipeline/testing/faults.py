"""Fault mixes the tests and benchmarks inject into the emulator."""

from vk_pipeline.emulator import FaultSpec

# ~10 % of requests fail, spread over every kind the emulator injects. Inside execute, errors
# 1/9/10 are drawn per inner call, so packs see them more often than whole requests do.
SOAK = FaultSpec(
    http_5xx=0.012,
    slow=0.012,
    slow_seconds=1.5,
    drop=0.012,
    non_json=0.012,
    truncated=0.012,
    error_1=0.012,
    error_6=0.012,
    error_9=0.012,
    error_10=0.012,
)
