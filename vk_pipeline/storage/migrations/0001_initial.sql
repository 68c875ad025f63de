-- Initial schema: VK communities, their wall posts and the comments under them.
-- :"schema" is replaced by the quoted schema name (psql -v schema=vk -f runs this file as is).
-- first_seen_at / last_changed_at are maintained by vk_pipeline.storage: the upsert bumps
-- last_changed_at only when a row's content differs, so re-crawling unchanged data writes nothing.

CREATE TABLE :"schema".groups (
    id               bigint PRIMARY KEY,
    screen_name      text,
    name             text,
    type             text,
    is_closed        smallint,
    deactivated      text,
    status           text NOT NULL,
    wall             smallint,
    members_count    bigint,
    verified         boolean,
    activity         text,
    description      text,
    site             text,
    fetch_error_code integer,
    fetch_error      text,
    raw              jsonb,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_screen_name_idx ON :"schema".groups (screen_name);

CREATE TABLE :"schema".posts (
    owner_id              bigint NOT NULL,
    id                    bigint NOT NULL,
    group_id              bigint NOT NULL REFERENCES :"schema".groups (id),
    from_id               bigint,
    signer_id             bigint,
    created_by            bigint,
    date                  timestamptz NOT NULL,
    edited                timestamptz,
    text                  text,
    post_type             text,
    is_pinned             boolean,
    marked_as_ads         boolean,
    comments_count        integer,
    comments_can_post     boolean,
    likes_count           integer,
    reposts_count         integer,
    views_count           integer,
    copy_owner_id         bigint,
    copy_post_id          bigint,
    attachment_types      text[],
    raw                   jsonb,
    is_deleted            boolean NOT NULL DEFAULT false,
    deleted_seen_at       timestamptz,
    comments_synced_count integer,
    comments_synced_at    timestamptz,
    comments_status       text,
    comments_error_code   integer,
    text_tsv              tsvector GENERATED ALWAYS AS (to_tsvector('russian', coalesce(text, ''))) STORED,
    first_seen_at         timestamptz NOT NULL DEFAULT now(),
    last_changed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, id)
);
CREATE INDEX posts_group_id_date_idx ON :"schema".posts (group_id, date DESC);
CREATE INDEX posts_text_tsv_idx ON :"schema".posts USING gin (text_tsv);

-- VK comment ids are unique per wall owner, so (owner_id, id) identifies a comment.
-- group_id is denormalised from the post so per-group slices need no join; it has no
-- foreign key of its own because the one to posts already implies it.
CREATE TABLE :"schema".comments (
    owner_id         bigint NOT NULL,
    id               bigint NOT NULL,
    group_id         bigint NOT NULL,
    post_id          bigint NOT NULL,
    from_id          bigint,
    date             timestamptz,
    text             text,
    reply_to_user    bigint,
    reply_to_comment bigint,
    thread_root_id   bigint,
    parents_stack    bigint[],
    thread_count     integer,
    likes_count      integer,
    attachment_types text[],
    raw              jsonb,
    is_deleted       boolean NOT NULL DEFAULT false,
    deleted_seen_at  timestamptz,
    text_tsv         tsvector GENERATED ALWAYS AS (to_tsvector('russian', coalesce(text, ''))) STORED,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, id),
    FOREIGN KEY (owner_id, post_id) REFERENCES :"schema".posts (owner_id, id)
);
CREATE INDEX comments_owner_post_date_idx ON :"schema".comments (owner_id, post_id, date);
CREATE INDEX comments_from_id_idx ON :"schema".comments (from_id);
CREATE INDEX comments_date_idx ON :"schema".comments (date);
CREATE INDEX comments_group_id_idx ON :"schema".comments (group_id);
CREATE INDEX comments_text_tsv_idx ON :"schema".comments USING gin (text_tsv);
