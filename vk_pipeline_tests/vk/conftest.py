from collections.abc import Callable

import pytest

from vk_pipeline.budget import SlidingWindowLimiter
from vk_pipeline.emulator import DEMO_TOKEN, EmulatorServer
from vk_pipeline.vk import VKClient


@pytest.fixture
def make_client() -> Callable[..., VKClient]:
    """A client for an emulator server; fast backoff so retry tests take milliseconds."""
    clients: list[VKClient] = []

    def make(
        server: EmulatorServer, *, rate: float | None = None, token: str = DEMO_TOKEN, **kw
    ) -> VKClient:
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_cap", 0.05)
        client = VKClient(
            access_token=token,
            api_base_url=server.base_url,
            limiter=SlidingWindowLimiter(rate or float(server.rate), margin=0.02),
            **kw,
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
