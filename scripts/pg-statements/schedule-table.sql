-- Variant: the reconciler's schedule in a narrow table of its own, so that
-- the completion is a HOT update of orders (nothing indexed changes).
CREATE TABLE orders (order_id uuid PRIMARY KEY, status text NOT NULL CHECK (status IN ('pending','completed','failed')), merchant_id text NOT NULL, amount numeric NOT NULL CHECK (amount > 0), currency text NOT NULL, transaction_id text, reason text, created_at timestamptz NOT NULL, maybe_charged boolean NOT NULL, calls integer NOT NULL, due_at timestamptz, attempts integer NOT NULL DEFAULT 0, claimed_by uuid, trace text);
CREATE TABLE order_due (order_id uuid PRIMARY KEY, due_at timestamptz NOT NULL, attempts integer NOT NULL DEFAULT 0, claimed_by uuid, trace text);
CREATE INDEX order_due_at ON order_due (due_at);
CREATE TABLE idempotency_keys (key text PRIMARY KEY, fingerprint text NOT NULL, order_id uuid NOT NULL, holder uuid, lease_until timestamptz, response_status smallint, response_headers jsonb, response_body bytea, created_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
