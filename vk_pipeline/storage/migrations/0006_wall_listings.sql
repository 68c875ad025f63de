-- When each group's wall was last listed in full (down to the refresh's cutoff), and the newest
-- post that listing covered. Posts are committed in chunks as a wall is paged, newest first, so
-- a run that dies mid-wall leaves the newest posts stored and older ones missing: the next
-- listing must reach back to the last *complete* listing, not to the newest stored post.
-- Written by `posts` in the same transaction as a wall's last chunk. A group without a row is
-- listed in full (so databases from before this migration relist every wall once).
CREATE TABLE :"schema".wall_listings (
    group_id          bigint PRIMARY KEY REFERENCES :"schema".groups (id),
    listed_at         timestamptz NOT NULL,
    -- The newest stored post (pinned ones aside) once the listing was done: every post newer
    -- than the listing's cutoff up to this one is stored.
    listed_through    timestamptz
);
