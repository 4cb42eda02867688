-- Variant: the idempotency key as columns of its order, beside the
-- migrated schema (whose idempotency_keys table then stays empty): a key
-- resumes the same order for its whole life, so its row can be the
-- order row. The key is unique where present, and its expiry indexed for
-- the sweep.
ALTER TABLE orders ADD COLUMN idem_key text, ADD COLUMN fingerprint text,
    ADD COLUMN holder uuid, ADD COLUMN lease_until timestamptz,
    ADD COLUMN response_status smallint, ADD COLUMN key_expires_at timestamptz;
CREATE UNIQUE INDEX orders_idem_key ON orders (idem_key);
CREATE INDEX orders_key_expiry ON orders (key_expires_at) WHERE idem_key IS NOT NULL;
