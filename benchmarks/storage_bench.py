"""Storage figures: the IO manager's write path on synthetic comment rows, against baselines.

For each size (default 100k and 1M rows into ``vk.comments``, parents in ``groups``/``posts``
created first), in a fresh database on the server of ``--database-url``:

- first load through ``PostgresIOManager.handle_output`` / server-side ``COPY FROM 'file.csv'``
  of the same rows into the same emptied table (throughput ratio, goal >= 0.40);
- re-upsert of the same rows (nothing changed) / server-side COPY (goal >= 0.50);
- write path / ``pandas.DataFrame.to_sql(method="multi")`` rows/s on a ``--to-sql-rows`` sample
  (goal >= 3x);
- peak RSS writing the largest size / the smallest, each in a fresh subprocess generating its
  chunks lazily (goal <= 1.5).

``--encoders`` also times the COPY encoders that were candidates for the write path, on the
first size, into a temporary table, and checks that each round-trips exactly.

    .venv/bin/python benchmarks/storage_bench.py                 # embedded server (.local)
    .venv/bin/python benchmarks/storage_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from vk_pipeline.storage import (
    PostgresIOManager,
    PostgresResource,
    close_pools,
    embedded_database_url,
    table_info,
    with_dbname,
    write_frames,
)
from vk_pipeline.storage.encode import copy_into, encode_column

GROUPS = 200
POSTS_PER_GROUP = 50
WORDS = [
    "привет",
    "мир",
    "сообщество",
    "новости",
    "спасибо",
    "отлично",
    "когда",
    "будет",
    "обновление",
    "кто",
    "знает",
    "ответ",
    "вопрос",
    "город",
    "Москва",
    "хорошо",
    "ПОДПИСЫВАЙТЕСЬ",
    "👍",
    "🔥",
    "😂",
    "ok",
    "test",
    "https://vk.com/wall-1_2",
    '"цитата"',
    "tab\there",
    "new\nline",
    "back\\slash",
    "100%",
    "#хэштег",
    "@id123",
]
COLUMNS = [
    "owner_id", "id", "group_id", "post_id", "from_id", "date", "text", "reply_to_user",
    "reply_to_comment", "thread_root_id", "parents_stack", "thread_count", "likes_count",
    "attachment_types", "raw", "is_deleted",
]  # fmt: skip
APPEND_ROWS = 100_000
ATTACHMENTS = [[], [], [], [], ["photo"], ["photo", "photo"], ["video"], ["sticker"], ["link"]]


# --------------------------------------------------------------------------------------------
# Synthetic rows


def comment_chunk(start: int, n: int) -> pd.DataFrame:
    """Rows start..start+n-1, the same on every call (seeded by ``start``)."""
    rng = np.random.default_rng(start)
    ids = np.arange(start + 1, start + n + 1, dtype=np.int64)
    post_ix = (ids // 100) % (GROUPS * POSTS_PER_GROUP)  # ~100 comments per post
    group = post_ix // POSTS_PER_GROUP + 1
    post = post_ix % POSTS_PER_GROUP + 1
    from_id = rng.integers(1, 3_000_000_000, n)  # beyond int32
    date = pd.to_datetime(1_600_000_000 + rng.integers(0, 10**8, n), unit="s", utc=True)
    words = np.array(WORDS, dtype=object)
    lengths = rng.integers(0, 30, n)
    texts: list[str | None] = [" ".join(words[rng.integers(0, len(WORDS), k)]) for k in lengths]
    for i in np.flatnonzero(rng.random(n) < 0.01):
        texts[i] = None
    is_reply = rng.random(n) < 0.4
    reply_to = np.where(is_reply, np.maximum(ids - rng.integers(1, 50, n), 1), 0)
    stacks = [
        [int(r)] if f else [] for r, f in zip(reply_to.tolist(), is_reply.tolist(), strict=True)
    ]
    atts = [ATTACHMENTS[k] for k in rng.integers(0, len(ATTACHMENTS), n)]
    likes = rng.integers(0, 500, n)
    raw = [
        {
            "id": i,
            "from_id": f,
            "date": d,
            "text": (t or "")[:80],
            "likes": {"count": lk, "user_likes": 0, "can_like": 1},
            "thread": {"count": 0, "items": [], "can_post": True},
            "parents_stack": s,
            "attachments": [{"type": a} for a in at],
            "reply_to_user": r or None,
        }
        for i, f, d, t, lk, s, at, r in zip(
            ids.tolist(), from_id.tolist(), (date.asi8 // 10**6).tolist(), texts,
            likes.tolist(), stacks, atts, reply_to.tolist(), strict=True,
        )
    ]  # fmt: skip
    nullable = pd.array(np.where(is_reply, reply_to, 0), dtype="Int64")
    nullable[~is_reply] = pd.NA
    return pd.DataFrame(
        {
            "owner_id": pd.array(-group, dtype="Int64"),
            "id": pd.array(ids, dtype="Int64"),
            "group_id": pd.array(group, dtype="Int64"),
            "post_id": pd.array(post, dtype="Int64"),
            "from_id": pd.array(from_id, dtype="Int64"),
            "date": date,
            "text": pd.Series(texts, dtype=object),
            "reply_to_user": nullable,
            "reply_to_comment": nullable,
            "thread_root_id": nullable,
            "parents_stack": pd.Series(stacks, dtype=object),
            "thread_count": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "likes_count": pd.array(likes, dtype="Int64"),
            "attachment_types": pd.Series(atts, dtype=object),
            "raw": pd.Series(raw, dtype=object),
            "is_deleted": np.zeros(n, dtype=bool),
        }
    )


def comment_chunks(total: int, chunk_rows: int) -> Iterator[pd.DataFrame]:
    for start in range(0, total, chunk_rows):
        yield comment_chunk(start, min(chunk_rows, total - start))


def write_parents(conn: psycopg.Connection[Any]) -> None:
    gids = np.arange(1, GROUPS + 1)
    write_frames(conn, "groups", pd.DataFrame({"id": gids, "status": "ok", "name": "группа"}))
    posts = pd.DataFrame(
        {
            "owner_id": np.repeat(-gids, POSTS_PER_GROUP),
            "id": np.tile(np.arange(1, POSTS_PER_GROUP + 1), GROUPS),
            "group_id": np.repeat(gids, POSTS_PER_GROUP),
            "date": pd.Timestamp("2024-01-01", tz="UTC"),
            "text": "пост",
        }
    )
    write_frames(conn, "posts", posts)


# --------------------------------------------------------------------------------------------
# Text encodings (the server-side COPY file and the CSV encoder candidates)


def _pg_array(values: list[Any] | None, text: bool) -> str | None:
    if values is None:
        return None
    if not text:
        return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"
    quoted = (
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    )
    return "{" + ",".join(quoted) + "}"


def _as_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Arrays and jsonb as PostgreSQL text literals; everything else unchanged."""
    out = frame.copy()
    out["parents_stack"] = [_pg_array(v, False) for v in frame["parents_stack"]]
    out["attachment_types"] = [_pg_array(v, True) for v in frame["attachment_types"]]
    out["raw"] = [None if v is None else json.dumps(v, ensure_ascii=False) for v in frame["raw"]]
    return out


def arrow_csv(frame: pd.DataFrame) -> bytes:
    # pyarrow quotes every string and leaves nulls empty: exactly PostgreSQL's CSV NULL rule.
    table = pa.Table.from_pandas(_as_text_columns(frame), preserve_index=False)
    buf = io.BytesIO()
    pa_csv.write_csv(table, buf, pa_csv.WriteOptions(include_header=False))
    return buf.getvalue()


def pandas_csv(frame: pd.DataFrame) -> bytes:
    return _as_text_columns(frame).to_csv(header=False, index=False).encode()


# --------------------------------------------------------------------------------------------
# Databases


def fresh_database(admin_url: str) -> str:
    name = f"vkbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_dbname(admin_url, name)
    PostgresResource(database_url=url).ensure_schema()
    with psycopg.connect(url) as conn:
        write_parents(conn)
    return url


def drop_database(admin_url: str, url: str) -> None:
    close_pools(url)
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(name))))


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE vk.comments")
        conn.execute("CHECKPOINT")  # so one measurement's dirty pages are not the next one's cost


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def io_manager_write(url: str, frames: Any) -> dict[str, Any]:
    manager = PostgresIOManager(postgres=PostgresResource(database_url=url))
    context = dg.build_output_context(
        asset_key=dg.AssetKey("comments"), definition_metadata={"write_mode": "upsert"}
    )
    manager.handle_output(context, frames)
    return {k: getattr(v, "value", v) for k, v in context.get_logged_metadata().items()}


# --------------------------------------------------------------------------------------------
# Measurements


def measure_size(url: str, rows: int, chunk_rows: int, csv_dir: Path) -> dict[str, float]:
    chunks = list(comment_chunks(rows, chunk_rows))
    csv_path = csv_dir / f"comments_{rows}.csv"
    with csv_path.open("wb") as fh:
        for chunk in chunks:
            fh.write(arrow_csv(chunk))
    csv_path.chmod(0o644)  # the embedded server runs as another user and must read it

    reset(url)
    cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    copy_stmt = sql.SQL("COPY vk.comments ({}) FROM {} (FORMAT csv)").format(
        cols, sql.Literal(str(csv_path))
    )

    def server_copy() -> None:
        with psycopg.connect(url) as conn:
            conn.execute(copy_stmt)

    t_copy, _ = timed(server_copy)
    reset(url)
    t_first, meta_first = timed(lambda: io_manager_write(url, iter(chunks)))
    assert meta_first["inserted"] == rows, meta_first
    t_again, meta_again = timed(lambda: io_manager_write(url, iter(chunks)))
    assert meta_again["unchanged"] == rows, meta_again
    # New rows into a table already holding `rows`: how the per-row cost grows with table size
    # (the question behind partitioning).
    extra = list(comment_chunks(APPEND_ROWS, chunk_rows))
    for chunk in extra:
        chunk["id"] += rows
    t_append, meta_append = timed(lambda: io_manager_write(url, iter(extra)))
    assert meta_append["inserted"] == APPEND_ROWS, meta_append
    csv_path.unlink()
    return {
        "rows": rows,
        "server_copy": t_copy,
        "first_load": t_first,
        "re_upsert": t_again,
        "append": t_append,
    }


def measure_to_sql(url: str, rows: int) -> tuple[float, float]:
    """(to_sql seconds, write path seconds) for the same ``rows`` rows into an empty table."""
    from sqlalchemy import BigInteger, Text, create_engine
    from sqlalchemy.dialects.postgresql import ARRAY, JSONB

    frame = comment_chunk(0, rows)
    reset(url)
    engine = create_engine(url)
    dtype = {
        "raw": JSONB,
        "parents_stack": ARRAY(BigInteger),
        "attachment_types": ARRAY(Text),
    }
    # 16 columns x 4000 rows stays under the 65535 bind parameters of one statement.
    t_sql, _ = timed(
        lambda: frame.to_sql(
            "comments", engine, schema="vk", if_exists="append", index=False,
            method="multi", chunksize=4000, dtype=dtype,
        )
    )  # fmt: skip
    engine.dispose()
    reset(url)
    t_ours, _ = timed(lambda: io_manager_write(url, frame))
    return t_sql, t_ours


def rss_child(url: str, rows: int, chunk_rows: int) -> None:
    reset(url)
    meta = io_manager_write(url, comment_chunks(rows, chunk_rows))
    assert meta["inserted"] == rows
    print(json.dumps({"rows": rows, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    # VmHWM belongs to this process's own address space; ru_maxrss survives fork+exec and would
    # report the parent's peak (which holds all rows of the in-process measurements).
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_rss(url: str, rows: int, chunk_rows: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(rows), "--database-url", url,
         "--chunk-rows", str(chunk_rows)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def measure_encoders(url: str, rows: int) -> list[tuple[str, float, bool]]:
    frame = comment_chunk(0, rows)
    names = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    results: list[tuple[str, float, bool]] = []
    with psycopg.connect(url) as conn:
        info = table_info(conn, "comments", "vk")
        cols = [info.columns[c] for c in COLUMNS]
        for name in ("binary", "text", "pandas", "arrow"):
            conn.execute(
                sql.SQL("CREATE TEMP TABLE {} AS SELECT {} FROM vk.comments WITH NO DATA").format(
                    sql.Identifier(f"enc_{name}"), names
                )
            )
        target = {n: sql.Identifier(f"enc_{n}") for n in ("binary", "text", "pandas", "arrow")}

        def binary() -> None:
            copy_into(conn, target["binary"], cols, [encode_column(frame[c.name], c) for c in cols])

        def text() -> None:
            values = [encode_column(frame[c.name], c) for c in cols]
            stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(target["text"], names)
            with conn.cursor() as cur:
                from psycopg.adapt import Dumper

                class JsonText(Dumper):
                    oid = 3802

                    def dump(self, obj: str) -> bytes:
                        return obj.encode()

                cur.adapters.register_dumper(None, JsonText)
                with cur.copy(stmt) as copy:
                    copy.set_types([c.type_oid for c in cols])
                    for row in zip(*values, strict=True):
                        copy.write_row(row)

        def csv_with(encode: Callable[[pd.DataFrame], bytes], key: str) -> Callable[[], None]:
            def run() -> None:
                stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target[key], names)
                with conn.cursor() as cur, cur.copy(stmt) as copy:
                    copy.write(encode(frame))

            return run

        for label, key, fn in (
            ("psycopg write_row, binary (chosen)", "binary", binary),
            ("psycopg write_row, text", "text", text),
            ("pandas to_csv, FORMAT csv", "pandas", csv_with(pandas_csv, "pandas")),
            ("pyarrow CSV, FORMAT csv", "arrow", csv_with(arrow_csv, "arrow")),
        ):
            seconds, _ = timed(fn)
            diff = conn.execute(
                sql.SQL(
                    "SELECT (SELECT count(*) FROM (TABLE {a} EXCEPT ALL TABLE {b}) x)"
                    " + (SELECT count(*) FROM (TABLE {b} EXCEPT ALL TABLE {a}) y)"
                ).format(a=target["binary"], b=target[key])
            ).fetchone()
            results.append((label, seconds, bool(diff and diff[0] == 0)))
        # The reference itself is checked against the source frame for the cases CSV loses.
        empty = conn.execute("SELECT count(*) FROM enc_binary WHERE text = ''").fetchone()
        null = conn.execute("SELECT count(*) FROM enc_binary WHERE text IS NULL").fetchone()
        src = frame["text"]
        assert empty == ((src == "").sum(),) and null == (src.isna().sum(),)
        conn.rollback()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="admin URL (default: the embedded server)")
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--to-sql-rows", type=int, default=100_000)
    parser.add_argument("--encoders", action="store_true", help="also compare COPY encoders")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_child:
        rss_child(args.database_url, args.rss_child, args.chunk_rows)
        return

    admin_url = args.database_url or embedded_database_url(dbname="postgres")
    # Dagster initialises lazily on the first context it builds (~2 s): keep that out of timings.
    dg.build_output_context(asset_key=dg.AssetKey("warm_up"))
    sizes = [int(s) for s in args.rows.split(",")]
    server = psycopg.connect(admin_url).execute("SHOW server_version").fetchone()
    print(
        f"server: PostgreSQL {server[0] if server else '?'} ({'explicit' if args.database_url else 'embedded'})"
    )
    print("json: orjson (a dependency of the package)")

    figures: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="vkbench_") as tmp:
        os.chmod(tmp, 0o755)
        for rows in sizes:
            url = fresh_database(admin_url)
            try:
                figures.append(measure_size(url, rows, args.chunk_rows, Path(tmp)))
            finally:
                drop_database(admin_url, url)

    url = fresh_database(admin_url)
    try:
        t_sql, t_ours = measure_to_sql(url, args.to_sql_rows)
        rss = {rows: measure_rss(url, rows, args.chunk_rows) for rows in (min(sizes), max(sizes))}
        encoders = measure_encoders(url, min(sizes)) if args.encoders else []
    finally:
        drop_database(admin_url, url)

    print(f"\n{'rows':>9} {'server COPY':>12} {'first load':>11} {'re-upsert':>10} "
          f"{'first/COPY':>11} {'re-upsert/COPY':>15}  rows/s (COPY, first, re-upsert)")  # fmt: skip
    for f in figures:
        n = f["rows"]
        print(
            f"{n:>9,} {f['server_copy']:>11.2f}s {f['first_load']:>10.2f}s {f['re_upsert']:>9.2f}s "
            f"{f['server_copy'] / f['first_load']:>11.2f} {f['server_copy'] / f['re_upsert']:>15.2f}"
            f"  {n / f['server_copy']:,.0f}, {n / f['first_load']:,.0f}, {n / f['re_upsert']:,.0f}"
        )
    print(
        f"\nupsert of {APPEND_ROWS:,} new rows into a table already holding N rows (staged path):"
    )
    for f in figures:
        print(
            f"  N = {f['rows']:>9,}: {f['append']:6.2f}s = {APPEND_ROWS / f['append']:,.0f} rows/s"
        )
    print(
        f"\nto_sql(method='multi') on {args.to_sql_rows:,} rows: {t_sql:.2f}s = "
        f"{args.to_sql_rows / t_sql:,.0f} rows/s; write path {args.to_sql_rows / t_ours:,.0f} rows/s"
        f" -> {t_sql / t_ours:.1f}x"
    )
    lo, hi = min(sizes), max(sizes)
    print(
        f"peak RSS writing {hi:,} rows: {rss[hi]:.0f} MB, {lo:,} rows: {rss[lo]:.0f} MB "
        f"(chunks of {args.chunk_rows:,}) -> {rss[hi] / rss[lo]:.2f}"
    )
    if encoders:
        print(f"\nCOPY encoders, {lo:,} rows into a temporary table (encode + send + ingest):")
        for label, seconds, exact in encoders:
            print(
                f"  {label:<36} {seconds:6.2f}s {lo / seconds:>10,.0f} rows/s  exact: {'yes' if exact else 'NO'}"
            )


if __name__ == "__main__":
    main()
