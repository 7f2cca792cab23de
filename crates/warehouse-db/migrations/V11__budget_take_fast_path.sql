-- `budget_take` without a held ticket and with a slot within the horizon, the call of nearly
-- every write-back, in one row update (issue 16: throughput end to end).
--
-- Measured before (pg_stat_statements, 2,040 calls of a 1,000-order run): each call locked the
-- budget row (`SELECT ... FOR UPDATE`), swept abandoned waits, moved the schedule and counted
-- the call (two updates of the same row): four statements and two row versions per call, with
-- the row locked throughout. Now the schedule moves and the call is counted by one UPDATE
-- whose WHERE re-checks the horizon on the row it locks, so the decision is the same one the
-- locked read made. Everything else (a ticket held, a slot beyond the horizon, no such key)
-- takes V7's function unchanged, renamed `budget_take_queued`; abandoned waits are swept there
-- only, and `rate_budget::status` leaves out the waits that sweep would drop.

ALTER FUNCTION budget_take(TEXT, TEXT, TEXT, BIGINT, DOUBLE PRECISION, DOUBLE PRECISION,
                           DOUBLE PRECISION, DOUBLE PRECISION, BOOLEAN)
    RENAME TO budget_take_queued;

CREATE FUNCTION budget_take(
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
    v_now  TIMESTAMPTZ := clock_timestamp();
    v_slot TIMESTAMPTZ;
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
    RETURN QUERY SELECT * FROM budget_take_queued(p_key, p_site, p_priority, p_ticket, p_horizon,
                                                  p_reserve_within, p_margin, p_grace, p_track);
END
$$;
