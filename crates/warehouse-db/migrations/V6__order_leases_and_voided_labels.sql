-- Per-order work leases: a row with a token and an expiry, taken by compare-and-set. Unlike a
-- session advisory lock it does not vanish with its holder's connection; the token is checked
-- right before each external call and in the transaction that records the call's result, so a
-- holder that lost its lease can neither call out again nor record anything.
CREATE TABLE order_leases (
    order_id    BIGINT      NOT NULL REFERENCES orders (id),
    purpose     TEXT        NOT NULL,
    token       UUID        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, purpose)
);

-- A label bought for an order cancelled meanwhile is voided at the carrier.
ALTER TABLE shipments DROP CONSTRAINT shipments_status_check;
ALTER TABLE shipments ADD CONSTRAINT shipments_status_check
    CHECK (status IN ('booking', 'booked', 'failed', 'voided'));
ALTER TABLE shipments ADD COLUMN voided_at TIMESTAMPTZ;
