"""PostgreSQL storage: schema migrations, bulk COPY upserts, a Dagster resource and IO manager.

Storage knows tables and rows, never the VK API.
"""

from vk_pipeline.storage.copy import (
    StorageError,
    TableWriter,
    WriteMode,
    WriteStats,
    iter_frames,
    read_frame,
    table_info,
    write_frames,
)
from vk_pipeline.storage.embedded import embedded_database_url, resolve_database_url
from vk_pipeline.storage.io_manager import (
    COMMIT,
    Commit,
    FrameStream,
    PostgresIOManager,
    TableWrite,
)
from vk_pipeline.storage.migrations import load_migrations, migrate
from vk_pipeline.storage.resource import (
    DatabaseUnreachableError,
    PostgresResource,
    close_pools,
    redact_url,
    with_dbname,
)

__all__ = [
    "COMMIT",
    "Commit",
    "DatabaseUnreachableError",
    "FrameStream",
    "PostgresIOManager",
    "PostgresResource",
    "StorageError",
    "TableWrite",
    "TableWriter",
    "WriteMode",
    "WriteStats",
    "close_pools",
    "embedded_database_url",
    "iter_frames",
    "load_migrations",
    "migrate",
    "read_frame",
    "redact_url",
    "resolve_database_url",
    "table_info",
    "with_dbname",
    "write_frames",
]
