"""PostgreSQL storage: schema migrations, bulk COPY upserts, a Dagster resource and IO manager.

Storage knows tables and rows, never the VK API.
"""

from vk_pipeline.storage.catalog import StorageError, partition_filter, table_info
from vk_pipeline.storage.embedded import embedded_database_url, resolve_database_url
from vk_pipeline.storage.io_manager import (
    COMMIT,
    Commit,
    FrameStream,
    PostgresIOManager,
    TableWrite,
)
from vk_pipeline.storage.migrations import load_migrations, migrate
from vk_pipeline.storage.read import iter_frames, read_frame
from vk_pipeline.storage.resource import (
    DATABASE_RETRY,
    DatabaseUnreachableError,
    PostgresResource,
    close_pools,
    redact_url,
    with_dbname,
)
from vk_pipeline.storage.write import TableWriter, WriteMode, WriteStats, write_frames

__all__ = [
    "COMMIT",
    "DATABASE_RETRY",
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
    "partition_filter",
    "read_frame",
    "redact_url",
    "resolve_database_url",
    "table_info",
    "with_dbname",
    "write_frames",
]
