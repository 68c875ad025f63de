"""The SQL of the analysis assets. `:"schema"` stands for the quoted schema (as in migrations);
`%(gids)s` are the groups of a batch, and `_w` (group_id, since) holds each one's watermark for an
incremental build.

Every statement works on the slices of a batch of groups at once: a refresh changes a few rows of
hundreds of groups, and ~30 statements per group were most of the analysis step's time.
"Changed" means: a post whose row changed since the watermark (`posts.last_changed_at`), and the
comments under such posts that changed too.
That is complete because the comments asset writes a post's sync state in the same
transaction as its comments (README, "How a refresh stays cheap"), so a comment never changes
without its post's row changing at the same `now()`.
"""

from __future__ import annotations

# Each group of a batch with its watermark (null for a rebuild), for one asset and mode.
WATERMARKS = """
    CREATE TEMP TABLE _w ON COMMIT DROP AS
    SELECT * FROM unnest(%(gids)s::bigint[], %(since)s::timestamptz[]) AS w(group_id, since)
"""
# Per group: its posts changed since its watermark, plus one if its own row changed.
CHANGED = """
    SELECT w.gid,
           (SELECT count(*) FROM :"schema".posts p
            WHERE p.group_id = w.gid AND p.last_changed_at >= w.since)
           + (SELECT count(*) FROM :"schema".groups g
              WHERE g.id = w.gid AND g.last_changed_at >= w.since)
    FROM unnest(%(gids)s::bigint[], %(since)s::timestamptz[]) AS w(gid, since)
"""
STATE_UPSERT = """
    INSERT INTO :"schema".analysis_state
        (asset, group_id, watermark, built_at, mode, full_built_at)
    SELECT a, g, %(wm)s, now(), m, f
    FROM unnest(%(assets)s::text[], %(gids)s::bigint[], %(modes)s::text[],
                %(fulls)s::timestamptz[]) AS s(a, g, m, f)
    ON CONFLICT (asset, group_id) DO UPDATE SET watermark = excluded.watermark,
        built_at = excluded.built_at, mode = excluded.mode, full_built_at = excluded.full_built_at
"""

# The columns every group-level statement needs, read from the heap once per build: each
# statement reading comments itself would read the group's rows (~1 KB each) again.
GROUP_COMMENTS = """
    CREATE TEMP TABLE _cm ON COMMIT DROP AS
    SELECT c.owner_id, c.post_id, c.id, c.from_id, c.date, c.is_deleted, c.group_id,
           c.thread_root_id, c.reply_to_comment
    FROM :"schema".comments c WHERE c.group_id = ANY(%(gids)s)
"""
CM_ALL = "SELECT * FROM _cm WHERE group_id = ANY(%(gids)s)"
CM_SCOPE = """
        SELECT c.owner_id, c.post_id, c.id, c.from_id, c.date, c.is_deleted, c.group_id,
               c.thread_root_id, c.reply_to_comment
        FROM :"schema".comments c
        JOIN _scope s ON c.owner_id = s.owner_id AND c.post_id = s.id
        WHERE c.group_id = ANY(%(gids)s)
"""

# Posts whose derived rows must be recomputed: all of the group's, or those changed since.
SCOPE_ALL = """
    CREATE TEMP TABLE _scope ON COMMIT DROP AS
    SELECT p.owner_id, p.id FROM :"schema".posts p WHERE p.group_id = ANY(%(gids)s)
"""
SCOPE_CHANGED = """
    CREATE TEMP TABLE _scope ON COMMIT DROP AS
    SELECT p.owner_id, p.id FROM :"schema".posts p JOIN _w ON p.group_id = _w.group_id
    WHERE p.last_changed_at >= _w.since
"""

POST_STATS_DELETE = """
    DELETE FROM :"schema".post_stats ps USING _scope s
    WHERE ps.owner_id = s.owner_id AND ps.post_id = s.id
"""
POST_STATS_DELETE_GROUP = """
    DELETE FROM :"schema".post_stats WHERE group_id = ANY(%(gids)s)
"""

# Reply depth follows reply_to_comment chains inside a thread: a top-level comment is 1, a
# reply to it 2, a reply to that reply 3... A reply whose target is not stored starts at 2.
POST_STATS_INSERT = """
    WITH RECURSIVE cm AS MATERIALIZED ({comments}),
    agg AS (
        SELECT owner_id, post_id,
               count(*) FILTER (WHERE NOT is_deleted) AS comments,
               count(*) FILTER (WHERE NOT is_deleted AND thread_root_id IS NULL) AS top_level,
               count(*) FILTER (WHERE NOT is_deleted AND thread_root_id IS NOT NULL) AS replies,
               count(*) FILTER (WHERE is_deleted) AS deleted,
               count(DISTINCT from_id) FILTER (WHERE NOT is_deleted) AS commenters,
               count(*) FILTER (WHERE NOT is_deleted AND from_id = -group_id) AS community,
               min(date) AS first_at,
               max(date) FILTER (WHERE NOT is_deleted) AS last_at
        FROM cm GROUP BY owner_id, post_id
    ),
    threads AS (
        SELECT owner_id, post_id, max(n) AS largest
        FROM (SELECT owner_id, post_id, thread_root_id, count(*) AS n FROM cm
              WHERE thread_root_id IS NOT NULL AND NOT is_deleted
              GROUP BY owner_id, post_id, thread_root_id) t
        GROUP BY owner_id, post_id
    ),
    nested AS MATERIALIZED (
        SELECT owner_id, post_id, id, reply_to_comment FROM cm
        WHERE thread_root_id IS NOT NULL AND reply_to_comment IS DISTINCT FROM thread_root_id
          AND reply_to_comment IS NOT NULL
    ),
    chain (owner_id, post_id, id, depth) AS (
        SELECT r.owner_id, r.post_id, r.id, 2 FROM cm r
        LEFT JOIN cm t ON t.owner_id = r.owner_id AND t.id = r.reply_to_comment
        WHERE r.thread_root_id IS NOT NULL
          AND (r.reply_to_comment IS NULL OR r.reply_to_comment = r.thread_root_id
               OR t.id IS NULL)
        UNION ALL
        SELECT n.owner_id, n.post_id, n.id, chain.depth + 1
        FROM nested n JOIN chain ON n.owner_id = chain.owner_id AND n.reply_to_comment = chain.id
        WHERE chain.depth < 100
    ),
    depth AS (SELECT owner_id, post_id, max(depth) AS depth FROM chain GROUP BY owner_id, post_id),
    written AS (
    INSERT INTO :"schema".post_stats (
        owner_id, post_id, group_id, date, is_pinned, is_deleted, likes, reposts, views,
        comments_vk, comments, top_level_comments, replies, deleted_comments, unique_commenters,
        community_comments, community_share, largest_thread, reply_depth, engagement,
        engagement_rate, first_comment_at, last_comment_at, minutes_to_first_comment)
    SELECT p.owner_id, p.id, p.group_id, p.date, p.is_pinned, p.is_deleted, p.likes_count,
           p.reposts_count, p.views_count, p.comments_count,
           coalesce(a.comments, 0), coalesce(a.top_level, 0), coalesce(a.replies, 0),
           coalesce(a.deleted, 0), coalesce(a.commenters, 0), coalesce(a.community, 0),
           a.community::real / nullif(a.comments, 0),
           coalesce(t.largest, 0),
           CASE WHEN d.depth IS NOT NULL THEN d.depth
                WHEN coalesce(a.comments, 0) + coalesce(a.deleted, 0) > 0 THEN 1 ELSE 0 END,
           coalesce(p.likes_count, 0) + coalesce(a.comments, 0) + coalesce(p.reposts_count, 0),
           (coalesce(p.likes_count, 0) + coalesce(a.comments, 0) + coalesce(p.reposts_count, 0))
               / nullif(g.members_count, 0)::double precision,
           a.first_at, a.last_at,
           extract(epoch FROM a.first_at - p.date)::double precision / 60
    FROM :"schema".posts p
    JOIN _scope s ON p.owner_id = s.owner_id AND p.id = s.id
    JOIN :"schema".groups g ON g.id = p.group_id
    LEFT JOIN agg a ON a.owner_id = p.owner_id AND a.post_id = p.id
    LEFT JOIN threads t ON t.owner_id = p.owner_id AND t.post_id = p.id
    LEFT JOIN depth d ON d.owner_id = p.owner_id AND d.post_id = p.id
    RETURNING group_id
    )
    SELECT group_id, count(*) FROM written GROUP BY group_id
"""

# Members change every day: rates of untouched posts follow without touching their comments.
POST_STATS_RATES = """
    WITH moved AS (
        UPDATE :"schema".post_stats ps
        SET engagement_rate = ps.engagement / nullif(g.members_count, 0)::double precision
        FROM :"schema".groups g
        WHERE ps.group_id = ANY(%(gids)s) AND g.id = ps.group_id
          AND ps.engagement_rate IS DISTINCT FROM
              ps.engagement / nullif(g.members_count, 0)::double precision
        RETURNING ps.group_id
    )
    SELECT group_id, count(*) FROM moved GROUP BY group_id
"""

GROUP_ACTIVITY_REBUILD = """
    WITH cm AS MATERIALIZED (
        SELECT c.group_id, c.post_id, c.from_id, c.date, c.is_deleted, c.thread_root_id,
               (c.date AT TIME ZONE 'UTC')::date AS day
        FROM _cm c WHERE c.date IS NOT NULL AND c.group_id = ANY(%(gids)s)
    ),
    cday AS (
        SELECT group_id, day,
               count(*) FILTER (WHERE NOT is_deleted) AS comments,
               count(*) FILTER (WHERE NOT is_deleted AND thread_root_id IS NOT NULL) AS replies,
               count(DISTINCT from_id) FILTER (WHERE NOT is_deleted) AS commenters
        FROM cm GROUP BY group_id, day
    ),
    -- An author's first comment counts even if it was deleted later: they had arrived.
    newc AS (
        SELECT group_id, first_day AS day, count(*) AS n
        FROM (SELECT group_id, from_id, min(day) AS first_day FROM cm
              WHERE from_id IS NOT NULL GROUP BY group_id, from_id) f
        GROUP BY group_id, first_day
    ),
    per_post AS (
        SELECT p.group_id, (p.date AT TIME ZONE 'UTC')::date AS day, coalesce(pc.n, 0) AS comments
        FROM :"schema".posts p
        LEFT JOIN (SELECT group_id, post_id, count(*) AS n FROM cm WHERE NOT is_deleted
                   GROUP BY group_id, post_id) pc
               ON pc.group_id = p.group_id AND pc.post_id = p.id
        WHERE p.group_id = ANY(%(gids)s) AND NOT p.is_deleted
    ),
    pday AS (
        SELECT group_id, day, count(*) AS posts,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY comments) AS median
        FROM per_post GROUP BY group_id, day
    ),
    written AS (
    INSERT INTO :"schema".group_activity_daily (
        group_id, day, posts, comments, replies, unique_commenters, new_commenters,
        median_comments_per_post)
    SELECT d.group_id, d.day, coalesce(pday.posts, 0), coalesce(cday.comments, 0),
           coalesce(cday.replies, 0), coalesce(cday.commenters, 0), coalesce(newc.n, 0),
           pday.median
    FROM (SELECT group_id, day FROM cday UNION SELECT group_id, day FROM pday) d
    LEFT JOIN cday ON cday.group_id = d.group_id AND cday.day = d.day
    LEFT JOIN pday ON pday.group_id = d.group_id AND pday.day = d.day
    LEFT JOIN newc ON newc.group_id = d.group_id AND newc.day = d.day
    RETURNING group_id
    )
    SELECT group_id, count(*) FROM written GROUP BY group_id
"""
GROUP_ACTIVITY_DELETE = """
    DELETE FROM :"schema".group_activity_daily WHERE group_id = ANY(%(gids)s)
"""

TOP_COMMENTERS_DELETE = """
    DELETE FROM :"schema".top_commenters WHERE group_id = ANY(%(gids)s)
"""
TOP_COMMENTERS_REBUILD = """
    WITH cm AS MATERIALIZED (
        SELECT c.group_id, c.from_id, c.date, c.owner_id, c.post_id FROM _cm c
        WHERE NOT c.is_deleted AND c.from_id IS NOT NULL AND c.date IS NOT NULL
          AND c.group_id = ANY(%(gids)s)
    ),
    wend AS (SELECT group_id, max(date) AS window_end FROM cm GROUP BY group_id),
    per AS (
        SELECT cm.group_id, cm.from_id, count(*) AS all_time,
               count(*) FILTER (WHERE cm.date > w.window_end - interval '30 days') AS d30,
               count(DISTINCT cm.post_id) AS posts, min(cm.date) AS first_seen,
               max(cm.date) AS last_seen, w.window_end
        FROM cm JOIN wend w ON w.group_id = cm.group_id
        GROUP BY cm.group_id, cm.from_id, w.window_end
    ),
    ranked AS (
        SELECT per.*,
               row_number() OVER (PARTITION BY group_id ORDER BY all_time DESC, from_id)
                   AS rank_all,
               CASE WHEN d30 > 0 THEN row_number() OVER (PARTITION BY group_id
                                                          ORDER BY d30 DESC, from_id) END
                   AS rank_30d
        FROM per
    ),
    written AS (
    INSERT INTO :"schema".top_commenters (
        group_id, from_id, comments_all_time, comments_30d, posts_commented, rank_all_time,
        rank_30d, first_seen, last_seen, window_end)
    SELECT group_id, from_id, all_time, d30, posts, rank_all, rank_30d, first_seen, last_seen,
           window_end
    FROM ranked WHERE rank_all <= %(top_n)s OR rank_30d <= %(top_n)s
    RETURNING group_id
    )
    SELECT group_id, count(*) FROM written GROUP BY group_id
"""

# Hashtags, mentions and links: text_entities holds what each live post and comment contains;
# the per-day table is aggregated from it for the days that changed (or all of the group's).
ENTITIES_DELETE_GROUP = """
    DELETE FROM :"schema".text_entities WHERE group_id = ANY(%(gids)s)
"""
# The days the changed items had entities on before, and the items themselves.
ENTITIES_TOUCHED = """
    CREATE TEMP TABLE _touched_days ON COMMIT DROP AS
    SELECT DISTINCT e.group_id, e.day FROM :"schema".text_entities e
    JOIN _items i ON e.owner_id = i.owner_id AND e.source = i.source AND e.item_id = i.id
    WHERE e.group_id = ANY(%(gids)s)
    UNION
    SELECT DISTINCT i.group_id, i.day FROM _items i WHERE i.day IS NOT NULL
"""
ITEMS_CHANGED = """
    CREATE TEMP TABLE _items ON COMMIT DROP AS
    SELECT 'post'::text AS source, p.group_id, p.owner_id, p.id,
           (p.date AT TIME ZONE 'UTC')::date AS day
    FROM :"schema".posts p JOIN _scope s ON p.owner_id = s.owner_id AND p.id = s.id
    UNION ALL
    SELECT 'comment', c.group_id, c.owner_id, c.id, (c.date AT TIME ZONE 'UTC')::date
    FROM :"schema".comments c JOIN _scope s ON c.owner_id = s.owner_id AND c.post_id = s.id
    JOIN _w ON _w.group_id = c.group_id
    WHERE c.group_id = ANY(%(gids)s) AND c.last_changed_at >= _w.since
"""
ENTITIES_DELETE_ITEMS = """
    DELETE FROM :"schema".text_entities e USING _items i
    WHERE e.owner_id = i.owner_id AND e.source = i.source AND e.item_id = i.id
"""
_LINKS = "CASE WHEN 'link' = ANY (t.attachment_types) THEN t.raw -> 'attachments' END"
ENTITIES_INSERT = f"""
    INSERT INTO :"schema".text_entities (group_id, source, owner_id, item_id, day, kind, value, n)
    SELECT t.group_id, 'post', t.owner_id, t.id, (t.date AT TIME ZONE 'UTC')::date, e.kind,
           e.value, count(*)
    FROM :"schema".posts t
    CROSS JOIN LATERAL :"schema".extract_entities(t.text, {_LINKS}) e
    WHERE t.group_id = ANY(%(gids)s) AND NOT t.is_deleted {{posts}}
      AND (:"schema".may_have_entities(t.text) OR 'link' = ANY (t.attachment_types))
    GROUP BY t.group_id, t.owner_id, t.id, t.date, e.kind, e.value
    UNION ALL
    SELECT t.group_id, 'comment', t.owner_id, t.id, (t.date AT TIME ZONE 'UTC')::date, e.kind,
           e.value, count(*)
    FROM :"schema".comments t
    CROSS JOIN LATERAL :"schema".extract_entities(t.text, {_LINKS}) e
    WHERE t.group_id = ANY(%(gids)s) AND NOT t.is_deleted AND t.date IS NOT NULL {{comments}}
      AND (:"schema".may_have_entities(t.text) OR 'link' = ANY (t.attachment_types))
    GROUP BY t.group_id, t.owner_id, t.id, t.date, e.kind, e.value
"""
ENTITIES_INSERT_ALL = ENTITIES_INSERT.format(posts="", comments="")
ENTITIES_INSERT_ITEMS = ENTITIES_INSERT.format(
    posts="AND EXISTS (SELECT 1 FROM _items i WHERE i.source = 'post' AND i.owner_id = t.owner_id"
    " AND i.id = t.id)",
    comments="AND EXISTS (SELECT 1 FROM _items i WHERE i.source = 'comment'"
    " AND i.owner_id = t.owner_id AND i.id = t.id)",
)
DAILY_ENTITIES_DELETE = """
    DELETE FROM :"schema".hashtags_mentions_links WHERE group_id = ANY(%(gids)s) {days}
"""
DAILY_ENTITIES_INSERT = """
    WITH written AS (
    INSERT INTO :"schema".hashtags_mentions_links (
        group_id, day, source, kind, value, occurrences, items)
    SELECT group_id, day, source, kind, value, sum(n), count(*)
    FROM :"schema".text_entities
    WHERE group_id = ANY(%(gids)s) {days}
    GROUP BY group_id, day, source, kind, value
    RETURNING group_id
    )
    SELECT group_id, count(*) FROM written GROUP BY group_id
"""
ONLY_TOUCHED_DAYS = "AND (group_id, day) IN (SELECT group_id, day FROM _touched_days)"
