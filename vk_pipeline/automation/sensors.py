"""`group_file_sensor`: a file dropped into the folder registers its groups and loads the new ones.

Each tick:
1. confirms the files the previous tick reported (its cursor): the daemon only stores a cursor
   once it has added the partitions and submitted the runs of that tick;
2. reads files it has not seen (by content hash, so a copy or a renamed file is not read again;
   an edited file is), each in a child process under the reader's limits and a deadline
   (`grouplists.isolated`), resolves their communities through VK within the tick's budget and
   records each file in Postgres; links, devices and hard-linked files are refused unopened;
3. reports every recorded but unconfirmed file (those just read, those `groups add` registered,
   those of a tick that never completed): an asset event on `group_lists` with the rejected
   lines, new partitions, and ranged runs of `crawl_groups` for the new groups only, with run keys
   derived from the file hash. Reporting a file twice therefore launches nothing twice.

A file that cannot be read is recorded with its error and reported like any other; it never fails
the tick. Files stay where they are: the record, not the folder, says what was read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from vk_pipeline.automation.chunks import ranged_run_requests
from vk_pipeline.automation.dropdir import (
    DroppedFile,
    NotRegular,
    drop_dir,
    open_dropped,
    scan,
    settle_seconds,
)
from vk_pipeline.automation.events import MAX_REJECTIONS_SHOWN, file_event
from vk_pipeline.grouplists import (
    FileRecord,
    FileReport,
    GroupRegistry,
    ParsedFile,
    check_files,
)
from vk_pipeline.grouplists.excerpts import escaped
from vk_pipeline.grouplists.isolated import DEADLINE_SECONDS, parse_isolated
from vk_pipeline.jobs import crawl_job
from vk_pipeline.partitions import GROUP_PARTITIONS_NAME, is_group_key
from vk_pipeline.storage import PostgresResource
from vk_pipeline.vk import VKError, VKResource

SENSOR_NAME = "group_file_sensor"
FILE_TAG = "vk_pipeline/group_file"
SHA_TAG = "vk_pipeline/group_file_sha256"
LIST_TAG = "vk_pipeline/group_list"
TRIGGER_TAG = "vk_pipeline/trigger"
REJECTED_TAG = "vk_pipeline/rejected_lines"
# The daemon gives a sensor evaluation 60 s. Files are parsed in the first half of the budget,
# each in a child process killed at its own deadline; VK requests stop at the budget's end (plus
# at most one request timeout), well inside the daemon's 60 s.
TICK_BUDGET_SECONDS = 30.0
PARSE_BUDGET_SECONDS = TICK_BUDGET_SECONDS / 2
MAX_FILES_PER_TICK = 50
MAX_REPORTS_PER_TICK = 100


@dataclass
class Cursor:
    """Files reported by the last tick; the daemon keeps this only once that tick completed."""

    reported: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            return cls([str(s) for s in data.get("reported", [])])
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor only means some files are reported again

    def dump(self) -> str:
        return json.dumps({"reported": self.reported}, separators=(",", ":"))


def run_key_prefix(record: FileRecord) -> str:
    """`grouplist-<sha256[:16]>`, plus the read number when `groups add` re-read the content."""
    base = f"grouplist-{record.sha256[:16]}"
    return base if record.reads <= 1 else f"{base}.r{record.reads}"


def partition_ids(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(GROUP_PARTITIONS_NAME))


@dataclass
class _Tick:
    started: float = field(default_factory=time.monotonic)
    idle: str = ""
    messages: list[str] = field(default_factory=list)
    run_requests: list[dg.RunRequest] = field(default_factory=list)
    partitions: list[dg.AddDynamicPartitionsRequest] = field(default_factory=list)
    events: list[dg.AssetMaterialization | dg.AssetObservation] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def read_new_files(
    context: dg.SensorEvaluationContext,
    registry: GroupRegistry,
    vk: VKResource,
    folder: Path,
    settle: float,
    tick: _Tick,
) -> None:
    """Step 2: read what changed in the folder (each file in a limited child process), resolve
    and record contents never read before, all within the tick's budget."""
    ready, settling, refused = scan(folder, settle)
    if settling:
        tick.messages.append(f"{settling} file(s) still being written, read next tick")
    for entry in refused:
        # Never opened, never recorded: its content cannot reach a table or a log.
        context.log.warning(f"{entry.name}: not read: {entry.reason}")
    if refused:
        shown = "; ".join(f"{e.name}: {e.reason}" for e in refused[:5])
        tick.messages.append(
            f"{len(refused)} entr{'y' if len(refused) == 1 else 'ies'} refused ({shown})"
        )
    remembered = registry.known_paths()
    registry.forget_paths([f.key for f in ready])
    changed: list[DroppedFile] = []
    for f in ready:
        seen = remembered.get(f.key)
        if not (seen and seen[0] == f.size and seen[1] == f.mtime_ns):
            changed.append(f)
    if not changed:
        tick.idle = (
            f"{len(ready)} file(s) there, all read before" if ready else "the folder is empty"
        )
        return
    parsed: list[tuple[DroppedFile, ParsedFile]] = []
    for f in changed[:MAX_FILES_PER_TICK]:
        left = PARSE_BUDGET_SECONDS - tick.elapsed()
        if left < 1.0:
            break
        p = _read_isolated(context, f, min(DEADLINE_SECONDS, left))
        if p is not None:
            parsed.append((f, p))
    if len(parsed) < len(changed):
        tick.messages.append(f"{len(changed) - len(parsed)} file(s) left for the next tick")
    already = registry.known_contents({p.sha256 for _, p in parsed})
    fresh: dict[str, tuple[DroppedFile, ParsedFile]] = {}
    for f, p in parsed:
        if p.sha256 in already:
            context.log.info(
                f"{f.shown}: same content as {escaped(already[p.sha256])}, already read"
            )
            registry.remember_paths([(f.key, f.size, f.mtime_ns, p.sha256)])
        else:
            fresh.setdefault(p.sha256, (f, p))
    if not fresh:
        return
    try:
        with vk.get_client() as client:
            # Names are resolved only for files that parsed, and only within this tick: a tick
            # that runs out of time stops spending, it does not leave a request loop behind.
            client.deadline = tick.started + TICK_BUDGET_SECONDS
            reports, requests = check_files([(f.shown, p) for f, p in fresh.values()], client)
    except VKError as exc:
        # VK (or the way to it) is down, or the tick is out of time: read them again later.
        context.log.warning(f"VK could not resolve the new files ({exc}); retrying next tick")
        tick.messages.append(f"VK unavailable, {len(fresh)} file(s) wait: {exc}")
        return
    context.log.info(f"resolved {len(fresh)} file(s) with {requests} VK request(s)")
    tracked = {int(k) for k in partition_ids(context.instance) if is_group_key(k)}
    for (f, _), report in zip(fresh.values(), reports, strict=True):
        record = registry.record(report, tracked, source="drop", path=escaped(str(f.path), 400))
        tracked.update(record.new_group_ids)
        registry.remember_paths([(f.key, f.size, f.mtime_ns, report.sha256)])
        _log_report(context, report, record)


def _read_isolated(
    context: dg.SensorEvaluationContext, f: DroppedFile, deadline: float
) -> ParsedFile | None:
    """Parse one dropped file in a child process under the reader's limits; None: not now."""
    try:
        fd = open_dropped(f)
    except NotRegular as exc:
        context.log.warning(f"{f.shown}: not read: {exc}")
        return None
    except OSError as exc:
        context.log.warning(f"{f.shown}: cannot be read now ({exc.strerror}); next tick")
        return None
    # Stands for the content only if the child dies before it has hashed the file.
    fallback = hashlib.sha256(
        f"unhashed:{f.device}:{f.inode}:{f.size}:{f.mtime_ns}".encode()
    ).hexdigest()
    try:
        return parse_isolated(fd, f.shown, fallback_sha256=fallback, size=f.size, deadline=deadline)
    finally:
        os.close(fd)


def _log_report(context: dg.SensorEvaluationContext, report: FileReport, rec: FileRecord) -> None:
    context.log.info(f"{report.summary()}; {rec.groups_new} new")
    for line in report.rejection_lines()[:MAX_REJECTIONS_SHOWN]:
        context.log.info(line)


def report_files(
    context: dg.SensorEvaluationContext, registry: GroupRegistry, tick: _Tick
) -> list[str]:
    """Step 3: event, partitions and runs for every recorded file not yet confirmed."""
    pending = registry.unreported(MAX_REPORTS_PER_TICK)
    if not pending:
        return []
    order = partition_ids(context.instance)
    present = set(order)
    removed = registry.removed_among({i for r in pending for i in r.new_group_ids})
    for record in pending:
        keys = [str(i) for i in record.new_group_ids if i not in removed and is_group_key(str(i))]
        # The daemon appends added keys in request order: simulate that for the run ranges.
        appended = [k for k in keys if k not in present]
        order.extend(appended)
        present.update(appended)
        tags = {
            FILE_TAG: record.file_name,
            SHA_TAG: record.sha256,
            LIST_TAG: record.list_name or "",
            TRIGGER_TAG: "group_file" if record.source == "drop" else "groups_add",
            REJECTED_TAG: str(record.rejected_count),
        }
        runs = ranged_run_requests(order, keys, run_key_prefix=run_key_prefix(record), tags=tags)
        run_keys = [r.run_key for r in runs if r.run_key]
        if record.run_keys != run_keys:
            registry.set_run_keys(record.sha256, run_keys)
        if keys:
            tick.partitions.append(dg.AddDynamicPartitionsRequest(GROUP_PARTITIONS_NAME, keys))
        tick.run_requests.extend(runs)
        rejections = registry.rejections(record.sha256, MAX_REJECTIONS_SHOWN)
        tick.events.append(file_event(record, rejections, run_keys, appended))
        tick.messages.append(
            f"{escaped(record.file_name)}: {record.groups_found} groups, {len(keys)} new, "
            f"{record.rejected_count} lines rejected"
            + (f" (not read: {record.file_error})" if record.file_error else "")
        )
    return [r.sha256 for r in pending]


def evaluate(
    context: dg.SensorEvaluationContext,
    postgres: PostgresResource,
    vk: VKResource,
    folder: Path,
    settle: float,
) -> dg.SensorResult:
    registry = GroupRegistry(postgres)
    registry.mark_reported(Cursor.parse(context.cursor).reported)
    tick = _Tick()
    read_new_files(context, registry, vk, folder, settle, tick)
    reported = report_files(context, registry, tick)
    message = "; ".join(tick.messages) or f"no new files in {folder}" + (
        f": {tick.idle}" if tick.idle else ""
    )
    context.log.info(message)
    return dg.SensorResult(
        run_requests=tick.run_requests,
        dynamic_partitions_requests=tick.partitions,
        asset_events=tick.events,
        cursor=Cursor(reported).dump(),
        skip_reason=None if tick.run_requests else message,
    )


def build_group_file_sensor(
    *,
    name: str = SENSOR_NAME,
    folder: Path | None = None,
    settle: float | None = None,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    """The drop-folder sensor; `folder`/`settle` default to `drop_dir()`/`settle_seconds()`,
    read at every evaluation so the environment of the code server decides."""

    @dg.sensor(
        name=name,
        job=crawl_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers the groups of files dropped into the drop folder and loads the new ones.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, postgres: PostgresResource, vk: VKResource
    ) -> dg.SensorResult:
        return evaluate(
            context,
            postgres,
            vk,
            folder if folder is not None else drop_dir(),
            settle if settle is not None else settle_seconds(),
        )

    return _sensor


group_file_sensor = build_group_file_sensor()
