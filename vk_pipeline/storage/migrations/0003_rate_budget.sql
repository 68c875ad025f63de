-- The VK rate budget shared by every process on every machine that uses this database.
-- VK allows each token a few requests per second, counted where they arrive; every run, sensor
-- and CLI call that holds a token reserves its send times here, so together they never overrun
-- it. Tokens appear only as fingerprints (the first 8 hex digits of their SHA-256).
--
-- A reservation is one call of rate_reserve(): it locks the candidate tokens' rows, picks the
-- token that can send soonest, appends that send time to the token's last reservations and
-- returns how long the caller must wait. Times come from the database's clock, so clocks of
-- the machines sharing the budget need not agree.

CREATE TABLE :"schema".rate_budget (
    token_fp       text PRIMARY KEY,
    reserved       timestamptz[] NOT NULL DEFAULT '{}',   -- the last `slots` send times, ascending
    blocked_until  timestamptz NOT NULL DEFAULT '-infinity', -- after VK's error 6, for everyone
    requests       bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- VK's per-method daily quotas (error 29), per token: skipped for that method until resets_at.
CREATE TABLE :"schema".token_quotas (
    token_fp   text NOT NULL,
    method     text NOT NULL,
    reason     text,
    hit_at     timestamptz NOT NULL,
    resets_at  timestamptz NOT NULL,
    PRIMARY KEY (token_fp, method)
);

CREATE FUNCTION :"schema".rate_reserve(
    p_fps text[], p_methods text[], p_slots integer, p_span_seconds double precision
) RETURNS TABLE (token_fp text, wait_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    t          timestamptz := clock_timestamp();
    span       interval := make_interval(secs => p_span_seconds);
    r          record;
    n          integer;
    ready      timestamptz;
    best_fp    text;
    best_ready timestamptz;
    best_last  timestamptz;
    last       timestamptz;
BEGIN
    INSERT INTO :"schema".rate_budget AS b (token_fp)
    SELECT fp FROM unnest(p_fps) AS fp
    ON CONFLICT ON CONSTRAINT rate_budget_pkey DO NOTHING;
    -- Rows are locked in one order by everyone, so reservations over overlapping pools queue
    -- up instead of deadlocking.
    FOR r IN
        SELECT b.token_fp AS fp, b.reserved, b.blocked_until
        FROM :"schema".rate_budget AS b
        WHERE b.token_fp = ANY (p_fps)
          AND NOT EXISTS (
              SELECT 1 FROM :"schema".token_quotas AS q
              WHERE q.token_fp = b.token_fp AND q.method = ANY (p_methods) AND q.resets_at > t)
        ORDER BY b.token_fp
        FOR UPDATE OF b
    LOOP
        n := coalesce(array_length(r.reserved, 1), 0);
        ready := greatest(t, r.blocked_until);
        IF n >= p_slots THEN
            ready := greatest(ready, r.reserved[n - p_slots + 1] + span);
        END IF;
        -- Soonest first; among tokens ready alike, the one idle longest, so load spreads.
        last := coalesce(r.reserved[n], '-infinity');
        IF best_ready IS NULL OR ready < best_ready OR (ready = best_ready AND last < best_last)
        THEN
            best_ready := ready;
            best_last := last;
            best_fp := r.fp;
        END IF;
    END LOOP;
    IF best_fp IS NULL THEN
        RETURN;  -- every token's quota for one of the methods is spent
    END IF;
    UPDATE :"schema".rate_budget AS b
    SET reserved = (b.reserved || best_ready)[
            greatest(1, coalesce(array_length(b.reserved, 1), 0) + 2 - p_slots):],
        requests = b.requests + 1,
        updated_at = t
    WHERE b.token_fp = best_fp;
    token_fp := best_fp;
    wait_seconds := extract(epoch FROM best_ready - t);
    RETURN NEXT;
END;
$$;

CREATE FUNCTION :"schema".rate_penalize(p_fp text, p_seconds double precision)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO :"schema".rate_budget AS b (token_fp, blocked_until)
    VALUES (p_fp, clock_timestamp() + make_interval(secs => p_seconds))
    ON CONFLICT ON CONSTRAINT rate_budget_pkey
    DO UPDATE SET blocked_until = greatest(b.blocked_until, excluded.blocked_until);
$$;

CREATE FUNCTION :"schema".rate_exhaust(
    p_fp text, p_method text, p_seconds double precision, p_reason text
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO :"schema".token_quotas AS q (token_fp, method, reason, hit_at, resets_at)
    VALUES (p_fp, p_method, p_reason, clock_timestamp(),
            clock_timestamp() + make_interval(secs => p_seconds))
    ON CONFLICT (token_fp, method) DO UPDATE
    SET reason = excluded.reason, hit_at = excluded.hit_at,
        resets_at = greatest(q.resets_at, excluded.resets_at);
$$;

-- Seconds until the first of the tokens may call the method again; NULL if one may now.
CREATE FUNCTION :"schema".quota_resets(p_fps text[], p_method text)
RETURNS double precision LANGUAGE sql AS $$
    SELECT CASE
        WHEN cardinality(p_fps) = 0 THEN NULL
        WHEN count(q.token_fp) < cardinality(p_fps) THEN NULL
        ELSE extract(epoch FROM min(q.resets_at) - clock_timestamp())
    END
    FROM unnest(p_fps) AS f(fp)
    LEFT JOIN :"schema".token_quotas AS q
        ON q.token_fp = f.fp AND q.method = p_method AND q.resets_at > clock_timestamp();
$$;
