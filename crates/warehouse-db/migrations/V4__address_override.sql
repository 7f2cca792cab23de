-- An operator's address correction overrides Webflow's address. Webflow's address at the time
-- is kept, so a later webhook carrying it (e.g. the echo of our own comment PATCH) changes
-- nothing, while a change of Webflow's own address sends the order to review.
ALTER TABLE orders ADD COLUMN address_override_base JSONB;
