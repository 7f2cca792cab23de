-- Stock levels back to the storefront (issue 17).
--
-- One row per (site, SKU) the site sells: the SKU's Webflow id (the `variantId` seen on the
-- site's orders), whether its level may differ from what Webflow shows (`dirty_since`), what
-- was last pushed and when, and what Webflow last said (the answer to our PATCH, or an
-- `ecomm_inventory_changed` webhook).
--
-- Nothing is lost and bursts coalesce: every change of a SKU's available count marks its rows
-- dirty in the transaction that changes it (the trigger below), and the sync loop pushes the
-- newest count of a dirty row at most once per interval. `change_seq` tells the loop whether
-- the count changed while it was pushing (then the row stays dirty).
CREATE TABLE inventory_sync (
    site_id            TEXT        NOT NULL,
    sku                TEXT        NOT NULL,
    webflow_sku_id     TEXT        NOT NULL,
    dirty_since        TIMESTAMPTZ DEFAULT clock_timestamp(),
    change_seq         BIGINT      NOT NULL DEFAULT 0,
    -- A sync loop is pushing this row; others keep off until then (a crashed one's claim lapses).
    claimed_until      TIMESTAMPTZ,
    last_pushed_level  BIGINT,
    last_pushed_at     TIMESTAMPTZ,
    pushes             BIGINT      NOT NULL DEFAULT 0,
    -- What Webflow last said: level (NULL when infinite or unknown), type, when.
    webflow_level      BIGINT,
    webflow_type       TEXT,
    webflow_seen_at    TIMESTAMPTZ,
    -- Times Webflow disagreed with the warehouse on a webhook (a dashboard edit, say).
    drift_events       BIGINT      NOT NULL DEFAULT 0,
    -- The site's `inventory_safety_buffer` when last synced: Webflow should show
    -- GREATEST(on_hand - reserved - safety_buffer, 0).
    safety_buffer      BIGINT      NOT NULL DEFAULT 0,
    last_error         TEXT,
    PRIMARY KEY (site_id, sku)
);
CREATE INDEX inventory_sync_by_sku ON inventory_sync (sku);
CREATE INDEX inventory_sync_by_webflow_id ON inventory_sync (site_id, webflow_sku_id);
CREATE INDEX inventory_sync_due ON inventory_sync (dirty_since) WHERE dirty_since IS NOT NULL;

-- Marks every site's row of a SKU dirty when its available count changes. Runs while the
-- changing transaction holds the SKU's inventory row, so the rows of one SKU are only ever
-- touched here by one transaction at a time.
CREATE FUNCTION inventory_sync_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inventory_sync
        SET dirty_since = COALESCE(dirty_since, clock_timestamp()), change_seq = change_seq + 1
        WHERE sku = NEW.sku;
    RETURN NULL;
END;
$$;

CREATE TRIGGER inventory_sync_dirty
    AFTER UPDATE OF on_hand, reserved ON inventory
    FOR EACH ROW
    WHEN (NEW.on_hand - NEW.reserved IS DISTINCT FROM OLD.on_hand - OLD.reserved)
    EXECUTE FUNCTION inventory_sync_mark_dirty();

-- What the orders seen so far taught us.
INSERT INTO inventory_sync (site_id, sku, webflow_sku_id)
SELECT DISTINCT ON (o.site_id, l.sku) o.site_id, l.sku, l.variant_id
FROM order_lines l JOIN orders o ON o.id = l.order_id
WHERE l.variant_id IS NOT NULL
ORDER BY o.site_id, l.sku, o.id DESC;
