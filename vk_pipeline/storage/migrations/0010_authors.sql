-- Who wrote the stored comments and signed the posts: one row per author, users by their id,
-- communities by minus their id (as VK's from_id has them). Written by the `authors` asset
-- from users.get / groups.getById. A deleted VK account comes back as "DELETED" with no other
-- field: the asset then writes only the flag and fetched_at, so the last known name stays.

CREATE TABLE :"schema".authors (
    id            bigint PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('user', 'group')),
    first_name    text,
    last_name     text,
    name          text,              -- "first last" for a user, the community's name
    screen_name   text,
    sex           smallint,          -- VK: 1 female, 2 male, 0 not given
    bdate         text,              -- as VK gives it: D.M.YYYY, or D.M when the year is hidden
    city_id       integer,
    city          text,
    country_id    integer,
    country       text,
    deactivated   text,              -- deleted / banned
    is_closed     boolean,
    fetched_at    timestamptz NOT NULL,
    raw           jsonb,
    url           text GENERATED ALWAYS AS (
        'https://vk.com/' || coalesce(nullif(screen_name, ''),
                                      CASE WHEN id > 0 THEN 'id' || id ELSE 'club' || -id END)
    ) STORED,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX authors_fetched_at_idx ON :"schema".authors (fetched_at);

-- top_commenters with who they are.
CREATE VIEW :"schema".top_commenters_named AS
SELECT t.*, a.name AS author_name, a.url AS author_url, a.deactivated AS author_deactivated
FROM :"schema".top_commenters t
LEFT JOIN :"schema".authors a ON a.id = t.from_id;
