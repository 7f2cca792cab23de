-- Merchants and stores as data (issue 24). A 3PL serves several merchants from one warehouse;
-- each merchant owns its SKUs and their stock (V17), and every store (a Webflow site) belongs to
-- one merchant. Stores are onboarded and removed at runtime (API, console, wmsctl, OAuth); the
-- stores of the config file are imported at start (source = 'config', their secrets stay in the
-- config and its secret files). Every service reads this table and picks a change up within
-- seconds, without a restart.

CREATE TABLE merchants (
    id          BIGSERIAL PRIMARY KEY,
    -- Names appear in URLs (`/api/v1/merchants/{merchant}/…`): lower case, digits, `-`, `_`, `.`.
    name        TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Every install before V16 served one merchant: its stock, orders and stores become `default`'s
-- (id 1, which columns added for existing rows default to).
INSERT INTO merchants (id, name) VALUES (1, 'default');
SELECT setval('merchants_id_seq', 1);

CREATE TABLE stores (
    id                       BIGSERIAL PRIMARY KEY,
    name                     TEXT NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    merchant_id              BIGINT NOT NULL REFERENCES merchants (id),
    site_id                  TEXT NOT NULL CHECK (site_id <> ''),
    -- config: from the config file (read-only through the API; secrets stay in the config);
    -- api: created through the API, the console or wmsctl with a site token;
    -- oauth: created by "Connect with Webflow" (the token is an OAuth access token, and the
    --        webhooks it creates are signed with the app's client secret).
    source                   TEXT NOT NULL CHECK (source IN ('config', 'api', 'oauth')),
    -- The Webflow token, sealed by `secrets-at-rest` with the context `stores.api_token:<id>`.
    -- NULL for config stores.
    api_token_sealed         TEXT,
    rate_limit_per_minute    INT NOT NULL CHECK (rate_limit_per_minute > 0),
    send_fulfillment_email   BOOLEAN NOT NULL DEFAULT TRUE,
    inventory_sync           BOOLEAN NOT NULL DEFAULT FALSE,
    sku_collection_id        TEXT,
    inventory_safety_buffer  BIGINT NOT NULL DEFAULT 0 CHECK (inventory_safety_buffer >= 0),
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Bumped on every change: services reload a store whose updated_at moved.
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A removed store keeps its row (its orders and history still name it); its webhooks are
    -- deleted at Webflow and its ingress path answers 404.
    removed_at               TIMESTAMPTZ,
    CHECK (source = 'config' OR api_token_sealed IS NOT NULL),
    CHECK (NOT inventory_sync OR sku_collection_id IS NOT NULL)
);
-- Names and site ids are unique among live stores; a removed store's may be reused.
CREATE UNIQUE INDEX stores_live_name ON stores (name) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX stores_live_site ON stores (site_id) WHERE removed_at IS NULL;
CREATE INDEX stores_merchant ON stores (merchant_id);
CREATE INDEX stores_site ON stores (site_id);

-- The webhooks the bridge registered at Webflow for a store (or whose secrets an operator gave).
CREATE TABLE store_webhooks (
    id                  BIGSERIAL PRIMARY KEY,
    store_id            BIGINT NOT NULL REFERENCES stores (id),
    -- Webflow's webhook id; NULL for a secret an operator supplied for a webhook made elsewhere.
    webflow_webhook_id  TEXT UNIQUE,
    trigger_type        TEXT NOT NULL,
    url                 TEXT NOT NULL,
    -- The `secretKey` Webflow returned, sealed with the context `store_webhooks.secret:<id>`;
    -- NULL when the webhook is signed with the OAuth app's client secret.
    secret_sealed       TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    removed_at          TIMESTAMPTZ
);
CREATE INDEX store_webhooks_store ON store_webhooks (store_id) WHERE removed_at IS NULL;
