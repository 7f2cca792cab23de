-- Write-back to Webflow: a ledger of every write step (so each happens once toward the
-- customer), and the shared per-token rate-limit budget every replica draws from.

CREATE TABLE webflow_writes (
    order_id         BIGINT      NOT NULL REFERENCES orders (id),
    step             TEXT        NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('pending', 'done', 'skipped')),
    attempts         INT         NOT NULL DEFAULT 0,
    request          JSONB,
    response_status  INT,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, step)
);

-- One row per Webflow token: calls are handed evenly spaced slots (interval = 60 s / limit),
-- so no 60-second window exceeds the limit however many replicas call.
CREATE TABLE rate_budgets (
    key               TEXT             PRIMARY KEY,
    limit_per_minute  DOUBLE PRECISION NOT NULL CHECK (limit_per_minute > 0),
    next_slot         TIMESTAMPTZ      NOT NULL DEFAULT now(),
    paused_until      TIMESTAMPTZ,
    calls             BIGINT           NOT NULL DEFAULT 0,
    throttled         BIGINT           NOT NULL DEFAULT 0,
    updated_at        TIMESTAMPTZ      NOT NULL DEFAULT now()
);
