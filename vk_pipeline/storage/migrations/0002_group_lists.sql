-- Group lists: named sets of communities registered from files dropped into the watched folder
-- (or `python -m vk_pipeline groups add`). A list's name is the file's stem; a list holds the
-- groups of the newest version of its file. Members have no foreign key to groups: a group is
-- registered (a Dagster partition) before the `groups` asset has stored its row.

CREATE TABLE :"schema".group_lists (
    name         text PRIMARY KEY,
    source       text,                -- path of the file (or "cli") the list last came from
    file_sha256  text,                -- content of that version
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE :"schema".group_list_members (
    list_name   text NOT NULL REFERENCES :"schema".group_lists (name) ON DELETE CASCADE,
    group_id    bigint NOT NULL CHECK (group_id > 0),
    line        integer,             -- first line of the file that named the group
    text        text,                -- how that line wrote it
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list_name, group_id)
);
CREATE INDEX group_list_members_group_id_idx ON :"schema".group_list_members (group_id);

-- Every community ever registered, with what VK said about it then. `removed_at` is set when
-- someone stops tracking it (its Dagster partition goes; its rows in groups/posts/comments stay).
CREATE TABLE :"schema".registered_groups (
    group_id       bigint PRIMARY KEY CHECK (group_id > 0),
    screen_name    text,
    name           text,
    deactivated    text,             -- "banned" / "deleted": registered all the same
    registered_at  timestamptz NOT NULL DEFAULT now(),
    registered_by  text,             -- sha256 of the file (or CLI batch) that first named it
    removed_at     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per distinct file content ever read: the sensor's record of what it has seen, so a
-- file dropped twice, renamed or met again after a restart is not read (nor launched) twice.
CREATE TABLE :"schema".group_files (
    sha256              text PRIMARY KEY,
    file_name           text NOT NULL,
    path                text,
    source              text NOT NULL DEFAULT 'drop',  -- 'drop' (the sensor) or 'cli'
    list_name           text,
    size_bytes          bigint,
    format              text,
    encoding            text,
    lines_read          integer NOT NULL DEFAULT 0,
    groups_found        integer NOT NULL DEFAULT 0,   -- distinct communities the file names
    groups_new          integer NOT NULL DEFAULT 0,   -- of those, registered by this file
    groups_known        integer NOT NULL DEFAULT 0,   -- of those, registered before
    groups_deactivated  integer NOT NULL DEFAULT 0,   -- banned or deleted (registered too)
    duplicates          integer NOT NULL DEFAULT 0,
    rejected_count      integer NOT NULL DEFAULT 0,
    file_error          text,                         -- the file as a whole could not be read
    new_group_ids       bigint[] NOT NULL DEFAULT '{}',  -- in file order: what its runs load
    reads               integer NOT NULL DEFAULT 1,   -- > 1 when `groups add` re-read it
    run_keys            text[],
    processed_at        timestamptz NOT NULL DEFAULT now(),
    -- NULL until the sensor tick that reported the file (asset event, partitions, runs) was
    -- committed by the daemon; such files are reported again, with the same run keys.
    reported_at         timestamptz
);
CREATE INDEX group_files_unreported_idx ON :"schema".group_files (processed_at)
    WHERE reported_at IS NULL;

-- Every rejected line of every file, with a reason a person understands.
CREATE TABLE :"schema".group_file_rejections (
    file_sha256  text NOT NULL REFERENCES :"schema".group_files (sha256) ON DELETE CASCADE,
    sheet        text NOT NULL DEFAULT '',       -- .xlsx sheet, when the workbook has several
    line         integer NOT NULL,
    position     integer NOT NULL DEFAULT 0,     -- several references on one line
    text         text,
    reason       text NOT NULL,
    PRIMARY KEY (file_sha256, sheet, line, position)
);

-- What the sensor last saw at each path, so an unchanged file is not hashed again every tick.
CREATE TABLE :"schema".group_file_paths (
    path         text PRIMARY KEY,
    size_bytes   bigint NOT NULL,
    mtime_ns     bigint NOT NULL,
    sha256       text NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now()
);
