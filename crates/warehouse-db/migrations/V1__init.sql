-- Warehouse database: orders and their lines, stock, reservations, pick tasks, and the
-- plumbing that makes every consumer idempotent (processed_messages, outbox) and every
-- action traceable (audit_log, append-only).

CREATE TABLE orders (
    id                 BIGSERIAL PRIMARY KEY,
    site_id            TEXT        NOT NULL,
    webflow_order_id   TEXT        NOT NULL,
    state              TEXT        NOT NULL CHECK (state IN ('received', 'ready', 'backordered', 'reserved',
                                     'packed', 'shipped', 'fulfilled', 'cancelled', 'needs_review')),
    state_reason       TEXT,
    webflow_status     TEXT,
    shipping_required  BOOLEAN     NOT NULL DEFAULT TRUE,
    customer_name      TEXT,
    customer_email     TEXT,
    shipping_address   JSONB,
    total_minor        BIGINT,
    currency           TEXT,
    -- The last canonical Webflow order, as received or fetched.
    snapshot           JSONB       NOT NULL,
    correlation_id     TEXT,
    -- Optimistic concurrency: bumped on every update.
    version            BIGINT      NOT NULL DEFAULT 1,
    backordered_at     TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (site_id, webflow_order_id)
);
CREATE INDEX orders_backordered ON orders (backordered_at) WHERE state = 'backordered';
CREATE INDEX orders_state ON orders (state);

CREATE TABLE order_lines (
    order_id      BIGINT  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no       INT     NOT NULL,
    sku           TEXT    NOT NULL,
    variant_id    TEXT,
    product_name  TEXT,
    quantity      INT     NOT NULL CHECK (quantity > 0),
    unit_weight   DOUBLE PRECISION,
    unit_width    DOUBLE PRECISION,
    unit_height   DOUBLE PRECISION,
    unit_length   DOUBLE PRECISION,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_sku ON order_lines (sku);

CREATE TABLE inventory (
    sku         TEXT        PRIMARY KEY,
    variant_id  TEXT,
    on_hand     BIGINT      NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved    BIGINT      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Stock can never be over-reserved.
    CONSTRAINT reserved_within_on_hand CHECK (reserved <= on_hand)
);
CREATE INDEX inventory_variant ON inventory (variant_id);

CREATE TABLE reservations (
    id           BIGSERIAL   PRIMARY KEY,
    order_id     BIGINT      NOT NULL REFERENCES orders (id),
    sku          TEXT        NOT NULL REFERENCES inventory (sku),
    quantity     BIGINT      NOT NULL CHECK (quantity > 0),
    status       TEXT        NOT NULL CHECK (status IN ('active', 'released', 'consumed')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at    TIMESTAMPTZ,
    UNIQUE (order_id, sku)
);

CREATE TABLE pick_tasks (
    id          BIGSERIAL   PRIMARY KEY,
    order_id    BIGINT      NOT NULL UNIQUE REFERENCES orders (id),
    status      TEXT        NOT NULL CHECK (status IN ('open', 'picked', 'packed', 'cancelled')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX pick_tasks_open ON pick_tasks (created_at) WHERE status = 'open';

CREATE TABLE pick_task_lines (
    pick_task_id  BIGINT NOT NULL REFERENCES pick_tasks (id) ON DELETE CASCADE,
    sku           TEXT   NOT NULL,
    quantity      BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (pick_task_id, sku)
);

-- One row per (consumer, message) handled: written in the handler's own transaction.
CREATE TABLE processed_messages (
    consumer      TEXT        NOT NULL,
    message_id    TEXT        NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Events written with the state change and published after commit.
CREATE TABLE outbox (
    id                 BIGSERIAL   PRIMARY KEY,
    message_id         TEXT        NOT NULL UNIQUE,
    routing_key        TEXT        NOT NULL,
    payload            JSONB       NOT NULL,
    source_consumer    TEXT,
    source_message_id  TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at       TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_source ON outbox (source_consumer, source_message_id);

CREATE TABLE audit_log (
    id                BIGSERIAL   PRIMARY KEY,
    occurred_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    site_id           TEXT,
    webflow_order_id  TEXT,
    kind              TEXT        NOT NULL,
    actor             TEXT        NOT NULL,
    detail            JSONB       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_order ON audit_log (site_id, webflow_order_id, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
