-- The relay claims rows (next_attempt_at moves ahead while it publishes them) and commits
-- before any broker round trip; a row that fails to publish is counted and retried later with
-- a backoff, so it never blocks the rows behind it.
ALTER TABLE outbox
    ADD COLUMN attempts        INT         NOT NULL DEFAULT 0,
    ADD COLUMN last_error      TEXT,
    ADD COLUMN next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now();
