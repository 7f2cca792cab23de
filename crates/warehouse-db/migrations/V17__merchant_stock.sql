-- Merchants own stock (issue 24). The same SKU string under two merchants is two products:
-- every stock row is keyed by (merchant_id, sku), every order belongs to the merchant of its
-- store, and an order reserves, releases, consumes and waits for its own merchant's stock only.
-- Existing rows become the `default` merchant's (id 1, created by V16), so a single-merchant
-- install behaves exactly as before.
--
-- Kept fast on large tables: `ADD COLUMN … NOT NULL DEFAULT 1` with a constant default is a
-- catalogue change (PostgreSQL 11+), no table rewrite; the foreign keys to `merchants` and the
-- new composite ones are added NOT VALID and validated afterwards, which scans without the
-- ACCESS EXCLUSIVE lock the plain form holds for the whole scan. Only the new primary key and
-- indexes are built (one pass each).

-- Orders: the merchant whose stock they take, set at insert from the live store of the site.
ALTER TABLE orders ADD COLUMN merchant_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE orders ADD CONSTRAINT orders_merchant_fk
    FOREIGN KEY (merchant_id) REFERENCES merchants (id) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_merchant_fk;
-- Backorder release looks for the merchant's backordered orders, oldest first.
DROP INDEX orders_backordered;
CREATE INDEX orders_backordered ON orders (merchant_id, backordered_at) WHERE state = 'backordered';

-- Stock: one row per (merchant, SKU).
ALTER TABLE inventory ADD COLUMN merchant_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE inventory ADD CONSTRAINT inventory_merchant_fk
    FOREIGN KEY (merchant_id) REFERENCES merchants (id) NOT VALID;
ALTER TABLE inventory VALIDATE CONSTRAINT inventory_merchant_fk;
ALTER TABLE reservations DROP CONSTRAINT reservations_sku_fkey;
ALTER TABLE inventory DROP CONSTRAINT inventory_pkey;
ALTER TABLE inventory ADD CONSTRAINT inventory_pkey PRIMARY KEY (merchant_id, sku);

-- Reservations hold their merchant's stock. (order_id, sku) stays unique: an order has one
-- merchant.
ALTER TABLE reservations ADD COLUMN merchant_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE reservations ADD CONSTRAINT reservations_stock_fkey
    FOREIGN KEY (merchant_id, sku) REFERENCES inventory (merchant_id, sku) NOT VALID;
ALTER TABLE reservations VALIDATE CONSTRAINT reservations_stock_fkey;

-- Stock-level sync: a store pushes its merchant's stock. The merchant is the store's at the
-- time the row was learnt (from the order's merchant); the key stays (site, SKU), since a
-- site belongs to one merchant.
ALTER TABLE inventory_sync ADD COLUMN merchant_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE inventory_sync ADD CONSTRAINT inventory_sync_merchant_fk
    FOREIGN KEY (merchant_id) REFERENCES merchants (id) NOT VALID;
ALTER TABLE inventory_sync VALIDATE CONSTRAINT inventory_sync_merchant_fk;
DROP INDEX inventory_sync_by_sku;
CREATE INDEX inventory_sync_by_sku ON inventory_sync (merchant_id, sku);

-- A change of a merchant's available count marks the rows of that merchant's stores only.
CREATE OR REPLACE FUNCTION inventory_sync_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inventory_sync
        SET dirty_since = COALESCE(dirty_since, clock_timestamp()), change_seq = change_seq + 1
        WHERE merchant_id = NEW.merchant_id AND sku = NEW.sku;
    RETURN NULL;
END;
$$;

-- Operator tokens may be limited to merchants: names of merchants, or `{*}` for every
-- merchant (every token before V17). A token limited to stores is also limited to their
-- merchants' stock; the two scopes intersect.
ALTER TABLE operator_tokens ADD COLUMN merchants TEXT[] NOT NULL DEFAULT '{*}'
    CHECK (cardinality(merchants) > 0);
