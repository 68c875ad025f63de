"""Group-list files: read them, resolve the communities they name, keep the record in Postgres.

Knows lines and ids, not Dagster: the drop-folder sensor (`vk_pipeline.automation`) and the
command line (`python -m vk_pipeline groups ...`) are its two callers.

The names below load on first use (PEP 562): the sensor parses each dropped file in a child
process (`isolated.py`) that imports only the reader, and must not pay for pandas and psycopg.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    "FileReport": "check",
    "FoundGroup": "check",
    "check_files": "check",
    "load": "check",
    "Entry": "reader",
    "ParsedFile": "reader",
    "Rejection": "reader",
    "parse_bytes": "reader",
    "read_file": "reader",
    "Parsed": "refs",
    "Ref": "refs",
    "parse_token": "refs",
    "FileRecord": "registry",
    "GroupRegistry": "registry",
    "ListSummary": "registry",
    "RegisteredGroup": "registry",
    "GroupInfo": "resolve",
    "Resolution": "resolve",
    "pack_sizes": "resolve",
}

__all__ = [
    "Entry",
    "FileRecord",
    "FileReport",
    "FoundGroup",
    "GroupInfo",
    "GroupRegistry",
    "ListSummary",
    "Parsed",
    "ParsedFile",
    "Ref",
    "RegisteredGroup",
    "Rejection",
    "Resolution",
    "check_files",
    "load",
    "pack_sizes",
    "parse_bytes",
    "parse_token",
    "read_file",
    "resolve",
]

if TYPE_CHECKING:
    from vk_pipeline.grouplists.check import FileReport, FoundGroup, check_files, load
    from vk_pipeline.grouplists.reader import (
        Entry,
        ParsedFile,
        Rejection,
        parse_bytes,
        read_file,
    )
    from vk_pipeline.grouplists.refs import Parsed, Ref, parse_token
    from vk_pipeline.grouplists.registry import (
        FileRecord,
        GroupRegistry,
        ListSummary,
        RegisteredGroup,
    )
    from vk_pipeline.grouplists.resolve import GroupInfo, Resolution, pack_sizes, resolve


class _Package(types.ModuleType):
    """Keeps `grouplists.resolve` the function: importing the submodule of the same name would
    otherwise set the package attribute to the module."""

    @property
    def resolve(self) -> Any:
        return import_module(f"{__name__}.resolve").resolve

    @resolve.setter
    def resolve(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
