"""The resources every entry point runs with, built in one place.

Definitions, the command line, `make demo` / `make dev`, the tests and the benchmarks all call
`build_resources`, so each of them draws on the same shared Postgres rate budget with the whole
token pool: a `groups add` during a crawl spends the same budget as the crawl. Only what differs
between entry points is a parameter (which database, which VK endpoint, which tokens).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from vk_pipeline.budget.postgres import PostgresRateBudget
from vk_pipeline.storage import PostgresIOManager, PostgresResource
from vk_pipeline.vk import VK_API_URL, VKClient, VKResource
from vk_pipeline.vk.vkid import VK_ID_URL

ENV_TOKENS = "VK_ACCESS_TOKENS"
ENV_TOKEN = "VK_ACCESS_TOKEN"
ENV_API_BASE_URL = "VK_API_BASE_URL"
ENV_SERVICE_RATE = "VK_SERVICE_RATE"
ENV_VK_ID_REFRESH_TOKEN = "VK_ID_REFRESH_TOKEN"
ENV_VK_ID_CLIENT_ID = "VK_ID_CLIENT_ID"
ENV_VK_ID_DEVICE_ID = "VK_ID_DEVICE_ID"
ENV_VK_ID_URL = "VK_ID_URL"
ENV_SECRET_KEY = "VK_PIPELINE_SECRET_KEY"


def token_setting() -> dg.EnvVar:
    """The tokens as a secret Dagster resolves at launch: the pool (`VK_ACCESS_TOKENS`) when it
    is set, else the single `VK_ACCESS_TOKEN`. Never a value: the UI shows resource config."""
    return dg.EnvVar(ENV_TOKENS if os.environ.get(ENV_TOKENS) else ENV_TOKEN)


def api_base_url() -> str:
    return os.environ.get(ENV_API_BASE_URL) or VK_API_URL


def vk_id_settings() -> dict[str, Any]:
    """VK ID's settings when `VK_ID_REFRESH_TOKEN` is set: the refresh token and the encryption
    key as secrets Dagster resolves at launch, the ids and the URL as they are."""
    if not os.environ.get(ENV_VK_ID_REFRESH_TOKEN):
        return {}
    return {
        "vk_id_refresh_token": dg.EnvVar(ENV_VK_ID_REFRESH_TOKEN),
        "secret_key": dg.EnvVar(ENV_SECRET_KEY),
        "vk_id_client_id": os.environ.get(ENV_VK_ID_CLIENT_ID, ""),
        "vk_id_device_id": os.environ.get(ENV_VK_ID_DEVICE_ID, ""),
        "vk_id_url": os.environ.get(ENV_VK_ID_URL) or VK_ID_URL,
    }


def kind_settings() -> dict[str, Any]:
    """Per-kind rates from the environment: `VK_SERVICE_RATE` (VK sets a service token's rate
    by the app's audience)."""
    rate = os.environ.get(ENV_SERVICE_RATE)
    if not rate:
        return {}
    try:
        value = float(rate)
    except ValueError:
        raise ValueError(
            f"{ENV_SERVICE_RATE}={rate!r} is not a number of requests per second"
        ) from None
    if value <= 0:
        raise ValueError(f"{ENV_SERVICE_RATE}={rate!r} must be above 0")
    return {"service_requests_per_second": value}


def build_resources(
    *,
    database_url: str | None = None,
    tokens: str | dg.EnvVar | None = None,
    vk_api_base_url: str | None = None,
    **vk_config: Any,
) -> dict[str, Any]:
    """`vk`, `postgres` and `io_manager`, wired as production wires them.

    `database_url` None: `DATABASE_URL` at connect time (so no password lands in resource config),
    then the embedded server. `tokens` None: the environment's, as a secret. `vk_config`: any
    other `VKResource` field (tests raise `requests_per_second` against the emulator)."""
    postgres = PostgresResource(database_url=database_url)
    # The environment's VK ID credential and kind rates; a caller's own values win.
    vk_config = {**vk_id_settings(), **kind_settings(), **vk_config}
    if tokens is None:
        no_static = not (os.environ.get(ENV_TOKENS) or os.environ.get(ENV_TOKEN))
        tokens = "" if no_static and "vk_id_refresh_token" in vk_config else token_setting()
    vk = VKResource(
        access_token=tokens,
        api_base_url=vk_api_base_url or api_base_url(),
        budget=PostgresRateBudget(postgres=postgres),
        **vk_config,
    )
    return {
        "vk": vk,
        "postgres": postgres,
        "io_manager": PostgresIOManager(postgres=postgres),
    }


@contextmanager
def vk_client(resources: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[VKClient]:
    """A VK client outside a Dagster run (the command line): the secrets a run would resolve at
    launch are resolved here, from the same environment."""
    vk: VKResource = (resources or build_resources(**kwargs))["vk"]
    with vk.process_config_and_initialize_cm() as resolved, resolved.get_client() as client:
        yield client
