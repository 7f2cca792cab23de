-- Retention (issue 25): the `prune` job (crates/retention) deletes, in small batches,
-- processed_messages older than the dedupe window, published outbox rows older than their
-- retention, and audit_log entries older than theirs.
--
-- Indexes for the batches: each batch takes the oldest rows by the column it prunes on, so it
-- reads an index range instead of scanning the table. On a large existing table, create them
-- beforehand with CREATE INDEX CONCURRENTLY under the same names (docs/runbook.md, Retention):
-- IF NOT EXISTS then keeps them and this migration takes no long lock.
CREATE INDEX IF NOT EXISTS processed_messages_processed_at ON processed_messages (processed_at);
CREATE INDEX IF NOT EXISTS outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_occurred_at ON audit_log (occurred_at);

-- The audit log stays append-only for everyone: UPDATE is always refused, and so is DELETE,
-- except of a row older than the cut-off that prune_audit_log (below) sets for its own
-- statement, in its own transaction. The services' role (wms_app) has no DELETE privilege on
-- the table at all (deploy/k8s/base/sql/grants.sql); this trigger also stops the schema
-- owner's accidental DELETE.
CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cutoff TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        cutoff := current_setting('wms.audit_prune_before', true);
        IF cutoff IS NOT NULL AND cutoff <> '' AND OLD.occurred_at < cutoff::timestamptz THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

-- The one way to delete audit entries: at most `max_rows` of those that occurred before
-- `before`, which must be at least 30 days ago whatever the caller asks (a floor in the
-- database, so a leaked credential of the prune job cannot erase recent history). SECURITY
-- DEFINER: it runs as the schema owner; only the prune job's role may execute it (grants.sql).
-- Rows another pruner holds are skipped, so concurrent runs never wait on each other.
CREATE FUNCTION prune_audit_log(before TIMESTAMPTZ, max_rows INT) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    deleted BIGINT;
BEGIN
    IF before IS NULL OR before > now() - interval '30 days' THEN
        RAISE EXCEPTION 'prune_audit_log: cut-off % is less than 30 days ago; audit entries are kept at least 30 days', before
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_rows IS NULL OR max_rows < 1 OR max_rows > 100000 THEN
        RAISE EXCEPTION 'prune_audit_log: max_rows must be between 1 and 100000, not %', max_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('wms.audit_prune_before', before::text, true);
    WITH doomed AS (
        SELECT id FROM audit_log
         WHERE occurred_at < before
         ORDER BY occurred_at
         LIMIT max_rows
         FOR UPDATE SKIP LOCKED
    )
    DELETE FROM audit_log a USING doomed WHERE a.id = doomed.id;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('wms.audit_prune_before', '', true);
    RETURN deleted;
END;
$$;
REVOKE ALL ON FUNCTION prune_audit_log(TIMESTAMPTZ, INT) FROM PUBLIC;
