"""``python -m vk_pipeline.storage migrate [--database-url URL] [--schema vk]``."""

from __future__ import annotations

import argparse
import sys

from vk_pipeline.storage.resource import DatabaseUnreachableError, PostgresResource, redact_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vk_pipeline.storage")
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate.add_argument(
        "--database-url",
        default=None,
        help="default: $DATABASE_URL, else the embedded server in .local/pgdata",
    )
    migrate.add_argument("--schema", default="vk")
    args = parser.parse_args(argv)

    resource = PostgresResource(database_url=args.database_url, schema_name=args.schema)
    try:
        applied = resource.ensure_schema()
    except DatabaseUnreachableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = redact_url(resource.resolved_url())
    if applied:
        print(f"{target}: schema {args.schema!r} migrated to version(s) {applied}")
    else:
        print(f"{target}: schema {args.schema!r} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
