"""The code location loads and validates."""

import dagster as dg

from vk_pipeline.definitions import defs


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)
