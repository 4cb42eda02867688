-- The orders table of the migration alone: its columns and primary key,
-- neither the due index nor the keys.
CREATE TABLE orders (
    order_id uuid PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    merchant_id text NOT NULL, amount numeric NOT NULL CHECK (amount > 0),
    currency text NOT NULL, transaction_id text, reason text,
    created_at timestamptz NOT NULL, maybe_charged boolean NOT NULL,
    calls integer NOT NULL, due_at timestamptz,
    attempts integer NOT NULL DEFAULT 0, claimed_by uuid, trace text);
