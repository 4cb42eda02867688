-- Variant: the idempotency key as columns of its order, beside the
-- migrated schema (whose idempotency_keys table then stays empty), as it
-- was built on 3 December 2026 (migration 2, then reverted: no
-- difference in the service, docs/postgres-path.md). A key resumes the
-- same order for its whole life, so its row can be the order row.
ALTER TABLE orders
    ADD COLUMN idempotency_key      text,
    ADD COLUMN key_fingerprint      text,
    -- In flight: held by one reservation until key_lease_until; a holder
    -- gone silent past it is taken over.
    ADD COLUMN key_holder           uuid,
    ADD COLUMN key_lease_until      timestamptz,
    -- Completed: the answer every replica replays.
    ADD COLUMN key_response_status  smallint,
    ADD COLUMN key_response_headers jsonb,
    ADD COLUMN key_response_body    bytea,
    ADD COLUMN key_expires_at       timestamptz;

CREATE UNIQUE INDEX orders_idempotency_key ON orders (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The sweep's expiry order, and the key figures read from the index
-- alone (orders are kept for good; their keys only for their TTL).
CREATE INDEX orders_keys ON orders (key_expires_at)
    INCLUDE (key_holder, key_lease_until, key_response_status)
    WHERE idempotency_key IS NOT NULL;
