"""Local VK API emulator for tests, the demo and benchmarks.

A real HTTP server (stdlib only) speaking VK API 5.199's wire format over a deterministic
synthetic world. See `vk_pipeline/emulator/README.md` for the reproduced VK behaviour and the
documented choices where VK's behaviour is not known exactly.
"""

from vk_pipeline.emulator.faults import FaultSpec
from vk_pipeline.emulator.server import DEMO_TOKEN, EmulatorServer
from vk_pipeline.emulator.world import World, WorldSpec

__all__ = ["DEMO_TOKEN", "EmulatorServer", "FaultSpec", "World", "WorldSpec"]
