-- Short leases that keep two deliveries for the same order from calling a carrier or Webflow
-- at the same time. A lease expires by itself, so a crashed worker blocks nobody for long.
CREATE TABLE work_leases (
    purpose     TEXT        NOT NULL,
    order_id    BIGINT      NOT NULL,
    holder      TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (purpose, order_id)
);
