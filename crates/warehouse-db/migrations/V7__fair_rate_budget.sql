-- Per-token Webflow budgets shared fairly (issue 12).
--
-- * The configured limit (`webflow.sites.<name>.rate_limit_per_minute`, written by every
--   process at start) and the limit Webflow told us (`X-RateLimit-Limit`, kept across
--   restarts) are separate: start-up never forgets what Webflow said.
-- * `budget_waits`: every call waiting for budget. A row with a `slot` is a reservation: the
--   slot was taken from the token's schedule (so slots stay FIFO per token and a backlog keeps
--   the budget fully used) and is used by the message when it comes back from the broker. A
--   row without a slot is work deferred without a reservation (enrichment behind a long
--   write-back queue). Operators read the backlog and the oldest wait from here.
-- * `budget_take`: the one statement that decides a call's slot, on the database's clock.

ALTER TABLE rate_budgets RENAME COLUMN limit_per_minute TO configured_limit;
ALTER TABLE rate_budgets
    ADD COLUMN learned_limit     DOUBLE PRECISION CHECK (learned_limit > 0),
    ADD COLUMN minute_started    TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN minute_calls      INT         NOT NULL DEFAULT 0,
    ADD COLUMN last_minute_calls INT         NOT NULL DEFAULT 0;

CREATE TABLE budget_waits (
    id             BIGSERIAL   PRIMARY KEY,
    key            TEXT        NOT NULL REFERENCES rate_budgets (key) ON DELETE CASCADE,
    site_id        TEXT        NOT NULL,
    priority       TEXT        NOT NULL,
    -- NULL: deferred without a reservation.
    slot           TIMESTAMPTZ,
    waiting_since  TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX budget_waits_by_key ON budget_waits (key, slot);

-- Counts one call made now against the key (the per-minute use shown to operators).
CREATE FUNCTION budget_count_call(p_key TEXT, p_now TIMESTAMPTZ) RETURNS VOID
LANGUAGE sql AS $$
    UPDATE rate_budgets SET
        calls = calls + 1,
        last_minute_calls = CASE
            WHEN p_now - minute_started >= interval '120 seconds' THEN 0
            WHEN p_now - minute_started >= interval '60 seconds' THEN minute_calls
            ELSE last_minute_calls END,
        minute_calls = CASE WHEN p_now - minute_started >= interval '60 seconds' THEN 1 ELSE minute_calls + 1 END,
        minute_started = CASE WHEN p_now - minute_started >= interval '60 seconds' THEN p_now ELSE minute_started END,
        updated_at = p_now
    WHERE key = p_key
$$;

-- Decides one call's slot. Outcomes:
--   'slot'     call at `slot` (at most `p_horizon` seconds from `db_now`; sleep the difference)
--   'reserved' `slot` is reserved for the caller, further than the horizon: come back with
--              `ticket` before then (the slot is not given to anyone else)
--   'busy'     no slot within what this priority accepts; `ticket` (if any) records the wait
--   'missing'  no such budget row
-- `p_ticket` is a reservation or wait the caller holds from an earlier try.
CREATE FUNCTION budget_take(
    p_key            TEXT,
    p_site           TEXT,
    p_priority       TEXT,
    p_ticket         BIGINT,
    p_horizon        DOUBLE PRECISION,  -- take a slot at most this many seconds ahead
    p_reserve_within DOUBLE PRECISION,  -- reserve a slot at most this far ahead (NULL: any)
    p_margin         DOUBLE PRECISION,  -- seconds added to every 60-second window
    p_grace          DOUBLE PRECISION,  -- a reserved slot this late is still honoured
    p_track          BOOLEAN            -- record a wait when busy
) RETURNS TABLE (outcome TEXT, slot TIMESTAMPTZ, ticket BIGINT, db_now TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now     TIMESTAMPTZ := clock_timestamp();
    v_budget  rate_budgets%ROWTYPE;
    v_spacing DOUBLE PRECISION;
    v_held    TIMESTAMPTZ;
    v_since   TIMESTAMPTZ;
    v_slot    TIMESTAMPTZ;
    v_id      BIGINT;
BEGIN
    SELECT * INTO v_budget FROM rate_budgets b WHERE b.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'missing'::TEXT, NULL::TIMESTAMPTZ, NULL::BIGINT, v_now;
        RETURN;
    END IF;
    v_spacing := (60.0 + p_margin) / COALESCE(v_budget.learned_limit, v_budget.configured_limit);

    -- Abandoned waits (their message was dead-lettered or replayed elsewhere) fade out.
    DELETE FROM budget_waits w WHERE w.key = p_key
        AND ((w.slot IS NOT NULL AND w.slot < v_now - interval '10 minutes')
             OR (w.slot IS NULL AND w.updated_at < v_now - interval '30 minutes'));

    IF p_ticket IS NOT NULL THEN
        SELECT w.slot, w.waiting_since INTO v_held, v_since
            FROM budget_waits w WHERE w.id = p_ticket AND w.key = p_key;
        IF FOUND THEN
            IF v_held IS NOT NULL AND v_held >= v_now - make_interval(secs => p_grace)
               AND v_held >= COALESCE(v_budget.paused_until, '-infinity') THEN
                IF v_held <= v_now + make_interval(secs => p_horizon) THEN
                    DELETE FROM budget_waits w WHERE w.id = p_ticket;
                    PERFORM budget_count_call(p_key, v_now);
                    RETURN QUERY SELECT 'slot'::TEXT, v_held, NULL::BIGINT, v_now;
                    RETURN;
                END IF;
                UPDATE budget_waits w SET updated_at = v_now WHERE w.id = p_ticket;
                RETURN QUERY SELECT 'reserved'::TEXT, v_held, p_ticket, v_now;
                RETURN;
            END IF;
            -- A plain wait, a reservation come back too late, or one a 429 pause overtook:
            -- drop it (keeping how long the work has waited) and queue afresh.
            DELETE FROM budget_waits w WHERE w.id = p_ticket;
        END IF;
    END IF;

    v_slot := GREATEST(v_budget.next_slot, v_now, COALESCE(v_budget.paused_until, '-infinity'));
    IF v_slot <= v_now + make_interval(secs => p_horizon) THEN
        UPDATE rate_budgets b SET next_slot = v_slot + make_interval(secs => v_spacing) WHERE b.key = p_key;
        PERFORM budget_count_call(p_key, v_now);
        RETURN QUERY SELECT 'slot'::TEXT, v_slot, NULL::BIGINT, v_now;
        RETURN;
    END IF;
    IF p_reserve_within IS NULL OR v_slot <= v_now + make_interval(secs => p_reserve_within) THEN
        UPDATE rate_budgets b SET next_slot = v_slot + make_interval(secs => v_spacing), updated_at = v_now
            WHERE b.key = p_key;
        INSERT INTO budget_waits (key, site_id, priority, slot, waiting_since)
            VALUES (p_key, p_site, p_priority, v_slot, COALESCE(v_since, v_now)) RETURNING id INTO v_id;
        RETURN QUERY SELECT 'reserved'::TEXT, v_slot, v_id, v_now;
        RETURN;
    END IF;
    IF p_track THEN
        INSERT INTO budget_waits (key, site_id, priority, slot, waiting_since)
            VALUES (p_key, p_site, p_priority, NULL, COALESCE(v_since, v_now)) RETURNING id INTO v_id;
    END IF;
    RETURN QUERY SELECT 'busy'::TEXT, v_slot, v_id, v_now;
END
$$;
