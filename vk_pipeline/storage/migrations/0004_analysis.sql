-- Content analysis tables, derived from groups/posts/comments by the `analysis` assets
-- (vk_pipeline/assets/analysis). Every table is keyed by group first: a materialization
-- replaces or patches one group's slice, never another's.
-- Days are UTC calendar days.

-- Per post: counters, comment structure, reach and reaction time.
CREATE TABLE :"schema".post_stats (
    owner_id               bigint NOT NULL,
    post_id                bigint NOT NULL,
    group_id               bigint NOT NULL,
    date                   timestamptz NOT NULL,
    is_pinned              boolean,
    is_deleted             boolean NOT NULL,
    likes                  integer,
    reposts                integer,
    views                  integer,
    comments_vk            integer,          -- VK's comments.count (live comments incl. replies)
    comments               integer NOT NULL, -- stored live comments incl. replies
    top_level_comments     integer NOT NULL,
    replies                integer NOT NULL,
    deleted_comments       integer NOT NULL, -- tombstones and stubs
    unique_commenters      integer NOT NULL,
    community_comments     integer NOT NULL, -- written by the community itself (from_id = -group)
    community_share        real,             -- community_comments / comments
    largest_thread         integer NOT NULL, -- replies under the busiest top-level comment
    reply_depth            integer NOT NULL, -- longest reply-to chain: 0 none, 1 top level only, 2+ replies to replies
    engagement             bigint,           -- likes + comments + reposts
    engagement_rate        double precision, -- engagement / group members_count
    first_comment_at       timestamptz,
    last_comment_at        timestamptz,
    minutes_to_first_comment double precision,
    computed_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, post_id)
);
CREATE INDEX post_stats_group_id_date_idx ON :"schema".post_stats (group_id, date DESC);

-- Per group and day: activity on the wall.
CREATE TABLE :"schema".group_activity_daily (
    group_id                 bigint NOT NULL,
    day                      date NOT NULL,
    posts                    integer NOT NULL, -- live posts published that day
    comments                 integer NOT NULL, -- live comments written that day (incl. replies)
    replies                  integer NOT NULL,
    unique_commenters        integer NOT NULL,
    new_commenters           integer NOT NULL, -- whose first comment in the group is that day
    median_comments_per_post double precision, -- over live posts published that day (0 counts)
    computed_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, day)
);

-- Per group: the most active commenters, all time and over the 30 days up to window_end.
CREATE TABLE :"schema".top_commenters (
    group_id          bigint NOT NULL,
    from_id           bigint NOT NULL,
    comments_all_time integer NOT NULL,
    comments_30d      integer NOT NULL,
    posts_commented   integer NOT NULL,
    rank_all_time     integer NOT NULL,
    rank_30d          integer,             -- NULL: no comment in the window
    first_seen        timestamptz,
    last_seen         timestamptz,
    window_end        timestamptz NOT NULL, -- the newest stored comment of the group
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, from_id)
);

-- Hashtags, mentions and links found in one post or comment: the incremental part of
-- hashtags_mentions_links (only items that changed are re-extracted).
CREATE TABLE :"schema".text_entities (
    group_id   bigint NOT NULL,
    source     text NOT NULL CHECK (source IN ('post', 'comment')),
    owner_id   bigint NOT NULL,
    item_id    bigint NOT NULL,
    day        date NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('hashtag', 'mention', 'link')),
    value      text NOT NULL,
    n          integer NOT NULL,
    PRIMARY KEY (owner_id, source, item_id, kind, value)
);
CREATE INDEX text_entities_group_day_idx ON :"schema".text_entities (group_id, day);

-- Per group, day, source and entity: occurrences and distinct posts/comments.
CREATE TABLE :"schema".hashtags_mentions_links (
    group_id    bigint NOT NULL,
    day         date NOT NULL,
    source      text NOT NULL,
    kind        text NOT NULL,
    value       text NOT NULL,
    occurrences integer NOT NULL,
    items       integer NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, day, source, kind, value)
);
CREATE INDEX hashtags_mentions_links_value_idx ON :"schema".hashtags_mentions_links (kind, value);

-- What each analysis asset last built per group: the point from which the next build only
-- needs rows changed since (see vk_pipeline/assets/analysis).
CREATE TABLE :"schema".analysis_state (
    asset          text NOT NULL,
    group_id       bigint NOT NULL,
    watermark      timestamptz NOT NULL,  -- rows changed at or after this are not in the build yet
    built_at       timestamptz NOT NULL DEFAULT now(),
    mode           text NOT NULL,         -- rebuild, incremental or unchanged
    full_built_at  timestamptz NOT NULL,  -- the last full rebuild
    PRIMARY KEY (asset, group_id)
);

-- A link as counted: host lower-cased, without scheme and "www.", trailing punctuation off.
CREATE FUNCTION :"schema".normalize_link(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $body$
    SELECT lower(substring(u FROM '^(?:[a-z]+://)?(?:www\.)?([^/?#]*)'))
           || coalesce(substring(u FROM '^(?:[a-z]+://)?(?:www\.)?[^/?#]*(.*)$'), '')
    FROM (SELECT rtrim(btrim(url), '.,!?;:)»"''') AS u) s
$body$;

-- Hashtags (#word, lower-cased, a letter required, "#tag@community" counts as "tag"),
-- mentions ([id1|Name], [club1|…] with public/event folded into club, [screen_name|…],
-- @screen_name, *id1) and links (http(s)://, www., bare vk.com/vk.cc/vk.me links, and the
-- url of link attachments) in a text. One row per occurrence. Each pattern runs only on texts
-- holding its marker character: PostgreSQL's regex engine costs ~10 µs a text, strpos ~0.1.
CREATE FUNCTION :"schema".extract_entities(body text, attachments jsonb DEFAULT NULL)
RETURNS TABLE (kind text, value text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $body$
    SELECT 'hashtag', lower(m[1])
    FROM regexp_matches(body,
        '(?:^|[^0-9A-Za-zА-Яа-яЁё_/&#])#([0-9_]*[A-Za-zА-Яа-яЁё][0-9A-Za-zА-Яа-яЁё_]*)', 'g') m
    WHERE strpos(body, '#') > 0
    UNION ALL
    SELECT 'mention', regexp_replace(lower(m[1]), '^(?:public|event)([0-9]+)$', 'club\1')
    FROM regexp_matches(body, '\[([A-Za-z][A-Za-z0-9_.]*)\|[^]]*\]', 'g') m
    WHERE strpos(body, '[') > 0
    UNION ALL
    SELECT 'mention', regexp_replace(lower(rtrim(m[1], '.')), '^(?:public|event)([0-9]+)$', 'club\1')
    FROM regexp_matches(body, '(?:^|[^0-9A-Za-zА-Яа-яЁё_.@/*])[@*]([A-Za-z][A-Za-z0-9_.]*)', 'g') m
    WHERE strpos(body, '@') > 0 OR strpos(body, '*') > 0
    UNION ALL
    SELECT 'link', :"schema".normalize_link(m[1])
    FROM regexp_matches(body,
        '((?:https?://|www\.)[^\s<>"«»]+|(?:^|(?<=[^0-9A-Za-z_./@]))(?:vk\.com|vk\.cc|vk\.me)/[^\s<>"«»]+)',
        'gi') m
    WHERE strpos(body, '://') > 0 OR strpos(lower(body), 'www.') > 0 OR strpos(body, 'vk.') > 0
    UNION ALL
    SELECT 'link', :"schema".normalize_link(a -> 'link' ->> 'url')
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(attachments) = 'array'
                                   THEN attachments ELSE '[]' END) a
    WHERE a ->> 'type' = 'link' AND a -> 'link' ->> 'url' IS NOT NULL
$body$;

-- Texts that may hold an entity: a cheap test that spares most rows the function call.
CREATE FUNCTION :"schema".may_have_entities(body text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $body$ SELECT body ~ '[#@*[]|://|www\.|vk\.(com|cc|me)/' $body$;

-- The groups of a group list (vk.group_lists), for filtering any table by list:
--   SELECT * FROM :"schema".post_stats WHERE group_id = ANY(:"schema".list_group_ids('moscow'));
-- An unknown list is an error, not an empty result, so a typo does not look like "no data".
CREATE FUNCTION :"schema".list_group_ids(list_name text) RETURNS bigint[]
LANGUAGE plpgsql STABLE
AS $body$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM :"schema".group_lists l WHERE l.name = list_name) THEN
        RAISE EXCEPTION 'unknown group list %', quote_literal(list_name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (SELECT coalesce(array_agg(m.group_id ORDER BY m.group_id), '{}')
            FROM :"schema".group_list_members m WHERE m.list_name = list_group_ids.list_name);
END
$body$;
