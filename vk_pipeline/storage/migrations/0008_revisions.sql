-- Revisions of comments and posts: what a row looked like before a re-read changed it.
-- VK's comment object has no `edited` field, so a collector that re-reads is the only one to
-- know a comment was edited, deleted or brought back. Rows are written by vk_pipeline.storage
-- in the same statement as the change they record (a data-modifying CTE in the upsert), so a
-- change and its revision commit or roll back together; an unchanged re-read writes none.
--
-- A revision holds the previous version: valid_from..valid_to is when it was seen that way
-- (valid_from is the previous revision's valid_to, or the row's first_seen_at), `kind` is the
-- change that ended it: edited (text or attachments), deleted (became a stub or vanished),
-- restored (seen live again after a deletion). The live row always holds the newest state; a
-- deleted comment keeps its last known text and author there, next to is_deleted.

CREATE TABLE :"schema".comment_revisions (
    owner_id         bigint NOT NULL,
    id               bigint NOT NULL,
    valid_to         timestamptz NOT NULL,
    valid_from       timestamptz NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('edited', 'deleted', 'restored')),
    group_id         bigint NOT NULL,
    post_id          bigint NOT NULL,
    from_id          bigint,
    was_deleted      boolean NOT NULL,
    text             text,
    attachment_types text[],
    attachments      jsonb,
    PRIMARY KEY (owner_id, id, valid_to)
);
CREATE INDEX comment_revisions_group_id_idx ON :"schema".comment_revisions (group_id, valid_to);

CREATE TABLE :"schema".post_revisions (
    owner_id         bigint NOT NULL,
    id               bigint NOT NULL,
    valid_to         timestamptz NOT NULL,
    valid_from       timestamptz NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('edited', 'deleted', 'restored')),
    group_id         bigint NOT NULL,
    from_id          bigint,
    edited           timestamptz,
    was_deleted      boolean NOT NULL,
    text             text,
    attachment_types text[],
    attachments      jsonb,
    PRIMARY KEY (owner_id, id, valid_to)
);
CREATE INDEX post_revisions_group_id_idx ON :"schema".post_revisions (group_id, valid_to);

-- One comment's versions, oldest first; the last row (kind 'current', valid_to NULL) is the
-- live row as stored now.
--   SELECT * FROM vk.comment_history(-100001, 4242);
CREATE FUNCTION :"schema".comment_history(p_owner_id bigint, p_id bigint)
RETURNS TABLE (
    version integer, valid_from timestamptz, valid_to timestamptz, kind text,
    is_deleted boolean, from_id bigint, text text, attachment_types text[]
)
LANGUAGE sql STABLE AS $body$
    SELECT (row_number() OVER (ORDER BY h.valid_from, h.valid_to NULLS LAST))::integer, h.*
    FROM (
        SELECT r.valid_from, r.valid_to, r.kind, r.was_deleted, r.from_id, r.text,
               r.attachment_types
        FROM :"schema".comment_revisions r
        WHERE r.owner_id = p_owner_id AND r.id = p_id
        UNION ALL
        SELECT coalesce((SELECT max(r.valid_to) FROM :"schema".comment_revisions r
                         WHERE r.owner_id = p_owner_id AND r.id = p_id), c.first_seen_at),
               NULL, 'current', c.is_deleted, c.from_id, c.text, c.attachment_types
        FROM :"schema".comments c
        WHERE c.owner_id = p_owner_id AND c.id = p_id
    ) h
    ORDER BY 1
$body$;

CREATE FUNCTION :"schema".post_history(p_owner_id bigint, p_id bigint)
RETURNS TABLE (
    version integer, valid_from timestamptz, valid_to timestamptz, kind text,
    is_deleted boolean, edited timestamptz, text text, attachment_types text[]
)
LANGUAGE sql STABLE AS $body$
    SELECT (row_number() OVER (ORDER BY h.valid_from, h.valid_to NULLS LAST))::integer, h.*
    FROM (
        SELECT r.valid_from, r.valid_to, r.kind, r.was_deleted, r.edited, r.text,
               r.attachment_types
        FROM :"schema".post_revisions r
        WHERE r.owner_id = p_owner_id AND r.id = p_id
        UNION ALL
        SELECT coalesce((SELECT max(r.valid_to) FROM :"schema".post_revisions r
                         WHERE r.owner_id = p_owner_id AND r.id = p_id), p.first_seen_at),
               NULL, 'current', p.is_deleted, p.edited, p.text, p.attachment_types
        FROM :"schema".posts p
        WHERE p.owner_id = p_owner_id AND p.id = p_id
    ) h
    ORDER BY 1
$body$;
