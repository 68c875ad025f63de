"""Seeded emulator worlds the tests and benchmarks share."""

from vk_pipeline.emulator import WorldSpec

# Four groups of every kind; the emulator fixture's session world.
SMALL_WORLD = WorldSpec(seed=7, groups=4, posts=300, comments=6000, special_groups=True)
# Three groups, enough for asset tests to see every path.
ASSETS_WORLD = WorldSpec(seed=5, groups=3, posts=240, comments=4000, special_groups=True)
# Requests per second high enough that tests never hit error 6 unless they lower it.
FAST_RATE = 1000
