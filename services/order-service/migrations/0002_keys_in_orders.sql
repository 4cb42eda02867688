-- The idempotency key becomes columns of its order's row. A key resumes
-- the same order for its whole life, so one row holds both: a
-- reservation inserts one row where it inserted two, and a completion
-- updates one where it updated two (issue 26: 12-26 % less database CPU
-- per keyed order). A swept key clears its columns; the order stays.
--
-- The old table goes in the same transaction: a replica still running
-- the old code then fails every write (each of its statements names the
-- old table; its clients are told nothing was charged, or that the
-- outcome is unknown) instead of writing keys nobody reads.

-- Both tables at once, before anything else: a key's own statements
-- from a replica still on the old code (a resume, a release, a stored
-- answer) would otherwise commit while its key is being moved, and be
-- lost with the table.
LOCK TABLE idempotency_keys, orders IN ACCESS EXCLUSIVE MODE;

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

UPDATE orders o
    SET idempotency_key = k.key, key_fingerprint = k.fingerprint,
        key_holder = k.holder, key_lease_until = k.lease_until,
        key_response_status = k.response_status,
        key_response_headers = k.response_headers,
        key_response_body = k.response_body, key_expires_at = k.expires_at
    FROM idempotency_keys k
    WHERE k.order_id = o.order_id;

DROP TABLE idempotency_keys;

CREATE UNIQUE INDEX orders_idempotency_key ON orders (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The sweep's expiry order, and the key figures read from the index
-- alone (orders are kept for good; their keys only for their TTL).
CREATE INDEX orders_keys ON orders (key_expires_at)
    INCLUDE (key_holder, key_lease_until, key_response_status)
    WHERE idempotency_key IS NOT NULL;
