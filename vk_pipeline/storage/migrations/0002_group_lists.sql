-- Group lists: named sets of communities registered from files dropped into the watched folder
-- (or `python -m vk_pipeline groups add`). A list's name is the file's stem; a list holds the
-- groups of the newest version of its file. Members have no foreign key to groups: a group is
-- registered (a Dagster partition) before the `groups` asset has stored its row.

CREATE TABLE :"schema".group_lists (
    name        text PRIMARY KEY,
    source      text,                -- path of the file (or "cli") the list last came from
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE :"schema".group_list_members (
    list_name   text NOT NULL REFERENCES :"schema".group_lists (name) ON DELETE CASCADE,
    group_id    bigint NOT NULL CHECK (group_id > 0),
    line        integer,             -- first line of the file that named the group
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list_name, group_id)
);
CREATE INDEX group_list_members_group_id_idx ON :"schema".group_list_members (group_id);

-- One row per distinct file content ever read: the sensor's record of what it has seen, so a
-- file dropped twice, renamed or met again after a restart is not read (nor launched) twice.
CREATE TABLE :"schema".group_files (
    sha256          text PRIMARY KEY,
    file_name       text NOT NULL,
    path            text,
    list_name       text,
    size_bytes      bigint,
    encoding        text,
    lines_read      integer NOT NULL DEFAULT 0,
    groups_found    integer NOT NULL DEFAULT 0,   -- distinct communities the file names
    groups_new      integer NOT NULL DEFAULT 0,   -- of those, registered by this file
    groups_known    integer NOT NULL DEFAULT 0,   -- of those, registered before
    rejected_count  integer NOT NULL DEFAULT 0,
    file_error      text,                         -- the file as a whole could not be read
    run_keys        text[],
    processed_at    timestamptz NOT NULL DEFAULT now()
);

-- Every rejected line of every file, with a reason a person understands.
CREATE TABLE :"schema".group_file_rejections (
    file_sha256  text NOT NULL REFERENCES :"schema".group_files (sha256) ON DELETE CASCADE,
    line         integer NOT NULL,
    position     integer NOT NULL DEFAULT 0,     -- several references on one line
    text         text,
    reason       text NOT NULL,
    PRIMARY KEY (file_sha256, line, position)
);
