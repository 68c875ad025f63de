"""Group-list files: read them, resolve the communities they name, keep the record in Postgres.

Knows lines and ids, not Dagster: the drop-folder sensor (`vk_pipeline.automation`) and the
command line (`python -m vk_pipeline groups ...`) are its two callers.
"""

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
