-- A label the carrier sold to a delivery that could no longer record it: its order's lease had
-- lapsed during the call (its process paused longer than the lease, say) and another delivery
-- may have booked the order meanwhile. Kept here, with the carrier's booking, until it is
-- settled under the order's lease: `in_use` when it is the label the order shipped with (or is
-- adopted as that label), else `voided` at the carrier. Never left paid and forgotten.
CREATE TABLE orphaned_labels (
    order_id      BIGINT      NOT NULL REFERENCES orders (id),
    external_id   TEXT        NOT NULL,
    carrier_kind  TEXT        NOT NULL,
    booking       JSONB       NOT NULL,
    outcome       TEXT        CHECK (outcome IN ('in_use', 'voided')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at    TIMESTAMPTZ,
    PRIMARY KEY (order_id, external_id)
);
CREATE INDEX orphaned_labels_unsettled ON orphaned_labels (order_id) WHERE outcome IS NULL;
