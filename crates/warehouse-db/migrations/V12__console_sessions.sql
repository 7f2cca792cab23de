-- Console sessions in the database (issue 25): a session signed in on one warehouse replica is
-- valid on every other, and signing out ends it for good (the old cookie is refused even if
-- replayed). The cookie holds a random 32-byte secret; only its SHA-256 is stored, so reading
-- this table signs nobody in. Each session records the SHA-256 of the operator token it was
-- signed in with, so that revoking a token ends its sessions in one statement.
CREATE TABLE console_sessions (
    id_sha256    BYTEA PRIMARY KEY CHECK (octet_length(id_sha256) = 32),
    operator     TEXT NOT NULL,
    token_sha256 BYTEA NOT NULL CHECK (octet_length(token_sha256) = 32),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_token ON console_sessions (token_sha256);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Failed console sign-ins, counted per key in fixed windows, so that throttling holds across
-- replicas: one row per client address (`ip`) and per attempted token (`token`: the first 16
-- bytes of its SHA-256, hex). A key with `failures` at the limit is refused until its window
-- ends.
CREATE TABLE console_sign_in_failures (
    key_kind          TEXT NOT NULL CHECK (key_kind IN ('ip', 'token')),
    key               TEXT NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL,
    failures          INTEGER NOT NULL,
    PRIMARY KEY (key_kind, key)
);
CREATE INDEX console_sign_in_failures_window ON console_sign_in_failures (window_started_at);
