-- A label the carrier sold to a delivery that could no longer record it: its order's lease had
-- lapsed during the call (its process paused longer than the lease, say) and another delivery
-- may have booked the order meanwhile. Kept here, with the carrier's booking, until it is
-- settled under the order's lease: `in_use` when it is the label the order shipped with (or is
-- adopted as that label), else `voided` at the carrier. Never left paid and forgotten: a label
-- the carrier refuses to void (`void_failed`) or of another carrier than the one configured
-- (`other_carrier`) is settled too, with `detail` saying why, and on the order's timeline for an
-- operator to void by hand (docs/runbook.md).
CREATE TABLE orphaned_labels (
    order_id      BIGINT      NOT NULL REFERENCES orders (id),
    external_id   TEXT        NOT NULL,
    carrier_kind  TEXT        NOT NULL,
    booking       JSONB       NOT NULL,
    outcome       TEXT        CHECK (outcome IN ('in_use', 'voided', 'void_failed', 'other_carrier')),
    -- Why it ended so, for the outcomes that need an operator (the carrier's refusal, say).
    detail        TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at    TIMESTAMPTZ,
    PRIMARY KEY (order_id, external_id)
);
CREATE INDEX orphaned_labels_unsettled ON orphaned_labels (order_id) WHERE outcome IS NULL;
