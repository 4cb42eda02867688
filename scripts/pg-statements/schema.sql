-- The schema of migrations/0001, as order-service builds it.
CREATE TABLE orders (
    order_id       uuid        PRIMARY KEY,
    status         text        NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    merchant_id    text        NOT NULL,
    amount         numeric     NOT NULL CHECK (amount > 0),
    currency       text        NOT NULL,
    transaction_id text,
    reason         text,
    created_at     timestamptz NOT NULL,
    -- An attempt may have reached payment-service: only a definitive
    -- answer may settle the order from then on.
    maybe_charged  boolean     NOT NULL,
    -- Payment calls started on the order; a flow's compare-and-set reads it.
    calls          integer     NOT NULL,
    -- The reconciler's schedule: a pending order is due for a re-drive at
    -- due_at. A claim moves due_at past the longest call (its lease), so a
    -- replica that dies mid re-drive leaves the order due for the others.
    due_at         timestamptz,
    attempts       integer     NOT NULL DEFAULT 0,
    claimed_by     uuid,
    -- W3C traceparent of the request that created the order: re-drives,
    -- on any replica, link to it.
    trace          text
);

CREATE INDEX orders_due ON orders (due_at) WHERE status = 'pending';

CREATE TABLE idempotency_keys (
    key              text        PRIMARY KEY,
    fingerprint      text        NOT NULL,
    order_id         uuid        NOT NULL,
    -- In flight: held by one reservation until lease_until; a holder gone
    -- silent past it is taken over.
    holder           uuid,
    lease_until      timestamptz,
    -- Completed: the answer every replica replays.
    response_status  smallint,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

