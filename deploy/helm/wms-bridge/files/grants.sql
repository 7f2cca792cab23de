-- What the services' role (wms_app, deploy/k8s/base/sql/roles.sql) may do. Run by the migrate
-- Job after every migration, as the schema owner (idempotent), so new tables are covered.

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO wms_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO wms_app;
-- The ingress (wms_ingress, not a member of wms_app) reads the stores to route and verify
-- webhooks, nothing else: not a store's sealed API token (a column grant), no order, no stock;
-- the migration history too, to wait for the schema it needs.
GRANT SELECT ON merchants, store_webhooks, refinery_schema_history TO wms_ingress;
GRANT SELECT (id, name, merchant_id, site_id, source, rate_limit_per_minute, send_fulfillment_email,
              inventory_sync, sku_collection_id, inventory_safety_buffer, created_at, updated_at,
              removed_at)
    ON stores TO wms_ingress;
-- The audit log is append-only: the trigger refuses UPDATE and DELETE, and the services' role
-- may not even try, nor TRUNCATE (which row triggers do not see). Owning nothing, it cannot
-- disable or drop the trigger.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM wms_app;
REVOKE ALL ON audit_log FROM PUBLIC;
-- The migration history: read by services waiting for the schema, written by the owner only.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON refinery_schema_history FROM wms_app;
-- Pruning the audit log (migration V13): only through prune_audit_log, which runs as the
-- schema owner and deletes only entries older than its cut-off (at least 30 days ago), and only
-- the prune job's role may call it.
REVOKE ALL ON FUNCTION prune_audit_log(TIMESTAMPTZ, INT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_audit_log(TIMESTAMPTZ, INT) TO wms_prune;
