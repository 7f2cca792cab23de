-- The warehouse floor and carriers: parcels packed per order, and one shipment per order.

CREATE TABLE parcels (
    order_id      BIGINT           NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    parcel_no     INT              NOT NULL,
    weight_grams  DOUBLE PRECISION NOT NULL CHECK (weight_grams > 0),
    length_cm     DOUBLE PRECISION NOT NULL CHECK (length_cm > 0),
    width_cm      DOUBLE PRECISION NOT NULL CHECK (width_cm > 0),
    height_cm     DOUBLE PRECISION NOT NULL CHECK (height_cm > 0),
    PRIMARY KEY (order_id, parcel_no)
);

-- Written before the carrier is called ('booking'), so a retried booking looks the label up
-- by `reference` instead of buying a second one.
CREATE TABLE shipments (
    order_id         BIGINT      PRIMARY KEY REFERENCES orders (id),
    reference        TEXT        NOT NULL UNIQUE,
    carrier_kind     TEXT        NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('booking', 'booked', 'failed')),
    attempts         INT         NOT NULL DEFAULT 0,
    carrier          TEXT,
    service_level    TEXT,
    tracking_number  TEXT,
    tracking_url     TEXT,
    label_url        TEXT,
    cost_minor       BIGINT,
    currency         TEXT,
    external_id      TEXT,
    shipped_at       TIMESTAMPTZ,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Units that left the building: on_hand + shipped = everything ever received.
ALTER TABLE inventory ADD COLUMN shipped BIGINT NOT NULL DEFAULT 0 CHECK (shipped >= 0);
