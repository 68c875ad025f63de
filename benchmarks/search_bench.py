"""Search figures: latency of `vk.search_comments` over 1,000,000 stored comments.

Rows are generated like the emulator's (sentences from `vk_pipeline.emulator.texts`, reply
prefixes `[id…|Имя], `, threads, a few users writing most comments, deleted tombstones) plus a
Zipf-distributed long-tail vocabulary, because real walls have rare words and the emulator's
forty sentences alone would make every word match 2-5 % of all rows. They are loaded by COPY
through `vk_pipeline.storage.write_frames` into a fresh database.

For each query class (common single word, rare single word, phrase, -exclusion, OR, common
word in one group) prints p50 / p95 / max of the first page and of a deep page reached by cursor
(page `--deep-page`), each over `--repeats` runs, then EXPLAIN (ANALYZE, BUFFERS) of the
statement a search runs, showing the GIN index in use. Goal: p95 < 100 ms.

    .venv/bin/python benchmarks/search_bench.py                       # embedded server
    .venv/bin/python benchmarks/search_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/search_bench.py --comments 100000     # a quick check
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from vk_pipeline.emulator import texts
from vk_pipeline.storage import (
    PostgresResource,
    embedded_database_url,
)
from vk_pipeline.testing.databases import create_database, drop_database

NOW = datetime(2025, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 730
SYLLABLES = tuple(c + v for c in "бвгджзклмнпрстфхчш" for v in "аоуиеы")
ENDINGS = ("", "а", "ы", "ов", "ом", "е", "ой", "ами", "ах", "у")


# --------------------------------------------------------------------------------------------
# Synthetic walls


def long_tail_vocabulary(size: int, seed: int) -> list[str]:
    """`size` distinct pseudo-Russian stems; Zipf sampling over them gives a realistic long tail."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


@dataclass
class Wall:
    """One synthetic group: its rows, ids and authors (for the analysis benchmark's changes)."""

    group_id: int
    posts: pd.DataFrame
    next_id: int
    users: np.ndarray


class Generator:
    """Groups, posts and comments shaped like the emulator's world, generated in chunks."""

    def __init__(self, seed: int = 2026, vocabulary: int = 20_000) -> None:
        self.rng = np.random.default_rng(seed)
        self.pyrng = random.Random(seed)
        self.vocab = np.array(long_tail_vocabulary(vocabulary, seed), dtype=object)
        ranks = np.arange(1, vocabulary + 1)
        self.vocab_p = (1 / ranks**1.05) / (1 / ranks**1.05).sum()
        self._words: list[str] = []

    def _word(self) -> str:
        if not self._words:
            # Sampled in blocks: one weighted draw over 20k words per comment would dominate.
            self._words = self.vocab[self.rng.choice(len(self.vocab), 100_000, p=self.vocab_p)]
            self._words = self._words.tolist()
        return self._words.pop()

    def text(self) -> str:
        base = texts.make_text(self.pyrng, 1, 2)
        if self.pyrng.random() < 0.6:
            words = (
                self._word() + self.pyrng.choice(ENDINGS) for _ in range(self.pyrng.randint(1, 4))
            )
            base = base + " " + " ".join(words)
        return base

    def group_rows(self, ids: list[int], members: int = 50_000) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": pd.array(ids, dtype="Int64"),
                "screen_name": [f"club{g}" for g in ids],
                "name": [f"Сообщество {g}" for g in ids],
                "status": "open",
                "members_count": pd.array([members] * len(ids), dtype="Int64"),
                "wall": pd.array([1] * len(ids), dtype="Int64"),
            }
        )

    def wall(self, group_id: int, n_posts: int, first_id: int = 1) -> Wall:
        """Posts of one group over the history window, ids with gaps left for comments."""
        start = NOW.timestamp() - HISTORY_DAYS * 86400
        dates = np.sort(self.rng.uniform(start, NOW.timestamp() - 3600, n_posts))
        ids = first_id + np.arange(n_posts) * 1
        posts = pd.DataFrame(
            {
                "owner_id": pd.array([-group_id] * n_posts, dtype="Int64"),
                "id": pd.array(ids, dtype="Int64"),
                "group_id": pd.array([group_id] * n_posts, dtype="Int64"),
                "from_id": pd.array([-group_id] * n_posts, dtype="Int64"),
                "date": pd.to_datetime(dates, unit="s", utc=True),
                "text": [texts.make_text(self.pyrng, 1, 5) for _ in range(n_posts)],
                "is_pinned": np.zeros(n_posts, dtype=bool),
                "likes_count": pd.array(self.rng.pareto(1.2, n_posts).astype(int) * 3, "Int64"),
                "reposts_count": pd.array(self.rng.pareto(1.5, n_posts).astype(int), "Int64"),
                "views_count": pd.array(
                    (self.rng.lognormal(7, 1.2, n_posts)).astype(int), dtype="Int64"
                ),
                "comments_status": "ok",
            }
        )
        users = 1_000_000 + self.rng.choice(899_000_000, 20_000, replace=False)
        return Wall(group_id, posts, first_id + n_posts, users)

    def comment_counts(self, wall: Wall, n_comments: int) -> np.ndarray:
        """Heavy-tailed comments per post (about 35 % of posts without any), summing to n."""
        n = len(wall.posts)
        weights = self.rng.lognormal(0, 1.6, n) * (self.rng.random(n) >= 0.35)
        counts = np.floor(weights / weights.sum() * n_comments).astype(int)
        counts[np.argsort(-weights)[: n_comments - counts.sum()]] += 1
        return counts

    def comments(
        self,
        wall: Wall,
        post_ids: np.ndarray,
        counts: np.ndarray,
        *,
        after: datetime | None = None,
        chunk_rows: int = 50_000,
    ) -> Iterator[pd.DataFrame]:
        """Comments under `post_ids` (`counts` each), about 40 % replies; new ids from the wall's
        counter. Dates follow each post (or `after`, for a day of changes)."""
        rows: list[dict] = []
        post_dates = wall.posts.set_index("id")["date"]
        for pid, n in zip(post_ids.tolist(), counts.tolist(), strict=True):
            if n <= 0:
                continue
            base = (after or post_dates[pid]).timestamp()
            span = 86400.0 if after is not None else max(3600.0, NOW.timestamp() - base)
            n_top = max(1, n - round(n * 0.4)) if n >= 3 else n
            top_ids: list[int] = []
            top_from: list[int] = []
            replies: dict[int, list[tuple[int, int]]] = {}
            for i in range(n):
                cid = wall.next_id
                wall.next_id += 1
                # A few users write most comments, as on real walls; 3 % by the community.
                author = (
                    -wall.group_id
                    if self.pyrng.random() < 0.03
                    else int(wall.users[int(len(wall.users) * self.pyrng.random() ** 2)])
                )
                date = base + span * self.pyrng.random() ** 4
                text = self.text()
                root = reply_to = reply_user = None
                if i >= n_top and top_ids:
                    k = self.pyrng.randrange(len(top_ids))
                    root = reply_to = top_ids[k]
                    reply_user = top_from[k]
                    earlier = replies.setdefault(root, [])
                    if earlier and self.pyrng.random() < 0.3:
                        # Replies to replies, as the emulator makes them.
                        reply_to, reply_user = self.pyrng.choice(earlier)
                    earlier.append((cid, author))
                    if reply_user > 0 and self.pyrng.random() < 0.5:
                        first, _ = texts.person_name(reply_user)
                        text = f"[id{reply_user}|{first}], {text}"
                else:
                    top_ids.append(cid)
                    top_from.append(author)
                rows.append(
                    {
                        "owner_id": -wall.group_id,
                        "id": cid,
                        "group_id": wall.group_id,
                        "post_id": pid,
                        "from_id": author,
                        "date": date,
                        "text": text,
                        "reply_to_user": reply_user,
                        "reply_to_comment": reply_to,
                        "thread_root_id": root,
                        "parents_stack": [root] if root else None,
                        "likes_count": int(self.pyrng.paretovariate(1.5)) - 1,
                        "is_deleted": self.pyrng.random() < 0.01,
                    }
                )
                if len(rows) >= chunk_rows:
                    yield comment_frame(rows)
                    rows = []
        if rows:
            yield comment_frame(rows)


def comment_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(rows)
    for c in ("owner_id", "id", "group_id", "post_id", "from_id", "reply_to_user"):
        df[c] = df[c].astype("Int64")
    for c in ("reply_to_comment", "thread_root_id", "likes_count"):
        df[c] = df[c].astype("Int64")
    df["date"] = pd.to_datetime(df["date"], unit="s", utc=True)
    # The raw VK object roughly doubles a row, as it does in the real table.
    df["raw"] = [
        {
            "id": r["id"],
            "from_id": r["from_id"],
            "date": int(r["date"]),
            "text": r["text"],
            "post_id": r["post_id"],
            "owner_id": r["owner_id"],
            "parents_stack": r["parents_stack"] or [],
            "likes": {"count": r["likes_count"], "can_like": 1, "user_likes": 0},
        }
        for r in rows
    ]
    return df


def load_groups(
    pg: PostgresResource, gen: Generator, sizes: dict[int, int], posts_per_1k: float = 20
) -> dict[int, Wall]:
    """Groups `sizes` (group id → comments), their posts and comments, loaded by COPY."""
    pg.write_frames("groups", gen.group_rows(list(sizes)))
    walls: dict[int, Wall] = {}
    for gid, n_comments in sizes.items():
        wall = gen.wall(gid, max(10, int(n_comments / 1000 * posts_per_1k)))
        counts = gen.comment_counts(wall, n_comments)
        wall.posts["comments_count"] = pd.array(counts, dtype="Int64")
        wall.posts["comments_synced_count"] = wall.posts["comments_count"]
        pg.write_frames("posts", wall.posts)
        pg.write_frames(
            "comments",
            gen.comments(wall, wall.posts["id"].to_numpy(), counts),
            mode="replace",
            partition_column="group_id",
            partition_values=[gid],
        )
        walls[gid] = wall
    with pg.connection() as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE vk.posts")
        conn.execute("VACUUM ANALYZE vk.comments")
        conn.autocommit = False
    return walls


# --------------------------------------------------------------------------------------------
# Measurements


def timed_search(conn: psycopg.Connection, query: str, **kw: object) -> tuple[float, list[tuple]]:
    args = ", ".join(f"{k} => %({k})s" for k in kw)
    stmt = (
        "SELECT comment_id, rank, cursor, ordered_by"
        f" FROM vk.search_comments(%(q)s{', ' + args if args else ''})"
    )
    started = time.perf_counter()
    rows = conn.execute(stmt, {"q": query, **kw}).fetchall()
    return (time.perf_counter() - started) * 1000, rows


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def measure(
    conn: psycopg.Connection, label: str, query: str, repeats: int, deep_page: int, **kw: object
) -> dict[str, object]:
    first: list[float] = []
    deep: list[float] = []
    cursor = None
    hits = conn.execute(
        "SELECT count(*) FROM vk.comments WHERE text_tsv @@ websearch_to_tsquery('russian', %s)"
        " AND NOT is_deleted" + (" AND group_id = ANY(%s)" if "group_ids" in kw else ""),
        (query, kw["group_ids"]) if "group_ids" in kw else (query,),
    ).fetchone()[0]
    _, rows = timed_search(conn, query, lim=50, **kw)
    order = rows[0][3] if rows else "-"
    # The cursor of page `deep_page`: walk there once (not timed), then time that page.
    for _ in range(deep_page - 1):
        _, rows = timed_search(conn, query, lim=50, after=cursor, **kw)
        if len(rows) < 50:
            break
        cursor = rows[-1][2]
    for _ in range(repeats):
        ms, _ = timed_search(conn, query, lim=50, **kw)
        first.append(ms)
        if cursor is not None:
            ms, _ = timed_search(conn, query, lim=50, after=cursor, **kw)
            deep.append(ms)
    return {
        "label": label,
        "query": query,
        "hits": hits,
        "order": order,
        "first_p50": percentile(first, 50),
        "first_p95": percentile(first, 95),
        "first_max": max(first),
        "deep_p50": percentile(deep, 50) if deep else None,
        "deep_p95": percentile(deep, 95) if deep else None,
    }


def explain(conn: psycopg.Connection, query: str, mode: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the page statement `vk.search_comments(query)` runs
    (`vk._search_sql`), with the values and planner settings it runs it with: 'r' = ranked as
    in auto mode (at most 2,001 candidates), 'D' = newest first over many matches."""
    stmt = conn.execute(
        "SELECT vk._search_sql('comments', %s)", ("rank" if mode == "r" else "date",)
    ).fetchone()[0]
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")
        conn.execute(
            f"SET LOCAL {'enable_indexscan' if mode == 'r' else 'enable_bitmapscan'} = off"
        )
        conn.execute(
            "PREPARE page(tsquery, bigint[], timestamptz, timestamptz, boolean, bigint,"
            " timestamptz, bigint, bigint, integer, text, text, text, bigint, tsquery) AS " + stmt
        )
        try:
            args = sql.SQL(", ").join(
                [sql.SQL("websearch_to_tsquery('russian', {})").format(sql.Literal(query))]
                + [sql.SQL(v) for v in ("NULL", "NULL", "NULL", "false", "NULL", "NULL")]
                + [sql.SQL(v) for v in ("NULL", "NULL", "50", "'MaxWords=24'", "'x'")]
                + [sql.Literal(mode), sql.Literal(2001 if mode == "r" else None)]
                + [
                    sql.SQL("querytree(websearch_to_tsquery('russian', {}))::tsquery").format(
                        sql.Literal(query)
                    )
                ]
            )
            rows = conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE page({})").format(args)
            ).fetchall()
        finally:
            conn.execute("DEALLOCATE page")
    return "\n".join(r[0] for r in rows)


def report(results: list[dict[str, object]], title: str) -> float:
    print(f"\n{title}")
    print(
        f"{'case':30} {'query':20} {'hits':>7} {'order':>5} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'max ms':>7} {'deep p50':>8} {'deep p95':>8}"
    )
    for r in results:
        deep50 = f"{r['deep_p50']:8.1f}" if r["deep_p50"] is not None else f"{'-':>8}"
        deep95 = f"{r['deep_p95']:8.1f}" if r["deep_p95"] is not None else f"{'-':>8}"
        print(
            f"{r['label']:30} {r['query']:20} {r['hits']:7,} {r['order']:>5} "
            f"{r['first_p50']:7.1f} {r['first_p95']:7.1f} {r['first_max']:7.1f} {deep50} {deep95}"
        )
    return max(max(r["first_p95"], r["deep_p95"] or 0) for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="admin URL (default: the embedded server)")
    parser.add_argument("--comments", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--deep-page", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    parser.add_argument("--reuse", metavar="URL", help="measure a database kept by --keep")
    args = parser.parse_args()

    admin_url = args.database_url or embedded_database_url(dbname="postgres")
    first = 200_001
    url = args.reuse or create_database(admin_url, "vksearch")
    try:
        pg = PostgresResource(database_url=url)
        pg.ensure_schema()
        loaded = None
        if not args.reuse:
            gen = Generator(args.seed)
            # One big group holding half the rows, the rest spread over the others.
            rest = args.comments // 2 // max(1, args.groups - 1)
            sizes = {first: args.comments - rest * (args.groups - 1)}
            sizes.update({first + i: rest for i in range(1, args.groups)})
            started = time.perf_counter()
            load_groups(pg, gen, sizes)
            loaded = time.perf_counter() - started
        with psycopg.connect(url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            n, groups = conn.execute(
                "SELECT count(*), count(DISTINCT group_id) FROM vk.comments"
            ).fetchone()
            size = conn.execute(
                "SELECT pg_size_pretty(pg_total_relation_size('vk.comments'))"
            ).fetchone()[0]
            print(
                f"PostgreSQL {version} ({'server' if args.database_url else 'embedded'}); "
                f"{n:,} comments in {groups} groups ({size} with indexes)"
                + (f", generated and loaded in {loaded:.0f} s" if loaded else "")
            )
            rare = conn.execute(
                "SELECT word FROM ts_stat('SELECT text_tsv FROM vk.comments')"
                " WHERE ndoc BETWEEN %s AND %s ORDER BY ndoc DESC, word LIMIT 1",
                (max(1, n // 5000), max(2, n // 1000)),
            ).fetchone()
            rare_word = rare[0] if rare else "невстречающееся"
            cases = [
                ("single word, common", "кофе", {}),
                ("single word, rare", rare_word, {}),
                ("phrase", '"хороший кофе"', {}),
                ("-exclusion", "город -фестиваль", {}),
                ("OR", "кофе OR велосипед", {}),
                ("common word, one small group", "кофе", {"group_ids": [first + 1]}),
            ]
            conn.execute("SELECT * FROM vk.search_comments('прогрев')").fetchall()
            auto = [
                measure(conn, label, q, args.repeats, args.deep_page, **kw)
                for label, q, kw in cases
            ]
            worst = report(auto, "order_by => 'auto' (the default)")
            ranked = [
                measure(conn, label, q, max(3, args.repeats // 5), args.deep_page,
                        order_by="rank", **kw)
                for label, q, kw in cases
            ]  # fmt: skip
            worst_rank = report(ranked, "order_by => 'rank' (every match ranked)")
            print(
                f"\nworst p95, auto: {worst:.1f} ms (goal < 100 ms); rank: {worst_rank:.1f} ms. "
                f"{args.repeats} runs per case (rank: {max(3, args.repeats // 5)}); "
                f"deep page = page {args.deep_page} of 50 rows"
            )
            for label, query, mode in (
                ("a broad query, date order (auto's choice)", "город -фестиваль", "D"),
                ("a rare word, rank order (auto's choice)", rare_word, "r"),
            ):
                print(f"\nEXPLAIN (ANALYZE, BUFFERS), {label}: {query!r}")
                print(explain(conn, query, mode))
    finally:
        if args.keep or args.reuse:
            print(f"kept: {url}")
        else:
            drop_database(admin_url, url)


if __name__ == "__main__":
    main()
