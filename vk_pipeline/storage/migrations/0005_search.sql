-- Full-text search over posts and comments (Russian), ranked, with keyset pagination.
--
--   SELECT * FROM :"schema".search_comments('кофе -чай');
--   SELECT * FROM :"schema".search_comments('"хороший кофе"', group_ids => '{100001}',
--                                           since => '2024-01-01', lim => 20, after => '<cursor>');
--   SELECT * FROM :"schema".search_posts('кошки OR собаки', list_name => 'moscow');
--
-- `query` is websearch syntax ("phrase", -word, OR) under the `russian` configuration, matched
-- against the stored, GIN-indexed `text_tsv`. Deleted rows are left out unless
-- include_deleted. Every row carries `cursor`, an opaque token meaning "the rows after this
-- one": pass the last row's cursor as `after` for the next page. Keyset, not OFFSET, so a deep
-- page costs what the first one does. A cursor only works with the query it came from.
--
-- Order (`order_by`):
--   rank  best first: ts_rank, then newest, then key. Exact, but it must rank every match, so
--         its cost grows with the number of matches (measured in benchmarks/search_bench.py).
--   date  newest first, then key.
--   auto  (default) rank when the filters leave at most `rank_limit` matches, else date. The
--         check reads at most rank_limit + 1 index hits; the choice is kept in the cursor, so
--         all pages of one search share one order. Each row says which order it is in.
-- A rank is quantized to an integer (ts_rank * 1e7) so that the cursor holds it exactly; the
-- orders are total: (rank, date, owner_id, id) or (date, owner_id, id), all descending.
-- Statements run through EXECUTE ... USING and are planned with the actual values, so a group
-- filter gets a plan of its own; ts_headline re-parses text, so it runs on the page rows only.

-- Newest-first search inside one group walks this index (the global comments_date_idx would
-- pass over every other group's rows). It also serves everything comments_group_id_idx does.
CREATE INDEX comments_group_id_date_idx ON :"schema".comments (group_id, date);

CREATE FUNCTION :"schema"._search_cursor(
    mode text, fingerprint text, rank_key bigint, date_key timestamptz, owner_id bigint, id bigint
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $body$
    SELECT rtrim(translate(encode(convert_to(concat_ws(':', 'v1', mode, fingerprint,
        coalesce(rank_key::text, ''), (extract(epoch FROM date_key) * 1000000)::bigint,
        owner_id, id), 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$body$;

-- The position a cursor stands for; raises on a malformed cursor or one from another search.
CREATE FUNCTION :"schema"._search_after(fingerprint text, after text,
    OUT mode text, OUT rank_key bigint, OUT date_key timestamptz, OUT owner_id bigint, OUT id bigint)
LANGUAGE plpgsql IMMUTABLE
AS $body$
DECLARE
    parts text[];
    padded text;
BEGIN
    padded := translate(after, '-_', '+/');
    padded := padded || repeat('=', (4 - length(padded) % 4) % 4);
    BEGIN
        parts := string_to_array(convert_from(decode(padded, 'base64'), 'UTF8'), ':');
        IF array_length(parts, 1) <> 7 OR parts[1] <> 'v1' OR parts[2] NOT IN ('r', 'd', 'D') THEN
            RAISE EXCEPTION 'bad shape';
        END IF;
        mode := parts[2];
        rank_key := nullif(parts[4], '')::bigint;
        date_key := timestamptz 'epoch' + (parts[5]::bigint * interval '1 microsecond');
        owner_id := parts[6]::bigint;
        id := parts[7]::bigint;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'invalid search cursor %', quote_literal(left(after, 80))
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass the "cursor" of a row returned by the same search';
    END;
    IF parts[3] <> fingerprint THEN
        RAISE EXCEPTION 'search cursor % belongs to another search',
                quote_literal(left(after, 80))
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'a cursor works only with the query (and posts/comments) it came from';
    END IF;
END
$body$;

-- Group filter: the explicit ids and/or the members of a group list; NULL means all groups.
CREATE FUNCTION :"schema"._search_groups(group_ids bigint[], list_name text) RETURNS bigint[]
LANGUAGE sql STABLE
AS $body$
    SELECT CASE
        WHEN list_name IS NULL THEN group_ids
        WHEN group_ids IS NULL THEN :"schema".list_group_ids(list_name)
        ELSE ARRAY(SELECT unnest(:"schema".list_group_ids(list_name))
                   INTERSECT SELECT unnest(group_ids) ORDER BY 1)
    END
$body$;

-- The statements a search runs, as text with parameters $1..$15 (see _search's USING):
-- kept apart so that a test or benchmark can EXPLAIN exactly what a search executes.
CREATE FUNCTION :"schema"._search_sql(kind text, part text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $body$
DECLARE
    cols text;
    tbl text;
    source text;
BEGIN
    IF kind = 'comments' THEN
        cols := $cols$ t.owner_id, t.id, t.group_id, t.post_id, t.from_id, t.date,
            t.thread_root_id, t.is_deleted, NULL::boolean AS is_pinned,
            NULL::integer AS comments_count, t.text, t.text_tsv $cols$;
        tbl := $src$ FROM :"schema".comments t $src$;
    ELSIF kind = 'posts' THEN
        cols := $cols$ t.owner_id, t.id, t.group_id, t.id AS post_id, t.from_id, t.date,
            NULL::bigint AS thread_root_id, t.is_deleted, t.is_pinned, t.comments_count,
            t.text, t.text_tsv $cols$;
        tbl := $src$ FROM :"schema".posts t $src$;
    ELSE
        RAISE EXCEPTION 'unknown search kind %', quote_literal(kind);
    END IF;
    source := tbl || $where$
        WHERE t.text_tsv @@ $1
          -- one group as an equality: only that lets the (group_id, date) index give date order
          AND ($2::bigint[] IS NULL OR cardinality($2) = 1 OR t.group_id = ANY ($2))
          AND (cardinality($2::bigint[]) IS DISTINCT FROM 1 OR t.group_id = $2[1])
          AND ($3::timestamptz IS NULL OR t.date >= $3)
          AND ($4::timestamptz IS NULL OR t.date < $4)
          AND ($5 OR NOT t.is_deleted) $where$;
    IF part = 'count' THEN
        -- $6: rank_limit + 1
        RETURN 'SELECT count(*) FROM (SELECT 1 ' || source || ' LIMIT $6) s';
    ELSIF part = 'rank' THEN
        -- Candidates are keys and ranks only; text is fetched for the page rows alone.
        -- $14 (rank_limit + 1 in auto mode, else NULL = no limit): when that many match, the
        -- page is empty and one 'overflow' row says so (the caller switches to date order).
        RETURN 'WITH cand AS MATERIALIZED (SELECT t.owner_id, t.id, t.date, '
            || '(ts_rank(t.text_tsv, $15) * 1e7)::bigint AS rank_key ' || source || $rank$
                LIMIT $14),
            over AS (SELECT $14::bigint IS NOT NULL AND count(*) >= $14 AS overflow FROM cand),
            page AS (
                SELECT c.* FROM cand c
                WHERE NOT (SELECT o.overflow FROM over o)
                  AND ($6::bigint IS NULL
                       OR (c.rank_key, coalesce(c.date, 'epoch'), c.owner_id, c.id)
                          < ($6, $7::timestamptz, $8::bigint, $9::bigint))
                ORDER BY c.rank_key DESC, coalesce(c.date, 'epoch') DESC, c.owner_id DESC,
                         c.id DESC
                LIMIT $10)
            (SELECT t.owner_id, t.id, t.group_id, t.post_id, t.from_id, t.date, t.thread_root_id,
                    t.is_deleted, t.is_pinned, t.comments_count, (p.rank_key / 1e7)::real AS rank,
                    ts_headline('russian', coalesce(t.text, ''), $1, $11) AS snippet,
                    'rank' AS ordered_by,
                    :"schema"._search_cursor($13, $12, p.rank_key, coalesce(p.date, 'epoch'),
                                             p.owner_id, p.id) AS cursor
             FROM page p
             JOIN (SELECT $rank$ || cols || tbl || $rank2$) t
               ON t.owner_id = p.owner_id AND t.id = p.id
             ORDER BY p.rank_key DESC, coalesce(p.date, 'epoch') DESC, p.owner_id DESC,
                      p.id DESC)
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   'overflow', NULL
            FROM over WHERE overflow
        $rank2$;
    ELSIF part = 'date' THEN
        RETURN 'WITH page AS (SELECT ' || cols || source || $date$
                  AND t.date IS NOT NULL
                  AND ($6::bigint IS NULL OR true)
                  AND ($14::bigint IS NULL OR true)
                  AND ($15::tsquery IS NULL OR true)
                  AND ($7::timestamptz IS NULL
                       OR (t.date <= $7 AND (t.date, t.owner_id, t.id) < ($7, $8::bigint, $9::bigint)))
                ORDER BY t.date DESC, t.owner_id DESC, t.id DESC
                LIMIT $10)
            SELECT p.owner_id, p.id, p.group_id, p.post_id, p.from_id, p.date, p.thread_root_id,
                   p.is_deleted, p.is_pinned, p.comments_count, ts_rank(p.text_tsv, $15),
                   ts_headline('russian', coalesce(p.text, ''), $1, $11), 'date',
                   :"schema"._search_cursor($13, $12, NULL, p.date, p.owner_id, p.id)
            FROM page p
            ORDER BY p.date DESC, p.owner_id DESC, p.id DESC
        $date$;
    END IF;
    RAISE EXCEPTION 'unknown search statement %', quote_literal(part);
END
$body$;

-- Both searches: `kind` is 'comments' or 'posts'; the public functions below shape the rows.
CREATE FUNCTION :"schema"._search(
    kind text, query text, group_ids bigint[], since timestamptz, until timestamptz,
    lim integer, after text, include_deleted boolean, list_name text, order_by text,
    rank_limit integer, headline_options text
) RETURNS TABLE (
    owner_id bigint, id bigint, group_id bigint, post_id bigint, from_id bigint,
    date timestamptz, thread_root_id bigint, is_deleted boolean, is_pinned boolean,
    comments_count integer, rank real, snippet text, ordered_by text, cursor text
)
LANGUAGE plpgsql STABLE
-- JIT compilation costs more than a page of results saves. Plain index scans (for ranking) and
-- bitmap scans (for dense date-ordered pages) are switched off locally, as explained below;
-- the SET clauses restore the caller's settings on exit.
SET jit = off
SET enable_bitmapscan = on
SET enable_indexscan = on
AS $body$
DECLARE
    tsq tsquery := websearch_to_tsquery('russian', coalesce(query, ''));
    -- Ranked on the positive terms: ts_rank gives any match of a query with NOT about 1e-20.
    rank_q tsquery := CASE WHEN querytree(tsq) = 'T' THEN tsq ELSE querytree(tsq)::tsquery END;
    groups bigint[] := :"schema"._search_groups(group_ids, list_name);
    fingerprint text := left(md5(kind || ':' || coalesce(query, '')), 10);
    mode text;
    a_rank bigint;
    a_date timestamptz;
    a_owner bigint;
    a_id bigint;
    hits integer;
    headline text := coalesce(headline_options,
                              'MaxFragments=2, MaxWords=24, MinWords=8, FragmentDelimiter=" … "');
    r record;
BEGIN
    IF lim IS NULL OR lim < 1 OR lim > 1000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 1000, got %', coalesce(lim::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF order_by IS NULL OR order_by NOT IN ('auto', 'rank', 'date') THEN
        RAISE EXCEPTION 'order_by must be auto, rank or date, got %',
                coalesce(quote_literal(order_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rank_limit IS NULL OR rank_limit < 0 THEN
        RAISE EXCEPTION 'rank_limit must be >= 0, got %', coalesce(rank_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF numnode(tsq) = 0 THEN
        RETURN;  -- only stop words or punctuation: nothing can match
    END IF;

    IF after IS NOT NULL THEN
        SELECT * INTO mode, a_rank, a_date, a_owner, a_id
        FROM :"schema"._search_after(fingerprint, after) c;
    ELSIF order_by = 'date' THEN
        -- Dense or sparse decides the plan (see 'D' below).
        PERFORM set_config('enable_indexscan', 'off', true);
        EXECUTE :"schema"._search_sql(kind, 'count') INTO hits
            USING tsq, groups, since, until, include_deleted, rank_limit + 1;
        mode := CASE WHEN hits > rank_limit THEN 'D' ELSE 'd' END;
    ELSE
        mode := CASE WHEN order_by = 'rank' THEN 'r' ELSE 'auto' END;
    END IF;

    IF mode IN ('r', 'auto') THEN
        -- Ranking visits every match: a bitmap scan driven by the GIN index (ANDed with the
        -- group or date index when they help), never a walk of the group or date index that
        -- reads every row of the group to filter it.
        PERFORM set_config('enable_indexscan', 'off', true);
        FOR r IN EXECUTE :"schema"._search_sql(kind, 'rank')
            USING tsq, groups, since, until, include_deleted, a_rank, a_date, a_owner, a_id,
                  lim, headline, fingerprint, 'r',
                  CASE WHEN mode = 'auto' THEN rank_limit + 1 END, rank_q
        LOOP
            IF r.ordered_by = 'overflow' THEN
                mode := 'D';
                EXIT;
            END IF;
            owner_id := r.owner_id; id := r.id; group_id := r.group_id; post_id := r.post_id;
            from_id := r.from_id; date := r.date; thread_root_id := r.thread_root_id;
            is_deleted := r.is_deleted; is_pinned := r.is_pinned;
            comments_count := r.comments_count; rank := r.rank; snippet := r.snippet;
            ordered_by := r.ordered_by; cursor := r.cursor;
            RETURN NEXT;
        END LOOP;
        IF mode <> 'D' THEN
            RETURN;
        END IF;
    END IF;

    PERFORM set_config('enable_indexscan', 'on', true);
    IF mode = 'D' AND kind = 'comments' AND coalesce(cardinality(groups), 1) = 1 THEN
        -- 'D': many matches, so walking the date index (or the group's (group_id, date)
        -- index) newest first finds a page after a few hundred rows; the planner's estimate
        -- for phrases and AND is often far too low and would pick a bitmap scan that visits
        -- every match before sorting them. With several groups no index gives date order,
        -- so the planner chooses.
        PERFORM set_config('enable_bitmapscan', 'off', true);
    END IF;
    RETURN QUERY EXECUTE :"schema"._search_sql(kind, 'date')
        USING tsq, groups, since, until, include_deleted, a_rank, a_date, a_owner, a_id, lim,
              headline, fingerprint, mode, NULL::bigint, rank_q;
END
$body$;

CREATE FUNCTION :"schema".search_comments(
    query text,
    group_ids bigint[] DEFAULT NULL,
    since timestamptz DEFAULT NULL,
    until timestamptz DEFAULT NULL,
    lim integer DEFAULT 50,
    after text DEFAULT NULL,
    include_deleted boolean DEFAULT false,
    list_name text DEFAULT NULL,
    order_by text DEFAULT 'auto',
    rank_limit integer DEFAULT 2000,
    headline_options text DEFAULT NULL
) RETURNS TABLE (
    group_id bigint,
    post_id bigint,
    comment_id bigint,
    owner_id bigint,
    from_id bigint,
    date timestamptz,
    thread_root_id bigint,
    is_deleted boolean,
    rank real,
    snippet text,
    url text,
    ordered_by text,
    cursor text
)
LANGUAGE sql STABLE
AS $body$
    SELECT s.group_id, s.post_id, s.id, s.owner_id, s.from_id, s.date, s.thread_root_id,
           s.is_deleted, s.rank, s.snippet,
           format('https://vk.com/wall%s_%s?reply=%s', s.owner_id, s.post_id, s.id)
               || coalesce('&thread=' || s.thread_root_id, ''),
           s.ordered_by, s.cursor
    FROM :"schema"._search('comments', query, group_ids, since, until, lim, after,
                           include_deleted, list_name, order_by, rank_limit, headline_options)
         WITH ORDINALITY AS s
    ORDER BY s.ordinality
$body$;

CREATE FUNCTION :"schema".search_posts(
    query text,
    group_ids bigint[] DEFAULT NULL,
    since timestamptz DEFAULT NULL,
    until timestamptz DEFAULT NULL,
    lim integer DEFAULT 50,
    after text DEFAULT NULL,
    include_deleted boolean DEFAULT false,
    list_name text DEFAULT NULL,
    order_by text DEFAULT 'auto',
    rank_limit integer DEFAULT 2000,
    headline_options text DEFAULT NULL
) RETURNS TABLE (
    group_id bigint,
    post_id bigint,
    owner_id bigint,
    from_id bigint,
    date timestamptz,
    is_pinned boolean,
    is_deleted boolean,
    comments_count integer,
    rank real,
    snippet text,
    url text,
    ordered_by text,
    cursor text
)
LANGUAGE sql STABLE
AS $body$
    SELECT s.group_id, s.post_id, s.owner_id, s.from_id, s.date, s.is_pinned, s.is_deleted,
           s.comments_count, s.rank, s.snippet,
           format('https://vk.com/wall%s_%s', s.owner_id, s.post_id),
           s.ordered_by, s.cursor
    FROM :"schema"._search('posts', query, group_ids, since, until, lim, after,
                           include_deleted, list_name, order_by, rank_limit, headline_options)
         WITH ORDINALITY AS s
    ORDER BY s.ordinality
$body$;
