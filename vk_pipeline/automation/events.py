"""The `group_lists` asset the sensor reports on, and what a read file looks like in the UI."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from vk_pipeline.grouplists import FileRecord, Rejection

GROUP_LISTS_KEY = dg.AssetKey("group_lists")
MAX_REJECTIONS_SHOWN = 50

group_lists = dg.AssetSpec(
    GROUP_LISTS_KEY,
    description="Named group lists read from files in the drop folder (vk.group_lists, vk.group_list_members).",
    group_name="registration",
    kinds={"postgres"},
    metadata={"tables": "vk.group_lists, vk.group_list_members, vk.group_files"},
)


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def rejections_markdown(rejections: Sequence[Rejection], total: int) -> str:
    if not rejections:
        return "No line was rejected."
    rows = ["| line | text | reason |", "|---:|---|---|"]
    for r in rejections:
        where = f"{r.sheet}!{r.line}" if r.sheet else str(r.line)
        rows.append(f"| {where} | `{_md_cell(r.text)}` | {_md_cell(r.reason)} |")
    if total > len(rejections):
        rows.append(
            f"\n… and {total - len(rejections):,} more in `vk.group_file_rejections` "
            "(or `python -m vk_pipeline groups check FILE`)."
        )
    return "\n".join(rows)


def file_event(
    record: FileRecord,
    rejections: Sequence[Rejection],
    run_keys: Sequence[str],
    new_keys: Sequence[str],
) -> dg.AssetMaterialization | dg.AssetObservation:
    """A materialization of `group_lists` for a file that was read (the list changed), an
    observation for one that could not be read."""
    metadata: dict[str, object] = {
        "file": record.file_name,
        "path": record.path or "",
        "source": record.source,
        "list": record.list_name or "",
        "sha256": record.sha256,
        "lines_read": record.lines_read,
        "groups_found": record.groups_found,
        "groups_new": record.groups_new,
        "groups_known": record.groups_known,
        "groups_banned_or_deleted": record.groups_deactivated,
        "duplicates": record.duplicates,
        "rejected_lines": record.rejected_count,
        "rejections": dg.MetadataValue.md(
            f"The file was not read: {_md_cell(record.file_error)}"
            if record.file_error
            else rejections_markdown(rejections, record.rejected_count)
        ),
        "run_keys": ", ".join(run_keys) or "none: no new groups",
        "partitions_added": len(new_keys),
    }
    if record.format:
        metadata["format"] = (
            f"{record.format} ({record.encoding})" if record.encoding else record.format
        )
    if record.file_error:
        metadata["file_error"] = record.file_error
        return dg.AssetObservation(
            asset_key=GROUP_LISTS_KEY,
            description=f"{record.file_name}: not read: {record.file_error}",
            metadata=metadata,
        )
    description = (
        f"{record.file_name}: {record.groups_found} groups ({record.groups_new} new), "
        f"{record.rejected_count} lines rejected"
    )
    return dg.AssetMaterialization(
        asset_key=GROUP_LISTS_KEY, description=description, metadata=metadata
    )
