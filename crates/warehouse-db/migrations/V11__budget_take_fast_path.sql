-- `budget_take` without a held ticket and with a slot within the horizon, the call of nearly
-- every write-back, in one row update (issue 16: throughput end to end).
--
-- Measured before (pg_stat_statements, 2,040 calls of a 1,000-order run): each call locked the
-- budget row (`SELECT ... FOR UPDATE`), swept abandoned waits, moved the schedule and counted
-- the call (two updates of the same row): four statements and two row versions per call, with
-- the row locked throughout. Now the schedule moves and the call is counted by one UPDATE
-- whose WHERE re-checks the horizon on the row it locks, so the decision is the same one the
-- locked read made. Everything else (a ticket held, a slot beyond the horizon, no such key)
-- takes the path of V7 unchanged, abandoned waits are swept there, and `rate_budget::status`
-- leaves out the waits that sweep would drop.

CREATE OR REPLACE FUNCTION budget_take(
    p_key            TEXT,
    p_site           TEXT,
    p_priority       TEXT,
    p_ticket         BIGINT,
    p_horizon        DOUBLE PRECISION,
    p_reserve_within DOUBLE PRECISION,
    p_margin         DOUBLE PRECISION,
    p_grace          DOUBLE PRECISION,
    p_track          BOOLEAN
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
    IF p_ticket IS NULL THEN
        -- The slot is GREATEST(next_slot, now, paused_until) of the row as locked; the new
        -- next_slot is that slot plus the spacing, so the slot is given back as
        -- next_slot - spacing (exact: both are whole microseconds).
        UPDATE rate_budgets b SET
            next_slot = GREATEST(b.next_slot, v_now, COALESCE(b.paused_until, '-infinity'))
                + make_interval(secs => (60.0 + p_margin) / COALESCE(b.learned_limit, b.configured_limit)),
            calls = b.calls + 1,
            last_minute_calls = CASE
                WHEN v_now - b.minute_started >= interval '120 seconds' THEN 0
                WHEN v_now - b.minute_started >= interval '60 seconds' THEN b.minute_calls
                ELSE b.last_minute_calls END,
            minute_calls = CASE WHEN v_now - b.minute_started >= interval '60 seconds' THEN 1 ELSE b.minute_calls + 1 END,
            minute_started = CASE WHEN v_now - b.minute_started >= interval '60 seconds' THEN v_now ELSE b.minute_started END,
            updated_at = v_now
        WHERE b.key = p_key
          AND GREATEST(b.next_slot, v_now, COALESCE(b.paused_until, '-infinity'))
              <= v_now + make_interval(secs => p_horizon)
        RETURNING b.next_slot - make_interval(secs => (60.0 + p_margin) / COALESCE(b.learned_limit, b.configured_limit))
        INTO v_slot;
        IF FOUND THEN
            RETURN QUERY SELECT 'slot'::TEXT, v_slot, NULL::BIGINT, v_now;
            RETURN;
        END IF;
    END IF;

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
