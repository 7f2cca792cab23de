-- A Webflow SKU id belongs to one store: stores selling the same SKU have their own ids for it,
-- kept per (store, SKU) in `inventory_sync.webflow_sku_id`. The single `inventory.variant_id`
-- flipped between stores with every order (and locked the SKU's inventory row to do so); drift
-- checks now read the store's own id only.
DROP INDEX IF EXISTS inventory_variant;
ALTER TABLE inventory DROP COLUMN variant_id;
