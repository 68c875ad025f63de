-- Counter snapshots: how posts and communities grow. Appended by vk_pipeline.storage in the
-- same statement as the upsert that saw the values (a data-modifying CTE), and only when they
-- differ from the stored ones (or the row is new): storage grows with changes, not with reads.
-- observed_at is the writing transaction's time, i.e. when the crawl saw the values.

CREATE TABLE :"schema".post_counters (
    owner_id     bigint NOT NULL,
    post_id      bigint NOT NULL,
    observed_at  timestamptz NOT NULL,
    group_id     bigint NOT NULL,
    views        integer,
    likes        integer,
    reposts      integer,
    comments     integer,
    PRIMARY KEY (owner_id, post_id, observed_at)
);
CREATE INDEX post_counters_group_id_idx ON :"schema".post_counters (group_id, observed_at);

-- What groups.getById says of a community's audience: members_count and its `counters` object.
CREATE TABLE :"schema".group_counters (
    group_id       bigint NOT NULL,
    observed_at    timestamptz NOT NULL,
    members_count  bigint,
    counters       jsonb,
    PRIMARY KEY (group_id, observed_at)
);

-- The daily audience series of one group: the last value seen on or before each UTC day from
-- the first snapshot to the last one (a value is carried forward over days without a change,
-- since a snapshot is only written when something changed).
--   SELECT * FROM vk.group_audience_daily(100001);
CREATE FUNCTION :"schema".group_audience_daily(p_group_id bigint)
RETURNS TABLE (day date, members_count bigint, counters jsonb, observed_at timestamptz)
LANGUAGE sql STABLE AS $body$
    WITH bounds AS (
        SELECT min(observed_at AT TIME ZONE 'UTC')::date AS lo,
               max(observed_at AT TIME ZONE 'UTC')::date AS hi
        FROM :"schema".group_counters WHERE group_id = p_group_id
    )
    SELECT d::date, s.members_count, s.counters, s.observed_at
    FROM bounds, generate_series(bounds.lo, bounds.hi, interval '1 day') AS d
    CROSS JOIN LATERAL (
        SELECT g.members_count, g.counters, g.observed_at
        FROM :"schema".group_counters g
        WHERE g.group_id = p_group_id
          AND g.observed_at < (d::date + 1)::timestamp AT TIME ZONE 'UTC'
        ORDER BY g.observed_at DESC
        LIMIT 1
    ) s
    ORDER BY 1
$body$;

-- Growth curves, derived from post_counters by the `post_growth` asset: each post's counters at
-- fixed ages after publication, interpolated linearly between the two snapshots around that age
-- (or the snapshot at it); no row where no snapshot lies on one side. Never extrapolated.
CREATE TABLE :"schema".post_growth (
    owner_id   bigint NOT NULL,
    post_id    bigint NOT NULL,
    group_id   bigint NOT NULL,
    age_hours  integer NOT NULL,
    views      double precision,
    likes      double precision,
    reposts    double precision,
    comments   double precision,
    PRIMARY KEY (owner_id, post_id, age_hours)
);
CREATE INDEX post_growth_group_id_idx ON :"schema".post_growth (group_id, age_hours);

-- The group's typical curve: the median over its posts that have a value at that age.
CREATE TABLE :"schema".group_growth (
    group_id   bigint NOT NULL,
    age_hours  integer NOT NULL,
    posts      integer NOT NULL,
    views      double precision,
    likes      double precision,
    reposts    double precision,
    comments   double precision,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, age_hours)
);
