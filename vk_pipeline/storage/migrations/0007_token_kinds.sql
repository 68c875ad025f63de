-- What every process knows about the pool's tokens beyond their rate budget (0003), by
-- fingerprint only (the first 8 hex digits of a token's SHA-256; for a VK ID credential, of its
-- client and device ids): the kind VK told us a token is, tokens set aside for a while (VK asked
-- for a captcha), and VK ID credentials, whose tokens are stored encrypted (Fernet) by the client.

-- A token's kind as VK's answers settled it: error 27 → community ("group", the schema's name),
-- error 28 → service, an `execute` whose wall.* call succeeded → user. Never typed by a person.
CREATE TABLE :"schema".token_kinds (
    token_fp    text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('user', 'group', 'service')),
    learned_by  text NOT NULL,          -- the answer that settled it, e.g. "execute: error 28"
    learned_at  timestamptz NOT NULL DEFAULT now()
);

-- A token out of use until `until` (captcha: a person must pass VK's "not robot" page).
CREATE TABLE :"schema".token_holds (
    token_fp  text PRIMARY KEY,
    reason    text NOT NULL,
    held_at   timestamptz NOT NULL DEFAULT now(),
    until     timestamptz NOT NULL
);

-- VK ID: the current refresh token and access token of a credential, encrypted; rotated by one
-- process at a time under an advisory lock, re-read by the others.
CREATE TABLE :"schema".vkid_credentials (
    cred_fp        text PRIMARY KEY,
    seed_fp        text NOT NULL,       -- fingerprint of the refresh token that seeded this row
    refresh_enc    text,                -- NULL: VK ID refused the chain; a new sign-in is needed
    access_enc     text,
    expires_at     timestamptz,
    refreshes      bigint NOT NULL DEFAULT 0,
    refreshed_at   timestamptz,
    last_error     text
);

-- rate_reserve (0003) with a window per token (each kind has its own rate) and without the
-- tokens set aside. Same locking order and choice: the token that can send soonest.
CREATE FUNCTION :"schema".rate_reserve_each(
    p_fps text[], p_methods text[], p_slots integer[], p_spans double precision[]
) RETURNS TABLE (token_fp text, wait_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    t          timestamptz := clock_timestamp();
    r          record;
    n          integer;
    slots      integer;
    ready      timestamptz;
    best_fp    text;
    best_ready timestamptz;
    best_last  timestamptz;
    best_slots integer;
    last       timestamptz;
BEGIN
    INSERT INTO :"schema".rate_budget AS b (token_fp)
    SELECT fp FROM unnest(p_fps) AS fp
    ON CONFLICT ON CONSTRAINT rate_budget_pkey DO NOTHING;
    FOR r IN
        SELECT b.token_fp AS fp, b.reserved, b.blocked_until, a.slots, a.span
        FROM :"schema".rate_budget AS b
        JOIN unnest(p_fps, p_slots, p_spans) AS a(fp, slots, span) ON a.fp = b.token_fp
        WHERE NOT EXISTS (
              SELECT 1 FROM :"schema".token_quotas AS q
              WHERE q.token_fp = b.token_fp AND q.method = ANY (p_methods) AND q.resets_at > t)
          AND NOT EXISTS (
              SELECT 1 FROM :"schema".token_holds AS h
              WHERE h.token_fp = b.token_fp AND h.until > t)
        ORDER BY b.token_fp
        FOR UPDATE OF b
    LOOP
        n := coalesce(array_length(r.reserved, 1), 0);
        ready := greatest(t, r.blocked_until);
        IF n >= r.slots THEN
            ready := greatest(ready, r.reserved[n - r.slots + 1]
                                     + make_interval(secs => r.span));
        END IF;
        last := coalesce(r.reserved[n], '-infinity');
        IF best_ready IS NULL OR ready < best_ready OR (ready = best_ready AND last < best_last)
        THEN
            best_ready := ready;
            best_last := last;
            best_fp := r.fp;
            best_slots := r.slots;
        END IF;
    END LOOP;
    IF best_fp IS NULL THEN
        RETURN;
    END IF;
    UPDATE :"schema".rate_budget AS b
    SET reserved = (b.reserved || best_ready)[
            greatest(1, coalesce(array_length(b.reserved, 1), 0) + 2 - best_slots):],
        requests = b.requests + 1,
        updated_at = t
    WHERE b.token_fp = best_fp;
    token_fp := best_fp;
    wait_seconds := extract(epoch FROM best_ready - t);
    RETURN NEXT;
END;
$$;
