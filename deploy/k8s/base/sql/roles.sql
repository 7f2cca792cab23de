-- PostgreSQL roles of the bridge: run once per database by an administrator, before the first
-- migration (idempotent: safe to run again), e.g.
--   psql "postgres://admin@db.example.com/wms?sslmode=verify-full" -f deploy/k8s/base/sql/roles.sql
-- then give each login role a password (\password wms_enrich) or your provider's IAM login, and
-- put its URL in the Secret (`<service>-database-url`, `migrate-database-url`).
--
--   wms_migrate   LOGIN  owns the schema: the migrate Job (wmsctl migrate, then grants.sql)
--   wms_app       group  what a service may do (grants.sql): read and write every table, but
--                        only INSERT and SELECT on audit_log; owns nothing, so it can neither
--                        ALTER nor DROP a table or its append-only trigger
--   wms_<service> LOGIN  one per service, member of wms_app: separate credentials to rotate or
--                        revoke, and pg_stat_activity says who holds a connection
--   wms_ingress   LOGIN  the ingress: NOT a member of wms_app; may only read the stores, their
--                        merchants and webhook secrets (grants.sql), so a compromised public
--                        pod can neither write nor read orders, stock or tokens
--   wms_prune     LOGIN  the prune CronJob (member of wms_app): also the only role that may
--                        execute prune_audit_log (grants.sql), which deletes audit entries
--                        older than a cut-off of at least 30 days, nothing else

DO $$
DECLARE
    service TEXT;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wms_migrate') THEN
        CREATE ROLE wms_migrate LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wms_app') THEN
        CREATE ROLE wms_app NOLOGIN;
    END IF;
    FOREACH service IN ARRAY ARRAY['enrich', 'reserve', 'ship', 'notify_webflow', 'warehouse', 'reconcile', 'prune'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wms_' || service) THEN
            EXECUTE format('CREATE ROLE %I LOGIN IN ROLE wms_app', 'wms_' || service);
        ELSIF NOT pg_has_role('wms_' || service, 'wms_app', 'MEMBER') THEN
            -- Created by hand (or by an older version) without the group: join it.
            EXECUTE format('GRANT wms_app TO %I', 'wms_' || service);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wms_ingress') THEN
        CREATE ROLE wms_ingress LOGIN;
    ELSIF EXISTS (SELECT FROM pg_auth_members m
                  JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
                  WHERE g.rolname = 'wms_app' AND u.rolname = 'wms_ingress') THEN
        -- Never a member of the group: the public pod must not read or write orders and stock.
        REVOKE wms_app FROM wms_ingress;
    END IF;
END
$$;

-- The schema belongs to wms_migrate; services may use it, not create in it.
GRANT USAGE, CREATE ON SCHEMA public TO wms_migrate;
GRANT USAGE ON SCHEMA public TO wms_app;
GRANT USAGE ON SCHEMA public TO wms_ingress;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
