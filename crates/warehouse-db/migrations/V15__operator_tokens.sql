-- Operator tokens as data (issue 24): admins create, scope and revoke bearer tokens at runtime
-- (API `/api/v1/tokens` and the console's Tokens page) next to the ones in the config file.
-- Only the SHA-256 of a token is stored; the token itself is shown once, when it is created.
-- A revoked token keeps its row (its name stays taken, the audit trail keeps meaning) and is
-- refused from the moment `revoked_at` is set, by every replica (no cache).
CREATE TABLE operator_tokens (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('read', 'floor', 'admin')),
    -- Webflow site ids, or `{*}` for every store.
    sites        TEXT[] NOT NULL CHECK (cardinality(sites) > 0),
    token_sha256 BYTEA NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   TEXT NOT NULL,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
